"""Hardening (issue 16): round trips, odd but valid input, and the small edge cases of names and paths.

Every case runs the real CLI; a refused input must give one `error:` line, the documented exit
code, and leave the store as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from tests.helpers import store_snapshot


def _ok(runner: CliRunner, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _texts(runner: CliRunner, store: Path, ref: str) -> list[str]:
    rows = _ok(runner, "head", ref, "-n", "1000", "--store", str(store))
    return [r["text"] for r in rows]  # type: ignore[index]


def _refused(runner: CliRunner, store: Path, args: list[str], code: int, message: str) -> None:
    before = store_snapshot(store)
    result = runner.invoke(app, [*args, "--store", str(store)])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert store_snapshot(store) == before


# -- 6: export and ingest give back the same texts -------------------------------------------

ROUND_TRIP = [
    "a story that mentions <|endoftext|> inside a sentence",
    "line one\nline two\r\nline three",
    "unicode: naïve café — 你好 🙂",
    "<|endoftext|>x on its own line start",
    "tabs\tinside\tkept",
]


def test_text_export_round_trips_or_refuses(runner: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "store"
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(ROUND_TRIP)))
    _ok(runner, "ingest", str(src), "-n", "docs", "--id-field", "id", "--store", str(store))
    for suffix, extra in ((".txt", []), (".jsonl", ["--id-field", "id"]), (".parquet", ["--id-field", "id"])):
        out = tmp_path / f"out{suffix}"
        _ok(runner, "export", "docs", str(out), "--store", str(store))
        _ok(runner, "ingest", str(out), "-n", f"back{suffix[1:]}", *extra, "--store", str(store))
        assert _texts(runner, store, f"back{suffix[1:]}") == ROUND_TRIP, suffix

    # a document holding the separator as a line of its own cannot be written as text unchanged
    src.write_text(json.dumps({"id": "two", "text": "first half\n<|endoftext|>\nsecond half"}) + "\n")
    _ok(runner, "ingest", str(src), "-n", "sep", "--id-field", "id", "--store", str(store))
    out = tmp_path / "sep.txt"
    _refused(runner, store, ["export", "sep", str(out)], 2, "document 'two' holds a line '<|endoftext|>'")
    assert not out.exists() and not list(tmp_path.glob(".sep.txt*"))  # no partial file either
    _ok(runner, "export", "sep", str(tmp_path / "sep.jsonl"), "--store", str(store))
    _ok(runner, "ingest", str(tmp_path / "sep.jsonl"), "-n", "sep2", "--id-field", "id", "--store", str(store))
    assert _texts(runner, store, "sep2") == ["first half\n<|endoftext|>\nsecond half"]


# -- 1: what ingest publishes is what it hashed ------------------------------------------------

SWAPPER = """
import os, sys, time
target, a, b, stop = sys.argv[1:5]
i = 0
while not os.path.exists(stop):
    src = (a, b)[i % 2]
    tmp = f"{target}.{i % 2}.tmp"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.replace(tmp, target)
    i += 1
    time.sleep(0.002)
