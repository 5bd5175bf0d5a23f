"""`curate ingest` and `curate stats` with `--engine ray` give the local engine's versions and values.

Ingest: same version ref, rows, ids, order and part files (hashes), and the same one-line error
for bad input. Stats: the same stored values, exactly, except the two float sums taken in another
order (unigram entropy, type-token ratio), which agree to 1e-12 relative. They run on the session's
local 2-CPU Ray cluster (the `ray` extra; skipped with that message where it is absent).
"""

from __future__ import annotations

import gzip
import json
import random
import string
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import zstandard
from typer.testing import CliRunner

import datadiet.curate.ingest.read as ingest_mod
import datadiet.eval.stats.compute as stats_mod
from datadiet.cli import app
from datadiet.curate.ingest.op import IngestConfig, ingest
from datadiet.errors import InputError
from datadiet.eval.stats.compute import TOP_REPEATED, TYPE_TOKEN_RATIO, UNIGRAM_ENTROPY_BITS, dataset_stats
from datadiet.eval.stats.op import stats_version
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, PartWriter, Store
from tests.helpers import cli, write_stories

# Ray's own modules warn about their deprecated settings while building their defaults.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"), pytest.mark.slow]

# Summed in another order on the cluster (per partition / per slice): equal to ~1e-15, not bit for bit.
REORDERED_SUMS = (UNIGRAM_ENTROPY_BITS, TYPE_TOKEN_RATIO)


