"""The typer app, the options every command shares, and the one place errors become exit codes.

Every command takes `--store`, `--json` (JSON on stdout, nothing else), `--quiet` and `--debug`.
Errors never print a traceback unless `--debug` is given: a `UsageError` (and any click usage
error) prints one line and exits 2, a `DatadietError` or an OS error prints one line and exits 1.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

try:  # newer typer vendors click; the exceptions (and the context) must come from the copy typer actually runs
    from typer._click import exceptions as click_exc
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exc  # type: ignore[no-redef]
    from click.globals import get_current_context  # type: ignore[no-redef]

from datadiet.engine import ENGINES
from datadiet.errors import DatadietError, UsageError, os_error_of
from datadiet.progress import Tracker
from datadiet.store import Store
from datadiet.train import PRESET_NAMES
from datadiet.ui import SafeConsole, json_text, styled


def _fail(message: str, code: int, as_json: bool = False) -> None:
    # One line, whatever the message contains, so scripts can grep it; a path or value in it can
    # hold control characters, which are shown as escapes rather than sent to the terminal.
    from datadiet.ui import clean

    line = clean(" ".join(message.split()), newlines=False)
    sys.stderr.write("error: " + line + "\n")
    sys.stderr.flush()
    if as_json:  # with --json a script reads stdout only: the error is JSON there too
        sys.stdout.write(json.dumps({"error": line, "exit_code": code}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    sys.exit(code)


def _network_error(exc: BaseException) -> bool:
    """Whether EXC is a network failure of an HTTP client (httpx, requests, urllib3, aiohttp) that is not an OSError."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("httpx", "httpcore", "requests", "urllib3", "aiohttp"):
            return True
        if any(k in cls.__name__ for k in ("ConnectError", "ConnectionError", "Timeout", "NetworkError")):
            return True
    return False


# `curate --help` lists commands in the order a study uses them; any command not named here follows.
WORKFLOW_ORDER = (
    "ingest", "corpus", "ls", "show", "head", "lineage", "stats", "diff",
    "dedupe", "clusters", "filter", "duplicate", "subset", "corrupt",
    "tokenizer", "train", "runs", "generate", "export-model", "eval",
    "relate", "report", "sweep", "demo",
    "export", "verify", "gc",
)  # fmt: skip


def _task_cause(exc: BaseException) -> BaseException | None:
    """The error a Ray task raised, when EXC is Ray's wrapper of it; else None.

    Ray re-raises a worker's exception as a `RayTaskError` whose message is the worker's whole
    traceback; the user should see the worker's own one-line message, as the local engine gives.
    Matched by class name so that the CLI never imports ray.
    """
    seen = exc
    while any(c.__name__ == "RayTaskError" for c in type(seen).__mro__):
        cause = getattr(seen, "cause", None)
        if not isinstance(cause, BaseException):
            break
        seen = cause
    return None if seen is exc else seen


