"""Training artefacts in the store: tokenizers, token files and runs, each content-addressed.

- `tokenizer_version(store, ref, vocab)` trains a BPE tokenizer on a dataset version and stores it
  under `tokenizers/<name>/<version>/tokenizer.json` (the id hashes the dataset and the settings).
- `tokens_version(store, dataset, tokenizer)` encodes a dataset version for a tokenizer into a
  memory-mappable `tokens.bin` under `tokens/`, cached by (tokenizer, version).
- `train_run(store, train_ref, val_ref, ...)` trains a GPT and publishes the run under `runs/`: its
  id is a hash of the training version, validation version, tokenizer, resolved config and seed,
  so the same run twice is "up to date". While it trains, checkpoints live in
  `work/runs/<name>-<version>/`, private to that run id, so an interrupted run can be resumed and
  no run ever touches another's checkpoint.

These are what `curate tokenizer train`, `curate train` and `curate sweep` call.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, StepStatusTracker, Tracker
from datadiet.schema import EOT, TEXT
from datadiet.store import Commit, Dataset, PartWriter, Store, file_sha256
from datadiet.train.checkpoint import CHECKPOINT_FILE, METRICS_FILE, checkpoint_path

if TYPE_CHECKING:
    from datadiet.train.config import TrainConfig
    from datadiet.train.model import GPTConfig

TOKENIZER_FILE = "tokenizer.json"
TOKENS_FILE = "tokens.bin"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class TokenizerRef:
    """A resolved tokenizer: its file and the id that names it in other artefacts' parameters."""

    path: Path
    key: str
    vocab_size: int
    #: The token that ends every document in token files (and that generation stops at).
    eos_token: str = EOT

    def load(self) -> Any:
        from datadiet.train.tokenizer import load_tokenizer

        return load_tokenizer(self.path)


def tokenizer_version(
    store: Store, ref: str, vocab: int, name: str | None = None, tracker: Tracker = NULL_TRACKER
) -> Commit:
    """Train a byte-level BPE tokenizer on dataset REF and store it (kind `tokenizers`)."""
    from datadiet.train.tokenizer import MIN_VOCAB, train_tokenizer

    if not MIN_VOCAB <= vocab <= 1 << 20:
        raise UsageError(f"--vocab must be between {MIN_VOCAB} and {1 << 20}, not {vocab}")
    ds = store.resolve(ref)

    def build(writer: PartWriter) -> dict[str, Any]:
        with tracker.task(f"Training tokenizer on {ds.ref}", total=None):
            tok = train_tokenizer((t for frame in ds.iter_frames() for t in frame[TEXT]), vocab)
        writer.write_file(TOKENIZER_FILE, tok.to_str().encode("utf-8"))
        return {"vocab_size": tok.get_vocab_size(), "trained_on_rows": ds.rows}

    return store.commit(
        name or ds.name,
        operation="tokenizer",
        params={"vocab": vocab},
        parents=[ds.ref],
        build=build,
        kind="tokenizers",
    )


# How a tokenizer spec carries a non-default end-of-text token (only external files need one).
EOS_MARK = "#eos="


def tokenizer_spec(tokenizer: str, eos_token: str | None = None) -> str:
    """The `--tokenizer` value with `--eos-token` folded in (`PATH#eos=TOKEN`), as RunSpec holds it."""
    if eos_token is None or eos_token == EOT:
        return tokenizer
    if not eos_token.strip():
        raise UsageError("--eos-token must not be empty; give the token that ends a document, e.g. '</s>'")
    return f"{tokenizer}{EOS_MARK}{eos_token}"


def resolve_tokenizer(store: Store, spec: str) -> TokenizerRef:
    """A tokenizer from the store (`NAME[@VERSION]`) or any Hugging Face `tokenizer.json` path.

    `PATH#eos=TOKEN` (what `--eos-token TOKEN` makes) ends documents with TOKEN instead of
    `<|endoftext|>`, for a tokenizer that has no such token; TOKEN becomes part of the key (so of
    the token files' and runs' ids), and the default leaves every existing id as it was.
    """
    from datadiet.train.tokenizer import eot_id, load_tokenizer

    spec, mark, eos = spec.partition(EOS_MARK)
    eos = eos if mark else EOT
    path = Path(spec)
    if path.exists() or spec.endswith(".json"):
        tok = load_tokenizer(path)
        eot_id(tok, eos)  # the end-of-text token must exist: fail here, with the remedy
        file = path / TOKENIZER_FILE if path.is_dir() else path
        key = f"file:sha256:{file_sha256(file)}" + (f"{EOS_MARK}{eos}" if eos != EOT else "")
        return TokenizerRef(path=file, key=key, vocab_size=tok.get_vocab_size(), eos_token=eos)
    if mark:
        raise UsageError(
            "--eos-token applies to a tokenizer.json file; store tokenizers end documents with <|endoftext|>"
        )
    ds = store.resolve(spec, kind="tokenizers")
    return TokenizerRef(path=ds.file(TOKENIZER_FILE), key=ds.ref, vocab_size=int(ds.manifest.stats["vocab_size"]))