def _words(rng: random.Random, vocab: list[str], lo: int = 5, hi: int = 60) -> str:
    return " ".join(rng.choices(vocab, k=rng.randint(lo, hi)))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Text, JSONL (plain, .gz, with empty documents), .txt.zst, a 14-row-group Parquet file, clashing stems."""
    rng = random.Random(5)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(400)]
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_stories(root / "a.txt", [_words(rng, vocab) for _ in range(250)])
    # Extra fields (kept as columns): a string on some lines, a nested object on others.
    lines = [
        json.dumps(
            {"text": _words(rng, vocab) if i % 17 else "  ", **({"lang": "en"} if i % 3 else {"meta": {"i": i}})}
        )
        for i in range(200)
    ]
    (root / "sub" / "a.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(root / "c.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps({"text": _words(rng, vocab)}) + "\n" for _ in range(60)))
    small = "".join(f"{_words(rng, vocab)}\n<|endoftext|>\n" for _ in range(40))
    (root / "d.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(small.encode()))
    texts = [_words(rng, vocab) if i % 13 else (None if i % 2 else " ") for i in range(2100)]
    pl.DataFrame({"text": texts, "n": list(range(2100))}).write_parquet(root / "e.parquet", row_group_size=150)
    return root


def _small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 KB groups and 3,000-character batches: the 120 KB Parquet file splits into runs of row
    # groups, the two small JSONL files share a group, and the version has dozens of parts. The
    # inputs are hashed in Ray tasks too (from 1 GiB on otherwise).
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 20_000)
    monkeypatch.setattr(ingest_mod, "BATCH_BYTES", 3_000)
    monkeypatch.setattr(ingest_mod, "HASH_LOCAL_BYTES", 0)


def _assert_same_version(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params
    assert a.manifest.files == b.manifest.files
    assert a.manifest.stats == b.manifest.stats
    assert a.read().equals(b.read())


def test_ray_ingest_equals_local(
    ray_cluster: None, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_groups(monkeypatch)
    files = ingest_mod.expand_paths([inputs])
    groups = ingest_mod.plan(files, [ingest_mod.detect_format(f, "auto") for f in files], ["x"] * len(files))
    assert sum(1 for g in groups if g[0].continues) >= 4  # continuation runs of the Parquet file
    assert max(len(g) for g in groups) >= 2  # small files packed together
    local = ingest(Store(tmp_path / "local"), [inputs], "mix").dataset
    remote = ingest(Store(tmp_path / "ray"), [inputs], "mix", engine="ray").dataset
    _assert_same_version(local, remote)
    assert len(remote.parts) >= 20
    frame = remote.read()
    # Empty and null texts are dropped; ids keep counting across the Parquet file's row-group runs.
    parquet_ids = frame.filter(pl.col(ID).str.starts_with("e:"))[ID].to_list()
    assert parquet_ids == [f"e:{i}" for i in range(2100 - len(range(0, 2100, 13)))]
    assert remote.manifest.stats["dropped_empty"] == 12 + len(range(0, 2100, 13))
    assert [f["documents"] for f in remote.manifest.stats["files"]] == [250, 60, 40, 2100 - 162, 200 - 12]
    assert frame[ID][0].startswith("a-") and frame.height == remote.rows == 250 + 188 + 60 + 40 + 1938
    # Extra columns from both kinds of task (packed groups, and the Parquet file's continuation runs).
    assert frame.columns[-3:] == ["n", "meta", "lang"]
    assert frame.filter(pl.col(ID).str.starts_with("e:"))["n"].null_count() == 0


def test_ray_ingest_source_ids(ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small_groups(monkeypatch)
    rng = random.Random(2)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(500)]
    rows = [{"body": _words(rng, vocab), "uid": f"u{i}"} for i in range(1500)]
    pl.DataFrame(rows).write_parquet(tmp_path / "p.parquet", row_group_size=100)
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"body": "q text", "uid": 7}) + "\n" for _ in range(1)))
    cfg = IngestConfig(text_field="body", id_field="uid")
    paths = [tmp_path / "p.parquet", tmp_path / "q.jsonl"]
    local = ingest(Store(tmp_path / "local"), paths, "ids", cfg).dataset
    remote = ingest(Store(tmp_path / "ray"), paths, "ids", cfg, engine="ray").dataset
    _assert_same_version(local, remote)
    ids = remote.read()[ID].to_list()
    assert ids[:2] == ["u0", "u1"] and ids[1000] == "u1000" and ids[-1] == "7"
    # A null id is an error on both engines (as in JSONL), never silently replaced by a generated one.
    rows[1000]["uid"] = None
    pl.DataFrame(rows).write_parquet(tmp_path / "p.parquet", row_group_size=100)
    for engine in ("local", "ray"):
        with pytest.raises(InputError, match=r"p\.parquet: row 1001 has a null 'uid'"):
            ingest(Store(tmp_path / f"null-{engine}"), paths, "ids", cfg, engine=engine)


@pytest.mark.parametrize(
    ("bad", "content", "match"),
    [
        ("b.jsonl", b'{"text": "a"}\n{"text": broken\n', r"b\.jsonl: line 2 is not valid JSON"),
        ("b.txt", b"ok\n<|endoftext|>\nbad \xff here\n", r"b\.txt: invalid UTF-8 at byte 21"),
        ("b.parquet", b"not parquet at all", r"b\.parquet: not a readable Parquet file"),
    ],
)
def test_ray_ingest_errors_match_local(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str, content: bytes, match: str
) -> None:
    _small_groups(monkeypatch)
    write_stories(tmp_path / "a.txt", [f"story {i} " * 30 for i in range(100)])  # its own group
    (tmp_path / bad).write_bytes(content)
    # Also bad, in a group of its own that fails at once: the error is still the first file's, as locally.
    (tmp_path / "c.jsonl").write_text('{"text": 1}\n' + '{"text": "fine"}\n' * 2000)
    paths = [tmp_path / "a.txt", tmp_path / bad, tmp_path / "c.jsonl"]
    messages = []
    for engine in ("local", "ray"):
        store = Store(tmp_path / engine)
        with pytest.raises(InputError, match=match) as err:
            ingest(store, paths, "bad", engine=engine)
        messages.append(str(err.value))
        # (Invalid JSON fails already in the pass that finds the extra columns, before any build.)
        tmp = store.root / ".tmp"
        assert store.all() == [] and (not tmp.exists() or list(tmp.iterdir()) == [])
    assert messages[0] == messages[1] and "\n" not in messages[1]


def test_ray_ingest_cli_up_to_date(ray_cluster: None, store_path: Path, runner: CliRunner, inputs: Path) -> None:
    remote = cli(runner, "ingest", str(inputs), "-n", "mix", "--engine", "ray")
    local = cli(runner, "ingest", str(inputs), "-n", "mix", "--engine", "local")
    assert local["ref"] == remote["ref"] and local["up_to_date"] and not remote["up_to_date"]
    result = runner.invoke(app, ["ingest", str(inputs), "-n", "m", "--engine", "spark"])
    assert result.exit_code == 2 and "--engine must be one of local, ray" in result.output


# -- stats -----------------------------------------------------------------------------------------


def _corpus(seed: int = 1, originals: int = 900) -> list[str]:
    """Random documents, near copies (1-2 word edits), exact copies (case and punctuation only), empties."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1500)]
    texts = [_words(rng, vocab, 30, 80) for _ in range(originals)]
    for src in rng.sample(range(originals), 150):
        words = texts[src].split()
        if rng.random() < 0.4:
            texts.append(texts[src].upper() + "!")
        else:
            for i in rng.sample(range(len(words)), rng.randint(1, 2)):
                words[i] = rng.choice(vocab) + "x"
            texts.append(" ".join(words))
    texts += ["Seven copies of this one. " + _words(rng, vocab)] * 7 + ["", "  ", "Ünïcode ﬁsh — naïve café", "a b"]
    rng.shuffle(texts)
    return texts