"""


def test_ingest_of_a_file_replaced_meanwhile_never_publishes_the_wrong_rows(runner: CliRunner, tmp_path: Path) -> None:
    """A real process keeps replacing the input between two versions while ingests run on it."""
    import hashlib
    import subprocess
    import sys

    a, b, target = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "input.txt"
    for path, tag in ((a, "alpha"), (b, "beta")):
        path.write_text("".join(f"story {i} from {tag} " * 20 + "\n<|endoftext|>\n" for i in range(1000)))
    digest = {hashlib.sha256(p.read_bytes()).hexdigest(): tag for p, tag in ((a, "alpha"), (b, "beta"))}
    target.write_bytes(a.read_bytes())
    stop = tmp_path / "stop"
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(target), str(a), str(b), str(stop)])
    store = tmp_path / "store"
    outcomes = []
    try:
        for i in range(8):
            result = runner.invoke(app, ["ingest", str(target), "-n", f"x{i}", "--store", str(store), "--json"])
            if result.exit_code == 0:
                made = json.loads(result.stdout)
                parent = _ok(runner, "show", made["ref"], "--store", str(store))["parents"][0]
                tag = digest[parent.removeprefix("file:sha256:")]
                texts = _texts(runner, store, made["ref"])
                assert all(t.endswith(f"from {tag}") for t in texts), (tag, texts[:2])
                outcomes.append("ok")
            else:
                assert result.exit_code == 2, result.output
                assert "changed while it was being ingested" in result.stderr, result.stderr
                outcomes.append("refused")
    finally:
        stop.touch()
        swapper.wait(timeout=30)
    assert len(outcomes) == 8, outcomes


# -- 10: literal paths, unreadable files, symlinks -------------------------------------------


def test_a_literal_path_with_glob_characters_is_that_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "data[1].txt").write_text("the literal file\n<|endoftext|>\n")
    (tmp_path / "data1.txt").write_text("the file the pattern would match\n<|endoftext|>\n")
    store = tmp_path / "store"
    _ok(runner, "ingest", str(tmp_path / "data[1].txt"), "-n", "lit", "--store", str(store))
    assert _texts(runner, store, "lit") == ["the literal file"]
    _ok(runner, "ingest", str(tmp_path / "data[0-9].txt"), "-n", "pat", "--store", str(store))  # a pattern still works
    assert _texts(runner, store, "pat") == ["the file the pattern would match"]


def test_a_folder_never_reads_through_a_symlink_leading_out(runner: CliRunner, tmp_path: Path) -> None:
    import os

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("inside\n<|endoftext|>\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the folder\n<|endoftext|>\n")
    os.symlink(folder / "a.txt", folder / "b.txt")  # inside: followed (and read once)
    store = tmp_path / "store"
    _ok(runner, "ingest", str(folder), "-n", "in", "--store", str(store))
    assert _texts(runner, store, "in") == ["inside"]
    os.symlink(secret, folder / "c.txt")
    _refused(runner, store, ["ingest", str(folder), "-n", "out"], 2, "leads outside the folder")
    os.unlink(folder / "c.txt")
    os.symlink(tmp_path, folder / "up")  # a linked folder leading out
    _refused(runner, store, ["ingest", str(folder), "-n", "out"], 2, "leads outside the folder")
    _ok(runner, "ingest", str(secret), "-n", "named", "--store", str(store))  # named explicitly: read


def test_unreadable_files_in_a_folder_are_an_error() -> None:
    """Run as an unprivileged user (root reads everything), so the permissions bite."""
    import tempfile

    # Not tmp_path: its parents are private to the user running pytest, the unprivileged one must get in.
    with tempfile.TemporaryDirectory(prefix="datadiet-perm-") as top:
        Path(top).chmod(0o777)
        _check_unreadable(Path(top))


def _check_unreadable(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    curate = Path(sys.executable).parent / "curate"
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop the permission to read everything")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("readable\n<|endoftext|>\n")
    (folder / "b.txt").write_text("unreadable\n<|endoftext|>\n")
    (folder / "b.txt").chmod(0)
    for p in (tmp_path, folder):
        p.chmod(0o777)
    env = {**os.environ, "HOME": str(tmp_path)}
    run = subprocess.run(
        [*prefix, str(curate), "ingest", str(folder), "-n", "x", "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "cannot read" in run.stderr and "b.txt" in run.stderr, run.stderr
    (folder / "b.txt").chmod(0o644)
    (folder / "sub").chmod(0)  # an unreadable folder inside
    run = subprocess.run(
        [*prefix, str(curate), "ingest", str(folder), "-n", "x", "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    (folder / "sub").chmod(0o755)
    assert run.returncode == 2 and "cannot read" in run.stderr and "sub" in run.stderr, run.stderr


# -- 12: pathological but valid-looking input ------------------------------------------------


def _parquet(path: Path, table: object) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table, path)  # type: ignore[arg-type]
    return path


def test_pathological_inputs(runner: CliRunner, tmp_path: Path) -> None:
    import pyarrow as pa

    store = tmp_path / "store"
    store.mkdir()
    big_number = tmp_path / "number.jsonl"
    big_number.write_text('{"text": "ok", "n": ' + "9" * 5000 + "}\n")
    _refused(runner, store, ["ingest", str(big_number), "-n", "x"], 2, "line 1 cannot be read as JSON")
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "ok", "n": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    _refused(runner, store, ["ingest", str(deep), "-n", "x"], 2, "nested too deeply")
    cr = tmp_path / "mac.txt"
    cr.write_bytes(b"first story\r<|endoftext|>\rsecond story\r<|endoftext|>\r")
    _refused(runner, store, ["ingest", str(cr), "-n", "x"], 2, "lone CR")

    texts = ["a story", "another story", "a story"]
    dictionary = _parquet(tmp_path / "dict.parquet", pa.table({"text": pa.array(texts).dictionary_encode()}))
    _ok(runner, "ingest", str(dictionary), "-n", "dict", "--store", str(store))
    assert _texts(runner, store, "dict") == texts
    if hasattr(pa, "string_view"):
        view = _parquet(tmp_path / "view.parquet", pa.table({"text": pa.array(texts, type=pa.string_view())}))
        _ok(runner, "ingest", str(view), "-n", "view", "--store", str(store))
        assert _texts(runner, store, "view") == texts
    long = _parquet(tmp_path / "long.parquet", pa.table({"text": ["x" * 5000]}))
    _refused(runner, store, ["ingest", str(long), "-n", "x", "--max-doc-bytes", "1000"], 2, "longer than 1000 bytes")
    null_id = _parquet(tmp_path / "ids.parquet", pa.table({"id": ["a", None], "text": ["one", "two"]}))
    _refused(runner, store, ["ingest", str(null_id), "-n", "x", "--id-field", "id"], 2, "row 2 has a null 'id'")