def run_tokenizer(store: Store, run: Dataset) -> TokenizerRef:
    """The tokenizer run RUN was trained with, under the same key (so its token files are found, not redone).

    A store tokenizer is resolved by its ref; an external `tokenizer.json` (key `file:sha256:…`) is the
    copy the run keeps, which is what makes `curate eval` work for runs trained on any tokenizer file.
    """
    from datadiet.train.tokenizer import load_tokenizer

    key = str(run.manifest.params["tokenizer"])
    if not key.startswith("file:"):
        return resolve_tokenizer(store, key)
    if TOKENIZER_FILE not in run.manifest.files:
        raise DatadietError(
            f"run {run.ref} was trained with a tokenizer file it does not keep ({key.partition(EOS_MARK)[0]}); "
            "retrain it with this version of datadiet"
        )
    path = run.file(TOKENIZER_FILE)
    _, mark, eos = key.partition(EOS_MARK)
    return TokenizerRef(
        path=path, key=key, vocab_size=load_tokenizer(path).get_vocab_size(), eos_token=eos if mark else EOT
    )


def tokens_version(
    store: Store,
    ds: Dataset,
    tok: TokenizerRef,
    tracker: Tracker = NULL_TRACKER,
    created: list[tuple[Dataset, str | None]] | None = None,
) -> Dataset:
    """The token file of dataset DS under tokenizer TOK, encoding it only if not cached.

    A version this call publishes is appended to CREATED with the version its name pointed to
    before (see `_unpublish_on_failure`); one found up to date is not.
    """
    from datadiet.train.data import encode_to_file

    def build(writer: PartWriter) -> dict[str, Any]:
        tokenizer = tok.load()

        def batches() -> Any:
            for frame in ds.iter_frames():
                yield frame[TEXT].to_list()

        # Bytes per token are not stored: bits per byte counts the bytes of exactly the scored
        # targets (datadiet.train.metrics.bits_per_byte).
        stats: dict[str, Any] = encode_to_file(
            batches(), tokenizer, writer.dir / TOKENS_FILE, tracker=tracker, eos_token=tok.eos_token
        )
        return stats

    params = {"tokenizer": tok.key}
    before = store.current(ds.name, "tokens")
    commit = store.commit(
        ds.name, operation="tokenize", params=params, parents=[ds.ref, tok.key], build=build, kind="tokens"
    )
    if created is not None and not commit.up_to_date:
        created.append((commit.dataset, before))
    return commit.dataset


