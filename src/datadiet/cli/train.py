"""Training commands: `curate tokenizer train`, `curate train`, `curate runs`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datadiet.cli.common import PRESET_CHOICES, Out, app, command, one_of, parse_overrides, report_commit
from datadiet.train import SAMPLERS
from datadiet.ui import text

tokenizer_app = typer.Typer(help="Train or inspect the BPE tokenizer shared by every variant.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")

PRESET_HELP = "Model and schedule: paper (the study's 4x4x128 nanoGPT, 1000 steps), tiny (seconds on a CPU), small (~20M), base (~85M)."


@command("train", group=tokenizer_app)
def tokenizer_train(
    ref: Annotated[
        str, typer.Argument(help="Dataset to learn the BPE merges from (the base corpus).", show_default=False)
    ],
    vocab: Annotated[int, typer.Option("--vocab", help="Vocabulary size, <|endoftext|> included.")] = 8192,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Tokenizer name (default: the dataset's).")] = None,
) -> None:
    """Train a byte-level BPE tokenizer and store it (content-addressed by its data and settings)."""
    o = Out.current()
    from datadiet.train.pipeline import tokenizer_version

    commit = tokenizer_version(o.store(), ref, vocab, name, tracker=o.tracker)
    report_commit(o, commit, f"vocab {commit.dataset.manifest.stats['vocab_size']}")


@command("ls", group=tokenizer_app)
def tokenizer_ls() -> None:
    """List the tokenizers in the store: vocabulary, end-of-text token, the dataset each was trained on."""
    o = Out.current()
    st = o.store()
    rows = [
        {
            "ref": d.ref,
            "name": d.name,
            "version": d.version,
            "vocab_size": d.manifest.stats.get("vocab_size"),
            "eos_token": d.manifest.params.get("eos_token", "<|endoftext|>"),
            "trained_on": d.manifest.parents[0] if d.manifest.parents else None,
            "trained_on_rows": d.manifest.stats.get("trained_on_rows"),
            "created": d.manifest.created,
        }
        for d in st.all("tokenizers")
    ]

    def render(c: Console) -> None:
        if not rows:
            c.print("no tokenizers yet; make one with `curate tokenizer train DATASET`")
            return
        t = Table(title=f"tokenizers in {st.location}")
        for col in ("tokenizer", "vocab", "end of text", "trained on", "documents"):
            t.add_column(col, justify="right" if col in ("vocab", "documents") else "left")
        for r in rows:
            docs = r["trained_on_rows"]
            t.add_row(
                text(r["ref"]),
                f"{r['vocab_size']:,}",
                text(r["eos_token"]),
                text(r["trained_on"] or "-"),
                f"{docs:,}" if isinstance(docs, int) else "-",
            )
        c.print(t)

    o.emit(rows, render)


# train's options whose declarations need more than a line.
ValOpt = Annotated[
    str, typer.Option("--val", help="Validation dataset, the same for every run you compare.", show_default=False)
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        help="Store tokenizer NAME[@VERSION] or a Hugging Face tokenizer.json path (default: the newest tokenizer named like the dataset).",
        show_default=False,
    ),
]
EosTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--eos-token",
        help="With a tokenizer.json that has no <|endoftext|>: the token that ends each document (e.g. '</s>').",
        show_default=False,
    ),
]
StepsOpt = Annotated[
    int | None, typer.Option("--steps", min=1, help="Optimizer steps (default: the preset's).", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable), e.g. --set lr=3e-4.", show_default=False),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
SamplerOpt = Annotated[
    str | None,
    typer.Option(
        "--sampler",
        **one_of("--sampler", SAMPLERS),
        help="random: windows at random offsets (the study's); epoch: full passes in a seeded order.",
        show_default=False,
    ),
]
CompileOpt = Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile (fastest on a GPU).")]
NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        help="Train on N local processes with DDP (one per GPU; on a CPU they share the cores); same global batch, same run. Under torchrun, its WORLD_SIZE.",
        show_default=False,
    ),
]
TensorboardOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write the training curves as TensorBoard event files, live, under <store>/tensorboard/ (pip install 'datadiet[tensorboard]').",
    ),
]


@command()
def train(
    ref: Annotated[str, typer.Argument(help="Training dataset NAME[@VERSION].", show_default=False)],
    val: ValOpt,
    tokenizer: TokenizerOpt = None,
    eos_token: EosTokenOpt = None,
    preset: Annotated[str, typer.Option("--preset", **PRESET_CHOICES, help=PRESET_HELP)] = "tiny",
    steps: StepsOpt = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seeds the weights and the batch order.")] = 0,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    sampler: SamplerOpt = None,
    compile_: CompileOpt = False,
    nproc: NprocOpt = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name (default: the dataset's).")] = None,
    tensorboard: TensorboardOpt = False,
) -> None:
    """Train a GPT on a dataset version; the run is stored with its config, curves and final metrics."""
    o = Out.current()
    from datadiet.train.ddp import current_world
    from datadiet.train.pipeline import RunSpec, tokenizer_spec, train_run

    # The flags are shorthands for --set, so they are validated and recorded the same way.
    flags = ([f"sampler={sampler}"] if sampler else []) + (["compile=True"] if compile_ else [])
    overrides = parse_overrides([*flags, *(set_ or [])])
    st = o.store()
    spec = RunSpec(
        train_ref=ref,
        val_ref=val,
        tokenizer=tokenizer_spec(tokenizer or st.resolve(ref).name, eos_token),
        preset=preset,
        steps=steps,
        seed=seed,
        overrides=tuple(overrides),
        name=name,
    )
    commit = train_run(st, spec, resume=resume, tracker=o.tracker, nproc=nproc, tensorboard=tensorboard)
    if not current_world().is_main:
        return  # under torchrun, rank 0 reports for every rank
    m = commit.dataset.manifest.stats["metrics"]
    report_commit(o, commit, f"val loss {m['val_loss']:.4f}, ppl {m['perplexity']:.2f}, acc {m['accuracy']:.3f}")


@command()
def runs() -> None:
    """List training runs with their data and final metrics."""
    o = Out.current()
    items = o.store().all("runs")
    rows = []
    for d in items:
        s = d.manifest.stats
        rows.append(
            {
                "ref": d.ref,
                "train": d.manifest.parents[0],
                "val": d.manifest.parents[1],
                "preset": d.manifest.params.get("preset"),
                "seed": d.manifest.params.get("seed"),
                "steps": s["train"]["steps"],
                "metrics": s["metrics"],
                "tokens_per_s": s["train"]["tokens_per_s"],
                # Runs trained before compute accounting have none (null in --json, "–" in the table).
                "compute": s.get("compute"),
            }
        )

    def render(c: Console) -> None:
        t = Table(title="runs")
        cols = ("run", "train data", "preset", "seed", "steps", "val loss", "bits/byte", "acc")
        for col in (*cols, "tokens seen", "epochs", "FLOPs", "wall s", "tok/s"):
            t.add_column(col)
        for r in rows:
            m, k = r["metrics"], r["compute"] or {}
            bpb = m.get("bits_per_byte")
            t.add_row(
                r["ref"],
                r["train"],
                str(r["preset"]),
                str(r["seed"]),
                str(r["steps"]),
                f"{m['val_loss']:.4f}",
                f"{bpb:.4f}" if bpb is not None else "–",
                f"{m['accuracy']:.3f}",
                f"{k['tokens_seen']:,}" if k else "–",
                f"{k['epochs']:.3f}" if k else "–",
                f"{k['flops']:.3g}" if k else "–",
                f"{k['wall_time_s']:,.1f}" if k else "–",
                f"{r['tokens_per_s']:,.0f}",
            )
        c.print(t if rows else "no runs yet")

    o.emit(rows, render)
