"""CLI: every data command end to end through typer's CliRunner, --json output, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from tests.helpers import cli, store_snapshot, write_stories

STORIES = ["Tom had a red ball.", "Sue saw a big dog.\nIt barked.", "The end came soon."]


def test_quickstart_flow(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    src = write_stories(tmp_path / "tiny.txt", STORIES)
    made = cli(runner, "ingest", str(src), "--name", "tiny")
    assert made["rows"] == 3 and made["up_to_date"] is False and made["ref"].startswith("tiny@")
    again = cli(runner, "ingest", str(src), "--name", "tiny")
    assert again["up_to_date"] is True and again["ref"] == made["ref"]
    listing = cli(runner, "ls")
    assert [r["ref"] for r in listing] == [made["ref"]] and listing[0]["operation"] == "ingest"
    shown = cli(runner, "show", "tiny")
    assert shown["rows"] == 3 and shown["params"]["sources"][0]["path"] == str(src)
    rows = cli(runner, "head", "tiny", "-n", "2")
    assert [r["text"] for r in rows] == STORIES[:2]
    chain = cli(runner, "lineage", made["ref"][:9])
    assert [e["kind"] for e in chain] == ["datasets", "file"] and chain[1]["params"]["path"] == str(src)
    for ext in ("txt", "jsonl", "parquet"):
        dest = tmp_path / f"out.{ext}"
        assert cli(runner, "export", "tiny", str(dest))["rows"] == 3
        cli(runner, "ingest", str(dest), "--name", f"back-{ext}")
        assert [r["text"] for r in cli(runner, "head", f"back-{ext}", "-n", "5")] == STORIES


def test_human_output_is_readable(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    src = write_stories(tmp_path / "tiny.txt", STORIES)
    result = runner.invoke(app, ["ingest", str(src), "--name", "tiny"])
    assert result.exit_code == 0 and "wrote dataset tiny@" in result.output
    result = runner.invoke(app, ["ls"])
    assert "tiny" in result.stdout and "ingest" in result.stdout
    result = runner.invoke(app, ["show", "tiny"])
    assert "sources" in result.stdout and "sha256" in result.stdout
    result = runner.invoke(app, ["head", "tiny", "-n", "1"])
    assert "Tom had a red ball." in result.stdout


def test_corpus_command_writes_two_splits(runner: CliRunner, store_path: Path) -> None:
    made = cli(runner, "corpus", "--stories", "300", "--val-stories", "50", "--seed", "3", "--name", "c")
    assert made["train"]["rows"] == 300 and made["val"]["rows"] == 50
    assert made["train"]["name"] == "c-train" and made["val"]["name"] == "c-val"
    assert cli(runner, "corpus", "--stories", "300", "--val-stories", "50", "--seed", "3", "--name", "c")["train"][
        "up_to_date"
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ingest", "{tmp}/missing.txt", "--name", "x"], 2, "no such file or folder"),
        (["ingest", "{tmp}/empty.txt", "--name", "x"], 2, "no documents found"),
        (["ingest", "{tmp}/bad.txt", "--name", "x"], 2, "invalid UTF-8 at byte 4"),
        (["ingest", "{tmp}/broken.jsonl", "--name", "x"], 2, "line 2 is not valid JSON"),
        (["ingest", "{tmp}/nofield.jsonl", "--name", "x"], 2, "has no field 'text'"),
        (["ingest", "{tmp}/empty.txt", "--name", "../x"], 2, "invalid name"),
        (["ingest", "{tmp}/ok.txt", "--name", "x", "--max-doc-bytes", "0"], 2, "--max-doc-bytes"),
        (["ingest", "{tmp}/ok.txt", "--name", "x", "--max-doc-bytes", "lots"], 2, "valid integer"),
        (["ingest", "{tmp}/ok.txt", "--name", "x", "--store", "{tmp}/ok.txt/store"], 1, "cannot write to store"),
        (["show", "nothing"], 2, "nothing named 'nothing'"),
        (["head", "nothing"], 2, "no dataset named 'nothing'"),
        (["head", "ok", "-n", "-1"], 2, "-n"),
        (["export", "ok", "{tmp}/out.csv"], 2, "cannot export"),
        (["ls", "--kind", "cats"], 2, "--kind must be one of"),
        (["ls", "--bogus"], 2, "No such option"),
    ],
)
def test_errors_are_one_line_without_traceback(
    runner: CliRunner, store_path: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    write_stories(tmp_path / "ok.txt", STORIES)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.txt").write_bytes(b"bad \xff\n")
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{oops\n')
    (tmp_path / "nofield.jsonl").write_text('{"body": "a"}\n')
    assert runner.invoke(app, ["ingest", str(tmp_path / "ok.txt"), "--name", "ok"]).exit_code == 0
    before = store_snapshot(store_path)
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert store_snapshot(store_path) == before


def test_debug_shows_traceback(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.txt"), "--name", "x", "--debug"])
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_json_output_is_only_json(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    src = write_stories(tmp_path / "a.txt", STORIES)
    result = runner.invoke(app, ["ingest", str(src), "--name", "a", "--json"])
    json.loads(result.stdout)
    assert result.stderr == ""


def test_shared_options_after_or_before_the_command(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    # SharedCommand appends --store/--json/--quiet/--config/--debug to every command (listed in its
    # --help); before the command they work too and are not listed in `curate --help`.
    src = write_stories(tmp_path / "tiny.txt", STORIES)
    other = tmp_path / "other-store"
    made = runner.invoke(app, ["--store", str(other), "--json", "ingest", str(src), "--name", "tiny"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["path"].startswith(str(other))
    after = runner.invoke(app, ["ls", "--store", str(other), "--json"])
    before = runner.invoke(app, ["--json", "--store", str(other), "ls"])
    assert after.exit_code == before.exit_code == 0 and after.stdout == before.stdout
    assert [r["name"] for r in json.loads(after.stdout)] == ["tiny"]
    assert not store_path.exists()  # the default store was never touched
    shown = runner.invoke(app, ["ls", "--help"]).output
    assert all(flag in shown for flag in ("--store", "--json", "--quiet", "--debug", "--config"))
    assert "--json" not in runner.invoke(app, ["--help"]).output
