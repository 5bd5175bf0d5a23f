"""The `curate` command: parse, call the library, render. No logic lives here.

`datadiet.cli:app` is the console script. Each submodule registers its commands on the one app;
they are imported in workflow order, which is also the order `curate --help` lists them in.
"""

from __future__ import annotations

from datadiet.cli import data as _data  # noqa: F401  (registers commands)
from datadiet.cli import diff as _diff  # noqa: F401
from datadiet.cli import filter as _filter  # noqa: F401
from datadiet.cli import maintain as _maintain  # noqa: F401
from datadiet.cli import model as _model  # noqa: F401
from datadiet.cli import ops as _ops  # noqa: F401
from datadiet.cli import quality as _quality  # noqa: F401
from datadiet.cli import study as _study  # noqa: F401
from datadiet.cli import train as _train  # noqa: F401
from datadiet.cli.common import app

__all__ = ["app"]