def load_token_array(tokens: Dataset) -> np.ndarray:
    from datadiet.train.data import load_tokens

    return load_tokens(tokens.file(TOKENS_FILE), tokens.manifest.stats["dtype"])


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result (and so its id)."""

    train_ref: str
    val_ref: str
    tokenizer: str
    preset: str = "tiny"
    steps: int | None = None
    seed: int = 0
    overrides: tuple[tuple[str, str], ...] = ()
    name: str | None = None


# Step counts of a preset's schedule that `--steps` rescales along with the run's length.
_SCALED_WITH_STEPS = ("warmup", "eval_every", "checkpoint_every")


def resolve_run_config(spec: RunSpec, vocab_size: int) -> tuple[Any, Any]:
    """The model and training configs of SPEC.

    `--steps N` shortens or lengthens the preset's whole schedule: warmup, evaluation and checkpoint
    intervals keep their share of the run (unless set explicitly with `--set`), so 100 steps of
    `paper` warm up for 10 steps, not for all 100.
    """
    from datadiet.train.config import PRESETS, resolve_config

    overrides = dict(spec.overrides)
    if spec.steps is not None:
        if spec.steps < 1:
            raise UsageError(f"--steps must be >= 1, not {spec.steps}")
        overrides["steps"] = str(spec.steps)
        base = PRESETS[spec.preset].train if spec.preset in PRESETS else None
        if base is not None and "steps" not in dict(spec.overrides):
            for key in _SCALED_WITH_STEPS:
                value = getattr(base, key)
                if key not in overrides and value:
                    overrides[key] = str(max(1, round(value * spec.steps / base.steps)))
    overrides["seed"] = str(spec.seed)
    return resolve_config(spec.preset, vocab_size, overrides)


# Settings that change how fast a run goes, never what it computes (beyond float rounding: compile and
# ce_chunk reorder sums), so they stay out of its id.
NOT_IN_ID = ("device", "compile", "threads", "checkpoint_every", "ce_chunk")


def run_identity(store: Store, spec: RunSpec) -> tuple[str, dict[str, Any], list[str]]:
    """The (name, params, parents) that address the run SPEC describes, without training it."""
    train_ds = store.resolve(spec.train_ref)
    val_ds = store.resolve(spec.val_ref)
    tok = resolve_tokenizer(store, spec.tokenizer)
    model_cfg, train_cfg = resolve_run_config(spec, tok.vocab_size)
    tcfg = {k: v for k, v in train_cfg.to_dict().items() if k not in NOT_IN_ID}
    params = {
        "preset": spec.preset,
        "model": model_cfg.to_dict(),
        "train": tcfg,
        "seed": spec.seed,
        "tokenizer": tok.key,
    }
    return spec.name or train_ds.name, params, [train_ds.ref, val_ds.ref, tok.key]


def train_run(
    store: Store,
    spec: RunSpec,
    *,
    resume: bool = True,
    tracker: Tracker = NULL_TRACKER,
    on_step: Callable[[dict[str, float]], None] | None = None,
    nproc: int | None = None,
    tensorboard: bool = False,
) -> Commit:
    """Train (or find) the run SPEC describes and publish it under `runs/`.

    With `tensorboard`, the curves also go live into `<store>/tensorboard/<name>-<version>/`
    (`datadiet.train.tensorboard`); a run found up to date gets them from its `metrics.jsonl`.

    An interrupted run leaves its checkpoints in the run's private work folder; with `resume` the
    next call continues from the last checkpoint, otherwise it starts again from step 0. `nproc`
    trains on that many local DDP processes (the id and result do not change); under torchrun every
    rank calls this, rank 0 alone touches the store and all return the published run.
    """
    from datadiet.train.distributed import barrier, broadcast, prepare_processes
    from datadiet.train.distributed import train_processes as run_trainer

    train_ds = store.resolve(spec.train_ref)
    val_ds = store.resolve(spec.val_ref)
    tok = resolve_tokenizer(store, spec.tokenizer)
    model_cfg, train_cfg = resolve_run_config(spec, tok.vocab_size)
    name, params, parents = run_identity(store, spec)
    version = store.version_id(operation="train", params=params, parents=parents, kind="runs")
    work = store.root / "work" / "runs" / f"{name}-{version}"
    world = prepare_processes(nproc, train_cfg.device, train_cfg.batch_size)  # None unless started by torchrun
    if world is not None and not world.is_main:
        # Rank 0 owns the store: it says whether the run trains (and resumes), trains with us, publishes.
        decision = broadcast(None, world)
        if decision is not None:
            train_toks, val_toks = (load_token_array(tokens_version(store, d, tok)) for d in (train_ds, val_ds))
            run_trainer(model_cfg, train_cfg, train_toks, val_toks, work, resume=decision)
        barrier(world)
        return Commit(store.resolve(f"{name}@{version}", kind="runs"), up_to_date=decision is None)
    announced = False
    created: list[tuple[Dataset, str | None]] = []  # token versions this command publishes
    tb, on_step = _tensorboard(store, name, version, on_step) if tensorboard else (None, on_step)

    def build(writer: PartWriter) -> dict[str, Any]:
        nonlocal announced
        train_tokens = load_token_array(tokens_version(store, train_ds, tok, tracker, created))
        val_tokens = load_token_array(val_version := tokens_version(store, val_ds, tok, tracker, created))
        resumes = _resumes(work, resume)
        if world is not None:
            broadcast(resumes, world)
            announced = True
        # Every display shows the step's loss, lr and tokens/s beside the step count and ETA.
        status = StepStatusTracker(tracker, on_step)
        with _no_empty_work_folder(work):
            result = run_trainer(
                model_cfg,
                train_cfg,
                train_tokens,
                val_tokens,
                work,
                nproc=nproc,
                resume=resumes,
                tracker=status,
                on_step=status.on_step,
            )
        metrics, device, flops_per_token, eval_seconds = _final_metrics(
            model_cfg, train_cfg, result.checkpoint, (val_tokens, str(val_version.file(TOKENS_FILE))), tok, tracker
        )
        compute = run_compute(train_ds, tok, flops_per_token, train_cfg, result, train_tokens)
        outcome = {"metrics": metrics, "compute": compute}
        summary = _write_run_files(writer, work, spec, tok, model_cfg, train_cfg, result, outcome)
        return {
            "train": summary,
            **outcome,
            "train_tokens": len(train_tokens),
            "val_tokens": len(val_tokens),
            "device": str(device),
            "nproc": world.size if world is not None else nproc or 1,
            "eval_seconds": eval_seconds,
        }

    with _unpublish_on_failure(store, created):
        commit = _commit_run(store, name, params, parents, build, tb)
    if not commit.up_to_date:
        shutil.rmtree(work, ignore_errors=True)
    if world is not None:
        if not announced:
            broadcast(None, world)  # up to date: the other ranks have nothing to train
        barrier(world)  # the run is published before any rank returns it
    return commit


def _resumes(work: Path, resume: bool) -> bool:
    """Whether training continues from a checkpoint in WORK; without RESUME an old one is removed first."""
    has_ckpt = checkpoint_path(work).exists()
    if has_ckpt and not resume:
        shutil.rmtree(work)
    return resume and has_ckpt


def _commit_run(
    store: Store, name: str, params: dict[str, Any], parents: list[str], build: Callable[[PartWriter], Any], tb: Any
) -> Commit:
    """Commit the run; a TensorBoard log asked for a run already published gets its curves from metrics.jsonl."""
    try:
        commit = store.commit(name, operation="train", params=params, parents=parents, build=build, kind="runs")
        if tb is not None and commit.up_to_date and not tb.had_events:
            tb.write_curve(run_curve(commit.dataset))  # asked after the fact: the curves from metrics.jsonl
    finally:
        if tb is not None:
            tb.close()
    return commit


def _tensorboard(
    store: Store, name: str, version: str, on_step: Callable[[dict[str, float]], None] | None
) -> tuple[Any, Callable[[dict[str, float]], None]]:
    """A live TensorBoard log of the run, and the step callback that feeds it before ON_STEP."""
    from datadiet.train.tensorboard import TensorBoardLog, tensorboard_dir

    tb = TensorBoardLog(tensorboard_dir(store.root, name, version))

    def both(line: dict[str, float]) -> None:
        tb.on_step(line)
        if on_step is not None:
            on_step(line)

    return tb, both


@contextlib.contextmanager
def _no_empty_work_folder(work: Path) -> Iterator[None]:
    """On a failure, remove the run's work folder if it holds no checkpoint yet."""
    try:
        yield
    except BaseException:
        # A run that failed before its first checkpoint has nothing to resume: leave no folder
        # that `curate gc` would keep as "resumable" forever. One with a checkpoint stays.
        if not checkpoint_path(work).exists():
            shutil.rmtree(work, ignore_errors=True)
        raise


