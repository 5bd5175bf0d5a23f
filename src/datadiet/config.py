"""The one schema of datadiet's configuration: typed, bounded fields validated by pydantic v2.

Every configuration the user writes — the sweep TOML, `--set key=value`, the presets, (issue 18)
`--config file.toml` of single commands — reaches a config class whose fields are declared with
the bounded types below, and is validated by pydantic when the class is built:

    @schema()                              # a frozen pydantic dataclass with the STRICT settings
    class TrainConfig:
        steps: PositiveInt = 1000          # an int from 1 to 2^63-1; "2", 2.0 and True are refused
        lr: PositiveFloat = 1e-3           # finite and > 0: 1e309 (= inf) and nan are refused

    cfg = build(TrainConfig, values, source="--set")   # a UsageError (exit 2) on one line, or the config
    TrainConfig(steps=0)    # from Python: ConfigError "invalid TrainConfig: steps must be at least 1, not 0"

A config whose fields are the operation's flags (`MinhashConfig`, `SubsetConfig`, …) passes its
own wording per field, so its errors read as they always have (`--rate must be between 0 and 1,
not 2; e.g. --rate 0.25`), whether it is built by the CLI or from Python.

Why strict leaves: TOML and `--set` values arrive typed, so a string where a number belongs is a
mistake to report (`nproc = "two"`), never something to coerce (`dedupe = "no"` must not become
True, nor `seeds = [0.5]` become 0). Sequences stay lax so a TOML list fills a tuple field.
Why bounds on every number: an unbounded integer reaches numpy or torch as an overflow or a 12 TB
allocation far from the flag that caused it; one bound here names the flag.

To extend: add a field with one of these types (or a new `Annotated[..., Strict(), Field(...)]`)
to the config class; its TOML key, `--set` key and bounds follow. Cross-field rules go in the
class's `__post_init__` and raise `UsageError` (pydantic passes it through untouched).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from typing_extensions import dataclass_transform

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


def _plain(value: Any) -> Any:
    # numpy's numbers are numbers too (a count or a rate a Python caller computed with numpy): made
    # plain before the strict check. Bools stay bools, so they are still refused where numbers belong.
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


# In an `Annotated` type before `Strict()`: numpy scalars pass as the plain int or float they are.
PLAIN = BeforeValidator(_plain)
# An operation's parameters (MinhashConfig, DuplicateConfig, ...): as above, numpy numbers accepted.
Count = Annotated[int, PLAIN, Strict(), Field(ge=1, le=MAX_INT)]
WholeSeed = Annotated[int, PLAIN, Strict(), Field(ge=0, le=MAX_SEED)]


def choice(choices: Sequence[str]) -> AfterValidator:
    """Metadata for a text field that takes one of CHOICES: `Annotated[str, Strict(), choice(KEEP_POLICIES)]`.

    (A `Literal` would do the same, but the CLI hands the config plain strings, already checked.)
    """

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return AfterValidator(check)


C = TypeVar("C")
T = TypeVar("T", bound=type)

# How a config class words a bad field, as {field: {problem: template}}: the problem is pydantic's
# error type (`greater_than_equal`, ...), else "type" (a string where a number belongs, a float for
# a count) or "value" (out of bounds, not finite, not one of the choices); the template gets
# `{value}` (and may write `{value!r}`). A problem it does not word is said as `describe` says it.
Wording = Mapping[str, Mapping[str, str]]
# pydantic's error types that mean "the wrong kind of value" rather than "a value out of range".
_TYPE_ERRORS = ("_type", "_parsing", "int_from_float", "is_instance_of")


class ConfigError(UsageError, ValueError):
    """A config class built with bad values, said in one line; `validation` is pydantic's full report.

    A `ValueError` too, as pydantic's `ValidationError` is, so callers that caught that still catch it.
    """

    def __init__(self, message: str, validation: ValidationError) -> None:
        super().__init__(message)
        self.validation = validation


@dataclass_transform(frozen_default=True)
def schema(*, wording: Wording | None = None) -> Callable[[T], T]:
    """Make a class a frozen pydantic dataclass with the STRICT settings, whose bad values raise `ConfigError`.

    pydantic's `ValidationError` never leaves the class, however it is built (the CLI, the sweep,
    Python): the first problem becomes one line, worded by WORDING for the fields it names, else
    `invalid CLASS: FIELD must be …, not VALUE`. `build` rewords it for the file or flag it came from.
    """

    def make(cls: T) -> T:
        made: Any = pydantic_dataclass(frozen=True, config=STRICT)(cls)
        init = made.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise ConfigError(_one_line(exc, cls.__name__, wording or {}), exc) from None

        functools.update_wrapper(__init__, init)
        made.__init__ = __init__
        return made

    return make


def _one_line(exc: ValidationError, name: str, wording: Wording) -> str:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    kind = str(err["type"])
    problem = "type" if any(t in kind for t in _TYPE_ERRORS) else "value"
    says = wording.get(field, {})
    template = says.get(kind, says.get(problem))
    if template is None or kind in ("missing", "extra_forbidden", "unexpected_keyword_argument"):
        return describe(exc, f"invalid {name}:")
    return template.format(value=err.get("input"))


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
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's extra key; a dataclass's
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
    except ConfigError as exc:
        raise UsageError(describe(exc.validation, source, flag, remedy)) from None
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
