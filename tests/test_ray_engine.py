"""`--engine ray` gives the local engine's versions: same ref, rows, clusters.parquet, stats and part files.

Covered: plain dedupe (every --keep, --method exact), --verify, --against (with and without
--verify), an input part whose rows are all removed, and the CLI. Part files are compared by the
manifest's sha256 hashes, so the workers' staged writes are byte-identical to the local engine's.

The equality tests share one local Ray cluster of 2 CPUs (the `ray_cluster` fixture, about 5 s to
start); they need the `ray` extra (`pip install 'datadiet[ray]'`, installed in CI) and are skipped
with that message on a machine without it.
"""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.curate.dedupe.minhash import MinhashConfig
from datadiet.curate.dedupe.normalize import normalize, shingles
from datadiet.curate.dedupe.op import dedupe
from datadiet.curate.dedupe.output import CLUSTERS_FILE
from datadiet.engine import check_engine
from datadiet.engine import require_ray as load_ray
from datadiet.errors import UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, PartWriter, Store
from tests.helpers import cli

# Ray's own modules warn about their deprecated settings while building their defaults.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


def _planted(seed: int = 0, originals: int = 2500) -> list[str]:
    """Random documents plus near copies (1-3 word edits), exact copies, a chain, and a 150-member flood."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3000)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(40, 90))) for _ in range(originals)]

    def edit(text: str, changes: int) -> str:
        words = text.split()
        for i in rng.sample(range(len(words)), changes):
            words[i] = rng.choice(vocab) + "q"
        return " ".join(words)

    for src in rng.sample(range(originals), 400):
        for _ in range(rng.randint(1, 3)):
            r = rng.random()
            texts.append(texts[src].upper() + "!" if r < 0.25 else edit(texts[src], rng.randint(1, 3)))
    chain = texts[7]
    for _ in range(12):  # each link is J ~ 0.9 to the previous one, the ends far below 0.8
        chain = edit(chain, 1)
        texts.append(chain)
    # A bucket above cluster.ALL_PAIRS_MAX (32), so star edges are exercised too.
    texts.extend(texts[11] if i % 3 else edit(texts[11], 1) for i in range(150))
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order]


def _dataset(store: Store, texts: list[str], parts: int = 3) -> str:
    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(len(texts)), parts):
            writer.write(pl.DataFrame({ID: [f"d{i}" for i in chunk], TEXT: [texts[i] for i in chunk]}))
        return {}

    commit = store.commit("docs", operation="test", params={"n": len(texts)}, parents=[], build=build)
    return commit.dataset.ref


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params
    assert a.read().equals(b.read())
    assert pl.read_parquet(a.path / CLUSTERS_FILE).equals(pl.read_parquet(b.path / CLUSTERS_FILE))
    sa = {k: v for k, v in a.manifest.stats.items() if k != "seconds"}
    sb = {k: v for k, v in b.manifest.stats.items() if k != "seconds"}
    assert sa == sb
    # The workers stage one output per input part, as the local engine's one `write` per part.
    assert a.manifest.files == b.manifest.files


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _planted()


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [
        MinhashConfig(),
        MinhashConfig(keep="longest"),
        MinhashConfig(keep="random", seed=5, bands=32, rows=4),
        MinhashConfig(method="exact"),
    ],
    ids=["minhash-first", "minhash-longest", "minhash-random", "exact"],
)
def test_ray_dedupe_equals_local(ray_cluster: None, texts: list[str], tmp_path: Path, cfg: MinhashConfig) -> None:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, texts)
    assert _dataset(remote, texts) == ref
    a = dedupe(local, ref, cfg, workers=1)
    b = dedupe(remote, ref, cfg, engine="ray")
    assert not b.up_to_date
    _assert_same(a.dataset, b.dataset)
    stats = b.dataset.manifest.stats
    # The planted clusters are found: 400 sources x 1-3 copies + chain + flood, minus chance misses.
    assert stats["docs_in"] == len(texts)
    assert stats["largest_cluster"] >= 101  # the 100 exact copies of one document and itself


@pytest.mark.slow
def test_ray_dedupe_empty_and_unique(ray_cluster: None, tmp_path: Path) -> None:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    texts = ["alpha beta gamma delta epsilon zeta", "one two three four five six", ""]
    ref = _dataset(local, texts, parts=1)
    _dataset(remote, texts, parts=1)
    a = dedupe(local, ref, MinhashConfig(), workers=1)
    b = dedupe(remote, ref, MinhashConfig(), engine="ray")
    _assert_same(a.dataset, b.dataset)
    assert b.dataset.manifest.stats["removed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [MinhashConfig(verify=True), MinhashConfig(verify=True, threshold=0.6, keep="longest")],
    ids=["t0.8-first", "t0.6-longest"],
)
def test_ray_verify_equals_local(ray_cluster: None, texts: list[str], tmp_path: Path, cfg: MinhashConfig) -> None:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, texts)
    _dataset(remote, texts)
    a = dedupe(local, ref, cfg, workers=1)
    b = dedupe(remote, ref, cfg, engine="ray")
    _assert_same(a.dataset, b.dataset)
    stats = b.dataset.manifest.stats
    # Every estimate-passing edge was checked (the local engine's count of rejections is the truth).
    assert stats["rejected_by_verification"] == a.dataset.manifest.stats["rejected_by_verification"]
    clusters = pl.read_parquet(b.dataset.path / CLUSTERS_FILE)
    # --verify gives every member its exact Jaccard to the keeper: that of their word 5-gram sets.
    by_id = dict(zip([f"d{i}" for i in range(len(texts))], texts, strict=True))
    expected = []
    for member, keeper in zip(clusters[ID].to_list(), clusters["keeper_id"].to_list(), strict=True):
        mine, theirs = set(shingles(by_id[member], cfg.ngram)), set(shingles(by_id[keeper], cfg.ngram))
        expected.append(len(mine & theirs) / len(mine | theirs))
    assert clusters["jaccard_exact"].to_list() == expected


def _contaminated(texts: list[str]) -> list[str]:
    """An OTHER set: exact copies of 60 documents, 40 case-changed ones, 50 near copies and fresh text."""
    rng = random.Random(3)
    near = []
    for t in texts[300:400:2]:
        words = t.split()
        words[rng.randrange(len(words))] = "zzzq"
        near.append(" ".join(words))
    fresh = [" ".join(rng.choices(["tea", "cup", "sky", "owl", "ink", "map"], k=60)) for _ in range(30)]
    return texts[:60] + [t.upper() for t in texts[100:140]] + near + fresh


def _other(store: Store, texts: list[str]) -> str:
    frame = pl.DataFrame({ID: [f"o{i}" for i in range(len(texts))], TEXT: texts})
    commit = store.commit(
        "other", operation="test", params={"n": len(texts)}, parents=[], build=lambda w: w.write(frame)
    )
    return commit.dataset.ref


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [MinhashConfig(), MinhashConfig(verify=True, threshold=0.7), MinhashConfig(method="exact")],
    ids=["minhash", "minhash-verify", "exact"],
)
def test_ray_against_equals_local(ray_cluster: None, texts: list[str], tmp_path: Path, cfg: MinhashConfig) -> None:
    small = texts[:1500]
    other = _contaminated(small)
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, small)
    _dataset(remote, small)
    oref = _other(local, other)
    assert _other(remote, other) == oref
    a = dedupe(local, ref, cfg, against=oref, workers=1)
    b = dedupe(remote, ref, cfg, against=oref, engine="ray")
    _assert_same(a.dataset, b.dataset)
    # Every document with an exact (normalised) copy in OTHER is gone: the 100 planted ones and
    # their own exact copies in REF; OTHER's fresh text matches nothing.
    copied = {normalize(t) for t in other}
    exact_ids = {f"d{i}" for i, t in enumerate(small) if normalize(t) in copied}
    kept = set(b.dataset.read()[ID].to_list())
    assert not exact_ids & kept
    assert b.dataset.manifest.stats["removed_exact"] == len(exact_ids)
    assert b.dataset.manifest.params["against"] == oref


@pytest.mark.slow
def test_ray_write_drops_an_emptied_part(ray_cluster: None, tmp_path: Path) -> None:
    # Part 1 repeats part 0 word for word, so all its rows go and the version has two parts, as locally.
    docs = [f"story {i} " + " ".join(["word"] * i) + " the end" for i in range(20)]
    texts = docs[:10] + docs[:10] + docs[10:]
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, texts)
    _dataset(remote, texts)
    a = dedupe(local, ref, MinhashConfig(method="exact"), workers=1)
    b = dedupe(remote, ref, MinhashConfig(method="exact"), engine="ray")
    _assert_same(a.dataset, b.dataset)
    assert len(b.dataset.parts) == 2
    assert b.dataset.read()[ID].to_list() == [f"d{i}" for i in [*range(10), *range(20, 30)]]
    assert not [p for p in b.dataset.path.rglob("*") if p.name.startswith(".stage")]


def test_unknown_engine_is_a_one_line_error() -> None:
    with pytest.raises(UsageError, match="--engine must be one of local, ray") as err:
        check_engine("spark")
    assert "\n" not in str(err.value)


def test_missing_ray_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UsageError, match=r"pip install 'datadiet\[ray\]'") as err:
        load_ray()
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_dedupe_engine_ray(ray_cluster: None, texts: list[str], store_path: Path, runner: CliRunner) -> None:
    ref = _dataset(Store(store_path), texts[:600])
    remote = cli(runner, "dedupe", ref, "--engine", "ray", "--name", "viaray")
    local = cli(runner, "dedupe", ref, "--name", "vialocal")
    assert remote["ref"].split("@")[1] == local["ref"].split("@")[1]
    args = ("--verify", "--against", local["ref"])
    remote = cli(runner, "dedupe", ref, *args, "--engine", "ray", "--name", "viaray")
    local = cli(runner, "dedupe", ref, *args, "--name", "vialocal")
    assert remote["ref"].split("@")[1] == local["ref"].split("@")[1]


def test_unreachable_address_fails_fast() -> None:
    """`ray.init` retries a dead address for minutes; the pre-check answers in one line at once."""
    pytest.importorskip("ray", reason="the ray engine needs the ray extra: pip install 'datadiet[ray]'")
    from datadiet.engine.ray import _check_reachable
    from datadiet.errors import DatadietError

    with pytest.raises(DatadietError, match=r"cannot join the Ray cluster at 127\.0\.0\.1:1: .*ray start --head"):
        _check_reachable("127.0.0.1:1", timeout_s=2)
    for bad in ("nonsense", "host:", ":6379", "ray://host"):
        with pytest.raises(UsageError, match="--address must be auto or HOST:PORT"):
            _check_reachable(bad)
