"""`curate sweep --engine ray`: the runs trained as Ray tasks give the local sweep's runs and sweep.

Uses the session's local 2-CPU Ray cluster (`ray_cluster` fixture); needs the `ray` extra (installed
in CI) and is skipped with that message without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from datadiet.curate.corpus.op import CorpusConfig, write_corpus
from datadiet.errors import UsageError
from datadiet.store import Store
from datadiet.sweep import SweepConfig, run_sweep

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


def _sweep(tmp: Path, name: str, **kw: object) -> tuple[Store, object]:
    store = Store(tmp / name)
    train, val = write_corpus(store, CorpusConfig(stories=300, val_stories=60, seed=5), "c")
    cfg = SweepConfig(
        base=train.dataset.ref,
        val=val.dataset.ref,
        sizes=(1.0,),
        rates=(0.0, 1.0),
        preset="tiny",
        steps=10,
        vocab=300,
        overrides=(("threads", "1"),),
    )
    return store, run_sweep(store, cfg, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_ray_sweep_equals_local(tmp_path: Path, ray_cluster: None) -> None:
    local_store, local = _sweep(tmp_path, "local", parallel=1)
    ray_store, on_ray = _sweep(tmp_path, "ray", engine="ray")
    assert on_ray.dataset.ref == local.dataset.ref  # type: ignore[attr-defined]
    runs = {r.ref: r.manifest.stats["metrics"] for r in local_store.all("runs")}
    for run in ray_store.all("runs"):
        assert run.ref in runs
        for k, v in runs[run.ref].items():
            want = v if isinstance(v, str) or v is None else pytest.approx(v, rel=1e-6)  # eval_dtype: a name
            assert run.manifest.stats["metrics"][k] == want, k


def test_ray_sweep_refuses_an_object_storage_store() -> None:
    from datadiet.train.grid_ray import pretrain_ray

    with pytest.raises(UsageError, match="workers must share"):
        pretrain_ray([], None, remote_store=True)