@contextlib.contextmanager
def _unpublish_on_failure(store: Store, created: list[tuple[Dataset, str | None]]) -> Iterator[None]:
    """On a failure, remove the token versions this command published (CREATED): the store stays as it was.

    Each is removed the way `curate gc` removes a version: only if no other command holds its lock
    (a reader that resolved it meanwhile); one in use stays, and a warning says so. The name's
    current version goes back to what it was before, and a name folder left empty goes too.
    """
    try:
        yield
    except BaseException:
        from datadiet.store.maintain import remove

        for ds, before in reversed(created):
            try:
                _, failed = remove(store, [ds])
                if not failed:
                    store.set_current(ds.kind, ds.name, before)
                    with contextlib.suppress(OSError):
                        ds.folder.parent.rmdir()  # the name's folder, if this was its only version
            except Exception as exc:  # cleaning up must not hide the failure itself
                failed = [f"{ds.ref}: {exc}"]
            for line in failed:
                print(f"warning: token files {line}; left in the store (`curate gc` removes them)", file=sys.stderr)
        raise


def _final_metrics(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    checkpoint: Path,
    val: tuple[np.ndarray, str],
    tok: Any,
    tracker: Tracker,
) -> tuple[dict[str, Any], Any, float, float]:
    """The final checkpoint's metrics on (at most FINAL_EVAL_TOKENS of) the validation set (tokens, file).

    Metrics the grid left beside the checkpoint (an ensemble's batched evaluation, `train.final_eval`)
    are used when their key matches this evaluation exactly; otherwise the run is evaluated alone.

    Returns:
        The metrics, the device, the model's FLOPs per token and the evaluation's seconds (reported
        apart from training, in the sweep's summary).
    """
    import torch

    from datadiet.train.device import select_device
    from datadiet.train.final_eval import FINAL_EVAL_FILE, cached_final_eval, evaluate_final, final_eval_key
    from datadiet.train.metrics import token_byte_lengths
    from datadiet.train.model import GPT

    val_tokens, val_file = val
    token_bytes = token_byte_lengths(tok.load())
    cached = None
    if (checkpoint.parent / FINAL_EVAL_FILE).exists():
        key = final_eval_key(model_cfg, train_cfg, checkpoint, val_file, token_bytes)
        cached = cached_final_eval(checkpoint.parent, key)
    if cached is None:
        metrics, seconds = evaluate_final(model_cfg, train_cfg, [checkpoint], [val_tokens], token_bytes, tracker)
        cached = metrics[0], seconds[0]
    with torch.device("meta"):  # shapes only
        flops = GPT(model_cfg).flops_per_token()
    return cached[0], select_device(train_cfg.device), flops, cached[1]


