"""The store's promises against odd refs, edited manifests, stale names and outputs aimed at it (issue 16).

Items 2 (outputs confined), 3 (verify recomputes ids; damaged manifests), 5 ("up to date" makes
the version current), 9 (refs stay in the store) and 15 (small ones), through the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from tests.helpers import store_snapshot


def _first_json(text: str) -> Any:
    """The report a failing `--json` command printed (its JSON error line follows it)."""
    return json.JSONDecoder().raw_decode(text)[0]


def _run(runner: CliRunner, store: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--store", str(store), "--json"])
    assert result.exit_code == 0, f"curate {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


def _fails(runner: CliRunner, store: Path | None, args: list[str], code: int, message: str) -> str:
    before = store_snapshot(store) if store is not None else {}
    extra = ["--store", str(store)] if store is not None else []
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    if store is not None:
        assert store_snapshot(store) == before
    return lines[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base") / "store"
    _run(CliRunner(), root, "corpus", "--stories", "200", "--val-stories", "100", "-n", "c")
    return root


@pytest.fixture
def store(tmp_path: Path, base: Path) -> Path:
    """A private copy of the base store (the tests change it)."""
    shutil.copytree(base, tmp_path / "store")
    return tmp_path / "store"


# -- 9: a ref names a version in the store, never a path -------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "../../outside",
        "../datasets/c-train",
        "/abs/outside",
        "c-train/../c-val",
        "x" * 5000,
        "c-train@../../x",
        "c-train@/etc",
        "",
        ".hidden",
    ],
)
def test_refs_cannot_leave_the_store(runner: CliRunner, store: Path, tmp_path: Path, ref: str) -> None:
    # a complete-looking version outside the store, where a path-like ref would lead
    outside = tmp_path / "outside"
    shutil.copytree(next((store / "datasets" / "c-train").iterdir()), outside / "0123456789abcdef")
    for args in (
        ["head", ref],
        ["show", ref],
        ["lineage", ref],
        ["verify", ref],
        ["dedupe", "c-train", "--against", ref],
    ):
        _fails(runner, store, args, 2, "invalid ref")


def test_names_are_checked_everywhere(runner: CliRunner, store: Path) -> None:
    _fails(runner, store, ["ls", "../c-train"], 2, "invalid")
    _fails(runner, store, ["corpus", "--stories", "100", "-n", ""], 2, "invalid name")
    _fails(runner, store, ["subset", "c-train", "--fraction", "0.5", "-n", "-x"], 2, "invalid name")
    _fails(runner, None, ["ls", "--store", ""], 2, "--store")


# -- 15: a damaged part says what to do ------------------------------------------------------


def test_truncated_part_points_at_verify(runner: CliRunner, store: Path) -> None:
    part = next((store / "datasets" / "c-train").glob("*/part-00000.parquet"))
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    for args in (
        ["head", "c-train"],
        ["stats", "c-train"],
        ["export", "c-train", str(store.parent / "x.jsonl")],
        ["dedupe", "c-train", "-n", "d"],
        ["subset", "c-train", "--fraction", "0.5", "-n", "s"],
    ):
        _fails(runner, None, [*args, "--store", str(store)], 1, "curate verify")
    _fails(runner, None, ["verify", "--store", str(store)], 1, "differ from their manifests")


# -- 3: verify recomputes ids; one damaged manifest spoils nothing else ----------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["params"].update(seed=m["params"].get("seed", 0) + 1),
        lambda m: m.update(parents=["c-val@0000000000000000"]),
        lambda m: m["stats"].update(fake=1),
        lambda m: m.update(operation="ingest"),
        lambda m: m.update(rows=m["rows"] + 1),
    ],
)
def test_verify_catches_an_edited_manifest(runner: CliRunner, store: Path, edit: Any) -> None:
    mpath = next((store / "datasets" / "c-train").glob("*/manifest.json"))
    manifest = json.loads(mpath.read_text())
    edit(manifest)
    mpath.write_text(json.dumps(manifest, indent=2))
    result = runner.invoke(app, ["verify", "--store", str(store), "--json"])
    assert result.exit_code == 1, result.output
    bad = _first_json(result.stdout)["bad"]
    assert [b["ref"] for b in bad] == [f"c-train@{mpath.parent.name}"], bad


@pytest.mark.parametrize("content", ["{bad", "[1, 2]", '{"name": 3, "rows": "many"}', ""])
def test_a_damaged_manifest_is_listed_and_spoils_nothing_else(runner: CliRunner, store: Path, content: str) -> None:
    mpath = next((store / "datasets" / "c-train").glob("*/manifest.json"))
    mpath.write_text(content)
    assert [r["name"] for r in _run(runner, store, "ls")] == ["c-val"]
    _run(runner, store, "head", "c-val")
    _run(runner, store, "subset", "c-val", "--fraction", "0.5", "-n", "half")
    result = runner.invoke(app, ["verify", "--store", str(store), "--json"])
    assert result.exit_code == 1, result.output
    bad = _first_json(result.stdout)["bad"]
    assert len(bad) == 1 and "manifest" in " ".join(bad[0]["problems"]), bad
    _fails(runner, store, ["head", "c-train"], 1, "curate verify")


# -- 5: the name follows the last command ----------------------------------------------------


def test_up_to_date_makes_the_found_version_current(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("story from file a\n<|endoftext|>\n")
    b.write_text("story from file b\n<|endoftext|>\n")
    first = _run(runner, store, "ingest", str(a), "-n", "x")
    _run(runner, store, "ingest", str(b), "-n", "x")
    again = _run(runner, store, "ingest", str(a), "-n", "x")
    assert again["up_to_date"] and again["ref"] == first["ref"]
    assert _run(runner, store, "head", "x")[0]["text"] == "story from file a"
    assert _run(runner, store, "show", "x")["ref"] == first["ref"]
    listed = {r["ref"]: r for r in _run(runner, store, "ls", "x")}
    assert listed[first["ref"]]["current"] is True and sum(r["current"] for r in listed.values()) == 1
    # gc --unreferenced keeps what the name points at
    _run(runner, store, "gc", "--unreferenced", "--yes")
    assert _run(runner, store, "head", "x")[0]["text"] == "story from file a"


# -- 2: outputs never land inside the store --------------------------------------------------


def test_outputs_cannot_be_written_into_the_store(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    version = next((store / "datasets" / "c-train").iterdir())
    part = version / "part-00000.parquet"
    link = tmp_path / "link"
    os.symlink(version, link)
    for target in (part, version / "new.jsonl", store / "x.jsonl", link / "part-00000.parquet", link / "y.txt"):
        _fails(runner, store, ["export", "c-val", str(target)], 2, "inside the store")
    for target in (version, store / "reports", link):
        _fails(runner, store, ["report", "--sweep", "nothing", "--out", str(target)], 2, "inside the store")
    _fails(runner, store, ["export", "c-val", str(version / "hf"), "--format", "hf"], 2, "inside the store")
    _fails(runner, store, ["export-model", "nothing", str(version / "model")], 2, "inside the store")


# -- 7: a failed command leaves nothing behind; gc says what it did --------------------------


def test_a_run_failing_before_its_first_checkpoint_leaves_no_work_folder(runner: CliRunner, store: Path) -> None:
    _run(runner, store, "tokenizer", "train", "c-train", "--vocab", "300")
    args = ["train", "c-train", "--val", "c-val", "--preset", "tiny", "--steps", "40", "--set", "lr=1e9"]
    result = runner.invoke(app, [*args, "--set", "threads=1", "--store", str(store)])
    assert result.exit_code == 1, result.output
    assert not list((store / "work" / "runs").glob("*")) if (store / "work" / "runs").exists() else True
    assert _run(runner, store, "gc")["kept_resumable"] == []
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())


def test_a_train_failing_after_tokenizing_leaves_the_store_as_it_was(runner: CliRunner, store: Path) -> None:
    from datadiet.store import Store
    from datadiet.train.pipeline import resolve_tokenizer, tokens_version

    _run(runner, store, "tokenizer", "train", "c-train", "--vocab", "300")
    # c-train's token files exist before the command (found up to date: they stay); c-val's are its own.
    st = Store(store)
    tokens_version(st, st.resolve("c-train"), resolve_tokenizer(st, "c-train"))
    st.release()
    listing = _run(runner, store, "ls")
    before = store_snapshot(store)
    args = ["train", "c-train", "--val", "c-val", "--preset", "tiny", "--steps", "40", "--set", "lr=1e9"]
    result = runner.invoke(app, [*args, "--set", "threads=1", "--store", str(store)])
    assert result.exit_code == 1, result.output
    assert _run(runner, store, "ls") == listing
    after = store_snapshot(store)
    assert {k: v for k, v in after.items() if not k.startswith(".tmp")} == before
    assert [p.name for p in (store / "tokens").iterdir()] == ["c-train"]


def test_gc_on_a_read_only_store_reports_what_it_could_not_remove(store: Path, tmp_path: Path) -> None:
    """Debris in a store mounted read-only (a private mount namespace): gc must not claim it removed it."""
    import subprocess
    import sys

    from tests.test_disk_full import CURATE, _namespace

    prefix = _namespace()
    if prefix is None or not CURATE.is_file():
        pytest.skip("no private mount namespace here (unshare -rm / mount not permitted)")
    (store / ".tmp" / "datasets-x-0123456789abcdef-1-deadbeef").mkdir(parents=True)
    (store / ".tmp" / "datasets-x-0123456789abcdef-1-deadbeef" / "part-00000.parquet").write_bytes(b"x")
    script = (
        f"mount --bind {store} {store} && mount -o remount,ro,bind {store} && "
        f"{CURATE} gc --json --store {store}; echo rc=$?"
    )
    run = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert "rc=" in run.stdout, run.stderr
    payload = _first_json(run.stdout)
    assert payload["removed_tmp"] == [], payload
    assert payload["not_removed"], payload
    assert (store / ".tmp" / "datasets-x-0123456789abcdef-1-deadbeef").exists()
    assert sys.platform.startswith("linux")


# -- 4: gc never deletes what a running command reads -----------------------------------------

READER = """
import sys, time
from pathlib import Path
from datadiet.store import Store
store = Store(sys.argv[1])
ds = store.resolve(sys.argv[2])          # a reader: holds the version from here on
Path(sys.argv[3]).touch()                 # tell the test it holds it
while not Path(sys.argv[4]).exists():     # until the test has run gc
    time.sleep(0.05)
print(ds.read().height)                   # the version must still be whole
"""


def test_gc_leaves_a_version_a_running_command_reads(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    old = _run(runner, store, "subset", "c-train", "--fraction", "0.5", "-n", "half")["ref"]
    _run(runner, store, "subset", "c-train", "--fraction", "0.25", "-n", "half")  # now `half` means this one
    held, release = tmp_path / "held", tmp_path / "release"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store), old, str(held), str(release)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert reader.poll() is None and time.monotonic() < deadline, "the reader did not start"
            time.sleep(0.05)
        gc = subprocess.run(
            [
                str(Path(sys.executable).parent / "curate"),
                "gc",
                "--unreferenced",
                "--yes",
                "--json",
                "--store",
                str(store),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert gc.returncode == 0, gc.stderr
        payload = _first_json(gc.stdout)
        assert old not in payload["removed_versions"], payload
        assert any(old in line and "in use" in line for line in payload["not_removed"]), payload
    finally:
        release.touch()
        out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) == 100  # read whole, after gc ran
    # once nobody reads it, gc removes it
    assert old in _run(runner, store, "gc", "--unreferenced", "--yes")["removed_versions"]
