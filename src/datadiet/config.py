"""The one schema of datadiet's configuration: typed, bounded fields validated by pydantic v2.

Every configuration the user writes — the sweep TOML, `--set key=value`, the presets, (issue 18)
`--config file.toml` of single commands — reaches a config class whose fields are declared with
the bounded types below, and is validated by pydantic when the class is built:

    @pydantic.dataclasses.dataclass(frozen=True, config=STRICT)
    class TrainConfig:
        steps: PositiveInt = 1000          # an int from 1 to 2^63-1; "2", 2.0 and True are refused
        lr: PositiveFloat = 1e-3           # finite and > 0: 1e309 (= inf) and nan are refused

    cfg = build(TrainConfig, values, source="--set")   # a UsageError (exit 2) on one line, or the config

Why strict leaves: TOML and `--set` values arrive typed, so a string where a number belongs is a
mistake to report (`nproc = "two"`), never something to coerce (`dedupe = "no"` must not become
True, nor `seeds = [0.5]` become 0). Sequences stay lax so a TOML list fills a tuple field.
Why bounds on every number: an unbounded integer reaches numpy or torch as an overflow or a 12 TB
allocation far from the flag that caused it; one bound here names the flag.

To extend: add a field with one of these types (or a new `Annotated[..., Strict(), Field(...)]`)
to the config class; its TOML key, `--set` key and bounds follow. Cross-field rules go in the
class's `__post_init__` and raise `UsageError`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, Strict, ValidationError

from datadiet.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Every integer a user gives must fit a signed 64-bit int: numpy, torch and polars take no more.
MAX_INT = 2**63 - 1
# Seeds feed numpy's SeedSequence and torch.manual_seed (which takes < 2^64): 63 bits fit both.
MAX_SEED = MAX_INT

# The settings of config classes validated by pydantic: unknown keys are errors, no inf/nan.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=False)

Int64 = Annotated[int, Strict(), Field(ge=-MAX_INT, le=MAX_INT)]
PositiveInt = Annotated[int, Strict(), Field(ge=1, le=MAX_INT)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0, le=MAX_INT)]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
# A float field accepts an int (lr = 1 is 1.0) but never a string or a bool; always finite.
Real = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]  # [0, 1]
OpenProbability = Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)]  # [0, 1)
Fraction = Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)]  # (0, 1]
Text = Annotated[str, Strict(), Field(max_length=4096)]
Flag = Annotated[bool, Strict()]

C = TypeVar("C")


def describe(
    exc: ValidationError,
    source: str,
    flag: Callable[[str], str] | None = None,
    remedy: Callable[[str], str] | None = None,
) -> str:
    """The first problem of EXC as one line: `SOURCE KEY must be …, not VALUE[REMEDY]`.

    FLAG turns a field name into how the user wrote it (`lr` -> `--set lr`), by default the name;
    REMEDY gives a suffix naming the fix for a field (`; fix it with --set lr=0.001`).
    """
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    key = loc[0] if loc else ""
    where = (flag or (lambda k: k))(key) + "".join(f"[{p}]" for p in loc[1:])
    msg = str(err["msg"])
    kind = str(err["type"])
    if kind == "extra_forbidden":
        return f"{source} {key!r} is not a known setting"
    if kind == "missing":
        return f"{source} {where} is required"
    fix = remedy(key) if remedy is not None else ""
    ctx = err.get("ctx") or {}
    if kind == "too_short":
        return f"{source} {where} must have at least {ctx.get('min_length')} value(s){fix}".strip()
    if kind == "too_long":
        return f"{source} {where} must have at most {ctx.get('max_length')} values{fix}".strip()
    for prefix, replacement in (("Input should be ", "must be "), ("Value error, ", ""), ("Assertion failed, ", "")):
        if msg.startswith(prefix):
            msg = replacement + msg[len(prefix) :]
    msg = (
        msg.replace("a valid tuple", "a list")
        .replace("greater than or equal to", "at least")
        .replace("less than or equal to", "at most")
    )
    value = err.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source} {where} {msg}, not {shown}{more}{fix}".strip()


def build(
    cls: Callable[..., C],
    values: Mapping[str, Any],
    *,
    source: str,
    flag: Callable[[str], str] | None = None,
    remedy: Callable[[str], str] | None = None,
) -> C:
    """`cls(**values)`, with pydantic's validation error turned into a one-line `UsageError` (exit 2).

    Args:
        cls: A config class validated by pydantic (a pydantic dataclass or model).
        values: Its fields.
        source: Where the values came from, e.g. `--config sweep.toml` or `--set`.
        flag: How a field's name reads in SOURCE (`lr` -> `--set lr`).
        remedy: A suffix naming the fix for a field (see `describe`).
    """
    try:
        return cls(**values)
    except ValidationError as exc:
        raise UsageError(describe(exc, source, flag, remedy)) from None


def load_toml(path: Path, *, option: str = "--config") -> dict[str, Any]:
    """The TOML file PATH as a dict, or a one-line `UsageError` naming OPTION."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{option} {path} is a folder; give a TOML file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {path} is not UTF-8 text (byte {exc.start}); give a TOML file") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{option} {path} is not valid TOML ({exc})") from None
    except RecursionError:
        raise UsageError(f"{option} {path} nests too deeply to be a configuration") from None


# A `--set` value longer than this is not a setting (and literal_eval of a huge input is slow).
_MAX_LITERAL = 1000


def parse_literal(raw: str) -> Any:
    """A `--set` value: a Python literal (`3e-4`, `True`, `'epoch'`), else the bare text as a string.

    `true`/`false` in any case are booleans; the config's schema then checks the type, so `lr=abc`
    is refused as a string where a number belongs rather than guessed at.
    """
    text = raw.strip()
    if len(text) > _MAX_LITERAL:
        raise UsageError(f"--set value of {len(text)} characters is too long to be a setting")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