def _write_run_files(
    writer: PartWriter,
    work: Path,
    spec: RunSpec,
    tok: Any,
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    result: Any,
    outcome: dict[str, Any],
) -> dict[str, Any]:
    """The run's files beside its checkpoint and metrics: config, tokenizer, result (train summary + OUTCOME).

    Returns:
        The train summary.
    """
    # Copied, not moved: until the run is published, the work folder must still hold a complete
    # checkpoint for --resume; it is deleted only after publication.
    for fname in (CHECKPOINT_FILE, METRICS_FILE):
        shutil.copy2(work / fname, writer.dir / fname)
    config = {
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict(),
        "preset": spec.preset,
        "tokenizer": tok.key,
        "eos_token": tok.eos_token,
    }
    writer.write_file(CONFIG_FILE, json.dumps(config, indent=2).encode())
    # The run keeps its tokenizer, so generation and export need nothing else (an external file may move).
    writer.write_file(TOKENIZER_FILE, tok.path.read_bytes())
    summary: dict[str, Any] = result.to_dict() | {"checkpoint": CHECKPOINT_FILE}
    writer.write_file(RESULT_FILE, json.dumps({"train": summary, **outcome}, indent=2).encode())
    return summary


def run_compute(
    train_ds: Dataset, tok: TokenizerRef, flops_per_token: float, train_cfg: Any, result: Any, train_tokens: np.ndarray
) -> dict[str, Any]:
    """The run's compute record (`datadiet.train.compute`): FLOPs, tokens seen, unique tokens, epochs, time."""
    from datadiet.schema import COPY_INDEX, EOT
    from datadiet.train.compute import compute_record, unique_tokens

    copy_index = train_ds.scan().select(COPY_INDEX).collect()[COPY_INDEX].to_numpy()
    eot = tok.load().token_to_id(EOT)
    unique = unique_tokens(train_tokens, eot, copy_index) if eot is not None else len(train_tokens)
    return compute_record(
        flops_per_token,
        steps=result.steps,
        tokens_per_step=train_cfg.tokens_per_step,
        train_set_tokens=len(train_tokens),
        unique_train_tokens=unique,
        wall_time_s=result.wall_time_s,
        tokens_per_s=result.tokens_per_s,
    )


def run_curve(run: Dataset) -> list[dict[str, Any]]:
    """The `metrics.jsonl` records of a published run."""
    path = run.file(METRICS_FILE)  # only this file: a remote run's checkpoint stays where it is
    if not path.is_file():
        raise DatadietError(f"run {run.ref} has no {METRICS_FILE}; run `curate verify {run.ref}`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