def _dataset(store: Store, texts: list[str], parts: int = 4) -> Dataset:
    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(len(texts)), parts):
            writer.write(pl.DataFrame({ID: [f"d{i}" for i in chunk], TEXT: [texts[i] for i in chunk]}))
        return {}

    return store.commit("docs", operation="test", params={"n": len(texts)}, parents=[], build=build).dataset


def _assert_same_stats(local: dict[str, Any], remote: dict[str, Any]) -> None:
    assert sorted(local) == sorted(remote)  # the manifest stores keys sorted
    for key, value in local.items():
        if key in REORDERED_SUMS and value is not None:
            assert remote[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert remote[key] == value, key


def test_ray_stats_equal_local(ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s")
    ds = _dataset(store, _corpus())
    local = dataset_stats(ds.read())
    remote = stats_version(store, ds, engine="ray").manifest.stats
    _assert_same_stats(local, remote)
    # The planted duplicates are found: exact copies, near copies, the 7-member exact group on top.
    assert local["exact_duplicate_share"] > 0.05 and local["near_duplicate_share"] > local["exact_duplicate_share"]
    assert local[TOP_REPEATED][0]["count"] == 7 and local[TOP_REPEATED][0]["preview"].startswith("Seven copies")
    # Above the sample size the compression ratio is taken on every k-th document, by global position.
    monkeypatch.setattr(stats_mod, "COMPRESSION_SAMPLE_BYTES", 40_000)
    from datadiet.eval.stats import ray as ray_stats

    sampled = dataset_stats(ds.read(), near_dup=False)
    _assert_same_stats(sampled, ray_stats.dataset_stats(ds, near_dup=False))
    assert sampled["compression_ratio"] != local["compression_ratio"] and sampled["near_duplicate_share"] is None
    empty = _dataset(Store(tmp_path / "empty"), [], parts=1)
    assert ray_stats.dataset_stats(empty) == dataset_stats(empty.read())


def test_ray_stats_cli(ray_cluster: None, tmp_path: Path, runner: CliRunner, inputs: Path) -> None:
    stores = [str(tmp_path / "ray"), str(tmp_path / "local")]
    refs = [cli(runner, "ingest", str(inputs), "-n", "mix", "--store", s)["ref"] for s in stores]
    remote = cli(runner, "stats", refs[0], "--engine", "ray", "--store", stores[0])
    local = cli(runner, "stats", refs[1], "--store", stores[1])
    assert remote["ref"] == local["ref"] and remote["stats"]["documents"] == 2476
    _assert_same_stats(local["stats"], remote["stats"])
    result = runner.invoke(app, ["stats", refs[0], "--engine", "spark", "--store", stores[0]])
    assert result.exit_code == 2 and "--engine must be one of local, ray" in result.output
