"""CLI conventions: --version, JSON errors with --json, workflow order, shell completion, network errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import datadiet
from datadiet.cli import app
from datadiet.cli.common import WORKFLOW_ORDER
from datadiet.sweep import SweepConfig, sweep_title


def test_version(runner: CliRunner) -> None:
    for flag in ("--version", "-V"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0 and result.stdout.strip() == f"datadiet {datadiet.__version__}"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nothing"], 2, "nothing named 'nothing'"),  # a library error
        (["dedupe", "x", "--threshold", "abc"], 2, "Invalid value for '--threshold'"),  # a click usage error
        (["bogus"], 2, "No such command 'bogus'"),
    ],
)
def test_json_errors_on_stdout(runner: CliRunner, store_path: Path, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == code and message in payload["error"]
    assert result.stderr.strip() == f"error: {payload['error']}"  # the same one line for people
    plain = runner.invoke(app, args)
    assert plain.stdout == "" and plain.stderr.startswith("error: ")  # without --json, stdout stays empty


def test_commands_in_workflow_order(runner: CliRunner) -> None:
    out = runner.invoke(app, ["--help"]).stdout
    listed = [
        line.split()[0] for line in out.split("Commands:")[1].splitlines() if line[:2] == "  " and line[2] != " "
    ]
    known = [c for c in WORKFLOW_ORDER if c in listed]
    assert listed[: len(known)] == known
    assert listed.index("ingest") < listed.index("dedupe") < listed.index("train") < listed.index("report")


def test_shell_completion(runner: CliRunner) -> None:
    env = {"_CURATE_COMPLETE": "complete_bash", "COMP_WORDS": "curate fil", "COMP_CWORD": "1"}
    result = runner.invoke(app, [], env=env, prog_name="curate")
    assert result.exit_code == 0 and result.stdout.split() == ["filter"]
    shown = runner.invoke(app, ["--show-completion", "bash"], prog_name="curate")
    assert shown.exit_code == 0 and "_CURATE_COMPLETE" in shown.stdout


def test_network_failure_is_one_clear_line(
    runner: CliRunner, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ConnectError = type("ConnectError", (Exception,), {"__module__": "httpx"})  # httpx's is not an OSError

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("datadiet.store.Store.find", offline)
    result = runner.invoke(app, ["show", "x"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: network error: [Errno -3] Temporary failure in name resolution; "
        "check your connection (or proxy) and rerun\n"
    )


def test_default_sweep_title_reads_well() -> None:
    assert sweep_title(SweepConfig(base="ts", val="ts-val")) == "datadiet sweep of ts: size × duplication"
    assert sweep_title(SweepConfig(base="ts", val="ts-val", name="budget")) == "datadiet sweep budget"


def test_dns_failure_is_a_network_error(runner: CliRunner, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def offline(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr("datadiet.store.Store.find", offline)
    result = runner.invoke(app, ["show", "x"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: network error: Name or service not known; check your connection (or proxy) and rerun\n"
    )


def test_config_file_for_single_commands(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    """`--config run.toml`: the command's table gives defaults, flags override, values checked as flags are."""
    from tests.helpers import cli

    cli(runner, "corpus", "--stories", "100", "--val-stories", "20", "--name", "c")
    config = tmp_path / "run.toml"
    config.write_text(
        '[dedupe]\nref = "c-train"\nthreshold = 0.7\nnum-perm = 64\nname = "dd"\n\n[subset]\nfraction = 0.5\n'
    )
    made = cli(runner, "dedupe", "--config", str(config))
    params = cli(runner, "show", made["ref"])["params"]
    assert (params["threshold"], params["num_perm"], made["name"]) == (0.7, 64, "dd")
    flagged = cli(runner, "dedupe", "--config", str(config), "--threshold", "0.9")
    assert cli(runner, "show", flagged["ref"])["params"]["threshold"] == 0.9  # the flag wins
    assert cli(runner, "subset", "c-train", "--config", str(config))["rows"] == 50
    for text, message in [
        ('[dedupe]\nthreshold = "high"\n', "Invalid value for '--threshold'"),
        ("[dedupe]\nthreshold = 1.5\n", "--threshold must be a number strictly between 0 and 1"),
        ("[dedupe]\ncolour = 1\n", "unknown setting 'colour' for `curate dedupe`"),
        ("[dedupe\n", "is not valid TOML"),
    ]:
        config.write_text(text)
        result = runner.invoke(app, ["dedupe", "c-train", "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
