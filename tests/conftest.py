"""Shared fixtures: a temporary store, the real text in ../shared/data (skipped where absent), a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real corpora beside the project; tests that need it skip cleanly without it."""
    if not (SHARED_DATA / "tinystories-train-1.txt").is_file():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store root, also exported as $DATADIET_STORE so CLI calls without --store use it."""
    root = tmp_path / "store"
    monkeypatch.setenv("DATADIET_STORE", str(root))
    yield root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two cores: keep each test from oversubscribing them with tokenizer threads.
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", os.environ.get("TOKENIZERS_PARALLELISM", "false"))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster of 2 CPUs for every `--engine ray` test (about 5 s to start), shut down after."""
    ray = pytest.importorskip(
        "ray", reason="the ray engine needs the ray extra: pip install 'datadiet[ray]' (CI installs it)"
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
