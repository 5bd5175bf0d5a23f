"""docs/api.md runs: its python blocks, in order, as one script in a fresh folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import datadiet

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_public_names_are_exported_and_typed() -> None:
    import inspect

    for name in datadiet.__all__:
        obj = getattr(datadiet, name)
        if inspect.isfunction(obj):
            hints = obj.__annotations__
            assert "return" in hints, f"datadiet.{name} has no return type"
    with pytest.raises(AttributeError):
        datadiet.nothing_here  # noqa: B018


@pytest.mark.slow
def test_api_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    try:
        import datasets  # noqa: F401
    except ImportError:
        blocks = blocks[:-1]  # the Hugging Face block needs the hf extra
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATADIET_STORE", raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    namespace: dict[str, object] = {"__name__": "api_doc"}
    exec(compile("\n".join(blocks), str(DOC), "exec"), namespace)
    assert (tmp_path / "datadiet-store" / "runs").is_dir()
    assert os.environ.get("DATADIET_STORE") is None
