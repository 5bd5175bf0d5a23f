"""`compile = true` trains the same run, solo and as an ensemble: the trunk compiled, the chunked loss eager."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadiet.train.ensemble import Member, train_ensemble
from datadiet.train.trainer import train
from tests.train.test_ensemble import configs, corpus, lines

# Inductor fuses LayerNorm, GELU and the residual adds, which reorders float sums: the logged losses
# agree with the eager run's to ~1e-6 relative; this allows 1e-4.
RTOL = 1e-4


@pytest.mark.slow
def test_compiled_runs_match_eager_ones_solo_and_in_an_ensemble(tmp_path: Path) -> None:
    model_cfg, eager_cfg = configs(0)
    _, compiled_cfg = configs(0, compile="True")
    assert compiled_cfg.compile and not eager_cfg.compile
    data, val = corpus(10), corpus(99)[:900]
    train(model_cfg, eager_cfg, data, val, tmp_path / "eager")
    train(model_cfg, compiled_cfg, data, val, tmp_path / "solo")
    ms = [Member(configs(s, compile="True")[1], corpus(10 + s), val, tmp_path / f"m{s}") for s in (0, 1)]
    train_ensemble(model_cfg, ms)
    want = lines(tmp_path / "eager")
    for got in (lines(tmp_path / "solo"), lines(tmp_path / "m0")):
        assert [r.keys() for r in got] == [r.keys() for r in want]
        for a, b in zip(got, want, strict=True):
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=RTOL), (k, a, b)