def _os_message(exc: OSError) -> str:
    """One line for an OS error that reached the top: a full disk says what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if isinstance(exc, (socket.gaierror, socket.herror, ConnectionError, TimeoutError)):
        return f"network error: {exc.strerror or exc}{where}; check your connection (or proxy) and rerun"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}; free some space and rerun (nothing was published)"
    return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"


class CurateGroup(TyperGroup):
    """Runs click in non-standalone mode so every error is rendered here, on one line."""

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(WORKFLOW_ORDER)}
        return sorted(self.commands, key=lambda n: rank.get(n, len(rank)))  # stable: the rest in definition order

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(args) if args is not None else sys.argv[1:]
        debug = "--debug" in argv
        fail = functools.partial(_fail, as_json="--json" in argv)
        try:
            try:
                rv = super().main(
                    args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
                )
            except Exception as exc:
                cause = _task_cause(exc)
                if cause is None:
                    raise
                raise cause from exc
        except click_exc.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(2)
        except click_exc.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "curate"
            fail(f"{exc.format_message()} (see `{where} --help`)", 2)
        except typer.Abort:
            fail("aborted", 1)
        except DatadietError as exc:
            if debug:
                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; the store is unchanged (rerun to continue)", 130)
        except OSError as exc:
            if debug:
                traceback.print_exc()
            fail(_os_message(exc), 1)
        except Exception as exc:
            if debug:
                raise
            os_exc = os_error_of(exc)
            if os_exc is not None:  # e.g. polars' ComputeError for a full disk: the OS error is the news
                fail(_os_message(os_exc), 1)
            if type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic"):
                # a config built outside `config.build` (e.g. from a manifest): still one line, exit 2
                from pydantic import ValidationError

                from datadiet.config import describe

                assert isinstance(exc, ValidationError)
                fail(describe(exc, f"invalid {exc.title}:"), 2)
            if _network_error(exc):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                fail(f"network error: {reason}; check your connection (or proxy) and rerun", 1)
            fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug and report it)", 1)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


app = typer.Typer(
    cls=CurateGroup,
    name="curate",
    help="datadiet: curate, degrade, train and compare — does data quality or quantity matter more?",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from datadiet import __version__

        typer.echo(f"datadiet {__version__}")
        raise typer.Exit()


# A string, not a Path: Path("s3://bucket/x") would collapse the URI's "//".
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store folder, or a URI pyarrow reads (s3://BUCKET/PREFIX, gs://..., hdfs://..., file:///PATH; "
        "cached in $DATADIET_CACHE). Default: $DATADIET_STORE, else ./datadiet-store.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout and nothing else.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no messages.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
# The new version's name, for every command that makes a dataset version from another.
NameOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Name of the new version (default: the input's name).", show_default=False),
]


@dataclass
class Out:
    """Where a command's results go: rich tables for people, or one JSON document for scripts."""

    json: bool = False
    quiet: bool = False
    store_path: str | Path | None = None
    # SafeConsole: strings print as written (no markup) with control characters shown as escapes.
    console: Console = field(default_factory=lambda: SafeConsole())
    err: Console = field(default_factory=lambda: SafeConsole(stderr=True, soft_wrap=True))

    @functools.cached_property
    def tracker(self) -> Tracker:
        """Progress on stderr (bars on a terminal, periodic lines elsewhere, with --json too); none with --quiet."""
        from datadiet.ui import make_tracker

        return make_tracker(self.quiet, self.err)

    @staticmethod
    def current() -> Out:
        """The running command's `Out`, which `SharedCommand` made from --store/--json/--quiet."""
        o = get_current_context().meta[_OUT_KEY]
        assert isinstance(o, Out)
        return o

    def store(self) -> Store:
        return Store(self.store_path)

    def info(self, message: str) -> None:
        """A human message on stderr (kept off stdout so it never mixes with --json)."""
        if not (self.quiet or self.json):
            self.err.print(message)

    def emit(self, payload: Any, render: Callable[[Console], None] | None = None) -> None:
        if self.json:
            sys.stdout.write(json_text(payload) + "\n")
        elif render is not None and not self.quiet:
            render(self.console)


