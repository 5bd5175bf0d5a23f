"""Using a trained run's model: `curate generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from datadiet.cli.common import Out, command, one_of
from datadiet.ui import styled

# `curate export-model --format`: the formats a run can be exported to.
MODEL_FORMATS = ("hf",)


@command()
def generate(
    run: Annotated[str, typer.Argument(help="Run NAME[@VERSION] (see `curate runs`).", show_default=False)],
    prompt: Annotated[
        list[str] | None,
        typer.Option(
            "--prompt",
            "-p",
            help="Text each sample continues as the start of a document (repeatable); default: none, a document from scratch.",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="Most new tokens per sample (it stops earlier at end-of-text).")
    ] = 100,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature", "-t", help="Softmax temperature: 0 is greedy (the most likely token every time)."
        ),
    ] = 1.0,
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", help="Sample only among the K most likely tokens (default: all).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The same seed gives the same samples.")] = 0,
    num: Annotated[int, typer.Option("--num", "-n", min=1, max=100_000, help="Samples per prompt.")] = 1,
) -> None:
    """Sample text from a run's model, deterministic for a seed (like nanoGPT's sample.py)."""
    o = Out.current()
    from datadiet.train.generate import SampleConfig, load_run_model, sample_texts

    cfg = SampleConfig(max_new_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed)
    rm = load_run_model(o.store(), run)
    samples = sample_texts(rm, prompt or [""], cfg, num=num)

    def render(c: Console) -> None:
        for s in samples:
            end = "" if s.finished else " …"
            c.print(styled("[dim]── sample {} ({} tokens)[/]", s.index, len(s.tokens)))
            # styled escapes markup and shows control characters (an ANSI escape a model emitted) as \xNN
            c.print(styled("[bold]{}[/]{}{}", s.prompt, s.text, end))

    o.emit({"run": rm.ref, "settings": cfg.__dict__, "samples": [s.to_dict() for s in samples]}, render)


@command("export-model")
def export_model(
    run: Annotated[str, typer.Argument(help="Run NAME[@VERSION] (see `curate runs`).", show_default=False)],
    out: Annotated[Path, typer.Argument(help="A new (or empty) folder to write.", show_default=False)],
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            **one_of("--format", MODEL_FORMATS),
            help="hf: a GPT-2 folder (config.json, model.safetensors, tokenizer) that transformers' "
            "AutoModelForCausalLM and AutoTokenizer load (pip install 'datadiet[transformers]').",
        ),
    ] = "hf",
) -> None:
    """Export a run's model and tokenizer for other tools: a Hugging Face GPT-2 folder with logits equal to ours."""
    o = Out.current()
    from datadiet.train.export import export_hf_model

    o.store().check_outside(out, "export-model folder")  # never into a published version
    summary = export_hf_model(o.store(), run, out)
    o.emit(
        summary,
        lambda c: c.print(
            styled(
                "exported {} as {} ({} parameters) to {}",
                summary["run"],
                summary["architecture"],
                f"{summary['parameters']:,}",
                summary["path"],
            )
        ),
    )
