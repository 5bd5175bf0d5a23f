"""The study's grid as a DAG of cached, content-addressed steps: `curate sweep` and `curate demo`.

    base ─(dedupe)─▶ decontaminated against val ─▶ subset per size ─▶ duplicate per rate ─▶ run per seed
      └──────────────▶ tokenizer (trained once on the clean base, shared by every variant) ───┘
    every variant ─▶ stats;   every run ─▶ metrics;   all ─▶ relate ─▶ report (the sweep artefact)

Every node is an artefact in the store whose id is computed from its parents' ids and its
parameters before anything runs, so `--dry-run` can say what is done, a rerun of an interrupted
sweep does only what is missing, and a sweep that changes one factor reuses everything else.

Modules: `config` (SweepConfig, Node, SweepEvent, sweep_title), `axes` (issue 14's axes, the parts
that need no node), `dag` (the node builders, `build_dag`), `run` (plan, estimate_seconds, run_sweep,
the report), `demo` (the demo's grid). The names below are re-exported for the CLI, the API and tests.
"""

from datadiet.sweep.axes import (
    STUDY_RATES,
    Budget,
    budget_points,
    check_axes,
    corrupt_axis,
    epochs_to_steps,
    filter_axis,
    repetition_config,
)
from datadiet.sweep.config import STUDY_SIZES, SWEEP_FILE, Node, SweepConfig, SweepEvent, sweep_title
from datadiet.sweep.dag import build_dag, repeated_ids
from datadiet.sweep.demo import demo_config, prepare_demo
from datadiet.sweep.run import estimate_seconds, machine_description, plan, results_frame, run_sweep

__all__ = [
    "STUDY_RATES",
    "STUDY_SIZES",
    "SWEEP_FILE",
    "Budget",
    "Node",
    "SweepConfig",
    "SweepEvent",
    "budget_points",
    "build_dag",
    "check_axes",
    "corrupt_axis",
    "demo_config",
    "epochs_to_steps",
    "estimate_seconds",
    "filter_axis",
    "machine_description",
    "plan",
    "prepare_demo",
    "repeated_ids",
    "repetition_config",
    "results_frame",
    "run_sweep",
    "sweep_title",
]
