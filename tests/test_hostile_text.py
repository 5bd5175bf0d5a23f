"""Printed data is data: markup and terminal control sequences in documents, ids and paths.

Every command that prints data or paths runs on a dataset whose ids and texts hold rich markup
(`[/]`, `[link=…]`) and raw ESC/OSC/C1/bidi sequences, and writes to a path that holds them too.
The output (not a terminal, so rich adds no escape sequences of its own) must show the markup as
written and contain no control character at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.ui import SafeConsole, clean, json_text, safe, styled

MARKUP = "hello [/] world [link=http://evil.example]click[/link] [bold red]x"
ESCAPES = "clear\x1b[2J\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ title\x1b]0;pwned\x07 csi\x9b31m \u202egnp.exe\r"
ROWS = [
    {"id": "[/]", "text": MARKUP},
    {"id": "esc\x1b]0;pwned\x07", "text": ESCAPES},
    {"id": "ends in a backslash\\", "text": "trailing \\"},
    {"id": "plain", "text": "a normal story about a cat that sat on the mat and more words here"},
]
# Every character a terminal could act on, except newline and tab (which data may hold).
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile(tmp_path: Path, runner: CliRunner) -> tuple[Path, Path]:
    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    store = tmp_path / "store"
    ok = runner.invoke(app, ["ingest", str(data), "-n", "h", "--id-field", "id", "--store", str(store)])
    assert ok.exit_code == 0, ok.output
    ok = runner.invoke(app, ["dedupe", "h", "-n", "hd", "--threshold", "0.2", "--store", str(store)])
    assert ok.exit_code == 0, ok.output
    return store, tmp_path


def _safe_output(text: str) -> None:
    assert not CONTROL.search(text), repr(text)
    assert "Traceback" not in text and "MarkupError" not in text and "unexpected" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["head", "h", "-n", "10"],
        ["ls"],
        ["show", "h"],
        ["lineage", "h"],
        ["stats", "h"],
        ["clusters", "hd"],
        ["clusters", "hd", "--id", "[/]"],
        ["verify"],
        ["head", "h\x1b]0;x\x07[/]"],  # an unknown ref: the error line too
    ],
)
def test_data_with_markup_and_escapes_prints_as_written(
    runner: CliRunner, hostile: tuple[Path, Path], args: list[str]
) -> None:
    store, _ = hostile
    result = runner.invoke(app, [*args, "--store", str(store)])
    _safe_output(result.output)
    if args == ["head", "h", "-n", "10"]:
        assert result.exit_code == 0
        assert "[link=http://evil.example]click[/link]" in result.output  # shown, not rendered
        assert "\\x1b]0;pwned\\x07" in result.output and "\\u202e" in result.output  # shown, not sent


def test_json_output_carries_no_raw_control_character(runner: CliRunner, hostile: tuple[Path, Path]) -> None:
    store, _ = hostile
    result = runner.invoke(app, ["head", "h", "-n", "10", "--json", "--store", str(store)])
    assert result.exit_code == 0
    assert not CONTROL.search(result.stdout)
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]  # the data itself comes back unchanged
    assert rows[0]["text"] == MARKUP and rows[1]["text"].strip() == ESCAPES.strip()


def test_paths_with_markup_and_escapes(runner: CliRunner, hostile: tuple[Path, Path]) -> None:
    store, tmp = hostile
    out = tmp / "out[/]x\x1b]0;t\x07[link=y].jsonl"
    result = runner.invoke(app, ["export", "h", str(out), "--store", str(store)])
    assert result.exit_code == 0, result.output
    _safe_output(result.output)
    assert "out[/]x\\x1b]0;t\\x07[link=y].jsonl" in re.sub(r"\s+", "", result.output)
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()][:2] == [MARKUP, ESCAPES.strip()]
    # the exported file, ingested from a folder whose name holds markup and escapes, lists cleanly
    folder = tmp / "dir[/]\x1b[31mred"
    folder.mkdir(parents=True)
    (folder / "f[x].jsonl").write_bytes(out.read_bytes())
    result = runner.invoke(app, ["ingest", str(folder), "-n", "again", "--store", str(store)])
    assert result.exit_code == 0, result.output
    _safe_output(result.output)
    for args in (["lineage", "again"], ["show", "again"]):
        result = runner.invoke(app, [*args, "--store", str(store)])
        assert result.exit_code == 0, result.output
        _safe_output(result.output)
        if args[0] == "lineage":  # (show crops long values)
            assert "dir[/]\\x1b[31mred" in re.sub(r"\s+", "", result.output)


def test_render_helpers_escape_everything() -> None:
    assert clean("a\x1bb\x9bc\u202ed\re\nf\tg") == "a\\x1bb\\x9bc\\u202ed\\x0de\nf\tg"
    assert clean("a\nb", newlines=False) == "a\\x0ab"
    assert styled("[bold]{}[/] {}", "x\\", "[/]").plain == "x\\ [/]"  # a trailing backslash escapes nothing
    assert safe("[link=x]y[/link]") == "\\[link=x]y\\[/link]"
    assert json.loads(json_text({"t": "\x9b\u202e\x1b"})) == {"t": "\x9b\u202e\x1b"}
    assert not CONTROL.search(json_text({"t": "\x9b\u202e\x1b\x7f"}))
    import io

    console = SafeConsole(file=io.StringIO(), force_terminal=True, width=80)
    console.print("data [/] [link=http://x]y[/link] \x1b]0;t\x07 \x1b[2J")
    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[link=http://x]y[/link]" in written and "\x1b]" not in written and "\x1b[2J" not in written