def _load_config(ctx: Any, param: Any, value: Path | None) -> Path | None:
    """`--config FILE`: the command's settings from TOML, as defaults the command line overrides.

    Eager, so it runs before every other parameter: it fills click's `default_map`, and each value
    then goes through exactly the conversion and checks of its flag (a bad value names the flag).
    The file's `[COMMAND]` table is used if it has one (`[train]`, `[dedupe]`, `[tokenizer.train]`…),
    else its top-level keys. Keys are the option names (`num_perm` or `num-perm`, `set` for --set).
    """
    if value is None or ctx.resilient_parsing:
        return value
    from datadiet.config import load_toml

    data = load_toml(value)
    section: Any = data
    for part in ctx.command_path.split()[1:]:
        if isinstance(section, dict) and isinstance(section.get(part), dict):
            section = section[part]
    names = {p.name: p for p in ctx.command.params if p.name not in ("config", "debug")}
    defaults: dict[str, Any] = {}
    for key, item in section.items():
        if isinstance(item, dict):
            continue  # another command's table
        name = key.replace("-", "_")
        name = name if name in names else f"{name}_" if f"{name}_" in names else name
        if name not in names:
            known = ", ".join(sorted(n.rstrip("_") for n in names))
            raise UsageError(f"--config {value}: unknown setting {key!r} for `{ctx.command_path}`; known: {known}")
        if isinstance(item, (list, tuple)) and not names[name].multiple and getattr(names[name], "nargs", 1) == 1:
            raise UsageError(f"--config {value}: {key} takes one value, not a list")
        defaults[name] = [str(v) for v in item] if isinstance(item, list) else item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file of this command's options (its [COMMAND] table or top-level keys, named like the "
        "options: steps = 100, set = ['lr=1e-3']); options given here override it.",
        is_eager=True,
        callback=_load_config,
        show_default=False,
    ),
]


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    # The shared options also work before the command (`curate --json ls`); unlisted here, as each
    # command's --help lists them where the docs put them (`curate ls --json`). SharedCommand reads them.
    store: Annotated[str | None, typer.Option("--store", hidden=True)] = None,
    json_: Annotated[bool, typer.Option("--json", hidden=True)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", hidden=True)] = False,
    debug: Annotated[bool, typer.Option("--debug", hidden=True)] = False,
) -> None:
    """datadiet: curate, degrade, train and compare — does data quality or quantity matter more?"""


def _shared_options(
    config: ConfigFileOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The options every command takes, declared once: typer turns them into click options below."""


def _click_options() -> list[Any]:
    # typer builds them exactly as it builds a command's own options (help, metavar, callback);
    # the same option objects are then appended to every command (they hold no per-call state).
    probe = typer.Typer(add_completion=False, rich_markup_mode=None)
    probe.command()(_shared_options)
    return list(typer.main.get_command(probe).params)


_CONFIG, *_SHARED = _click_options()
# What `Out` is stored under on the click context (`ctx.meta` is shared by a context's children).
_OUT_KEY = "datadiet.out"


class SharedCommand(TyperCommand):
    """A command that takes the shared options (--config, --store, --json, --quiet, --debug).

    They are appended to the params typer made from the function's own signature, so each command
    lists them in `--help` without repeating them; at invocation their values are taken off
    `ctx.params` (the function never sees them) and put on the context as an `Out`, which the
    command body reads with `Out.current()`. (`--debug` itself is acted on in `CurateGroup.main`,
    before parsing.) A command that declares its own `--config` (the sweep's schema file) keeps it.
    """

    def __init__(self, *args: Any, params: list[Any] | None = None, **kwargs: Any) -> None:
        own = list(params or [])
        self.own_config = any(p.name == "config" for p in own)
        shared = _SHARED if self.own_config else [_CONFIG, *_SHARED]
        super().__init__(*args, params=own + shared, **kwargs)
        self.flags = {p.name: _flag_of(p) for p in own}

    def invoke(self, ctx: Any) -> Any:
        given, before = ctx.params, ctx.find_root().params  # before: `curate --json CMD`
        store = given.pop("store")
        o = Out(
            json=given.pop("json_") or bool(before.get("json_")),
            quiet=given.pop("quiet") or bool(before.get("quiet")),
            store_path=store if store is not None else before.get("store"),
        )
        given.pop("debug")
        if not self.own_config:
            given.pop("config", None)  # already applied, as defaults, by _load_config
        check_numbers(given, self.flags)
        ctx.meta[_OUT_KEY] = o
        return super().invoke(ctx)


def command(
    name: str | None = None, *, group: typer.Typer | None = None, **settings: Any
) -> Callable[[Callable[..., None]], Any]:
    """Register a command that takes the shared options (see `SharedCommand`); its body gets them
    with `o = Out.current()`."""
    return (group or app).command(name, cls=SharedCommand, **settings)


def _flag_of(param: Any) -> str:
    """How the user writes PARAM: its longest option name (`--rows` of `-n/--rows`), or its NAME."""
    decls = [d for d in getattr(param, "opts", ()) if d.startswith("-")] if param.param_type_name == "option" else []
    return max(decls, key=len) if decls else str(param.name).upper()


def check_numbers(values: dict[str, Any], flags: dict[str, str]) -> None:
    """Refuse, by option name, any integer beyond 64 bits and any infinite or NaN number (exit 2).

    Checked once here for every option of every command, before the command runs, so no value can
    reach numpy, torch or polars as an overflow far from the flag that caused it.
    """
    from datadiet.config import MAX_INT

    for name, given in values.items():
        for value in given if isinstance(given, (list, tuple)) else (given,):
            flag = flags.get(name, name)
            if isinstance(value, bool):
                continue
            if isinstance(value, int) and value > MAX_INT:
                raise UsageError(f"{flag} must be at most {MAX_INT}, not {value}")
            if isinstance(value, int) and value < -MAX_INT:
                raise UsageError(f"{flag} must be at least {-MAX_INT}, not {value}")
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{flag} must be a finite number, not {value}")


def commit_payload(commit: Any) -> dict[str, Any]:
    """The JSON shape every writing command prints for the version it made or found."""
    ds = commit.dataset
    return {
        "ref": ds.ref,
        "name": ds.name,
        "version": ds.version,
        "kind": ds.kind,
        "up_to_date": commit.up_to_date,
        "rows": ds.manifest.rows,
        "bytes": ds.manifest.bytes,
        "path": ds.location,  # on a remote store its URI: reading `path` would download the whole version
        "stats": ds.manifest.stats,
    }


def report_commit(o: Out, commit: Any, summary: str = "") -> None:
    """Say what was written (or found up to date) in one line, or print the JSON payload."""
    ds = commit.dataset
    state = "up to date" if commit.up_to_date else "wrote"
    rows = f"{ds.manifest.rows:,} rows" if ds.kind == "datasets" else ""
    o.emit(
        commit_payload(commit),
        lambda c: c.print(
            styled("[bold]{}[/] {} {}  ({})", state, ds.kind[:-1], ds.ref, ", ".join(p for p in (rows, summary) if p))
        ),
    )


def parse_overrides(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--set KEY=VALUE` items as pairs; the values are typed later against the config they override."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r} is not KEY=VALUE; e.g. --set lr=3e-4")
        pairs.append((key.strip(), value))
    return tuple(pairs)


def one_of(option: str, choices: Sequence[str], message: str | None = None) -> dict[str, Any]:
    """`typer.Option` settings for an option that takes one of CHOICES, declared once (in the library).

    `--help` lists the choices and shell completion offers them; a wrong value fails at parse time
    with the library's own one-line wording ("--keep must be one of first, longest, random, not
    'worst'"), the line the library raises when it is called directly.

        keep: Annotated[str, typer.Option("--keep", **one_of("--keep", KEEP_POLICIES), help=...)] = "first"
    """
    wording = message or f"{option} must be one of {', '.join(choices)}, not {{value!r}}"

    def parse(value: str) -> str:
        if value not in choices:
            raise UsageError(wording.format(value=value))
        return value

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return {"parser": parse, "metavar": "[" + "|".join(choices) + "]", "autocompletion": complete}


# `--preset` of train and sweep: the line `resolve_config` gives for an unknown preset, at parse time.
PRESET_CHOICES = one_of(
    "--preset", PRESET_NAMES, f"unknown preset {{value!r}}; choose one of {', '.join(PRESET_NAMES)}"
)

# The `--engine` / `--address` pair of every operation that can run on a Ray cluster.
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        **one_of("--engine", ENGINES),
        help="local (this machine) or ray (a Ray cluster: pip install 'datadiet[ray]'); same result either way.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster for --engine ray: auto (the one `ray start` runs here) or HOST:PORT; default starts one.",
        show_default=False,
    ),
]
