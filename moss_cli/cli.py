"""The `moss` command line. The only place that prints, catches domain errors and picks exit codes."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import __version__
from .errors import AudioError, CheckpointError, ModelUnavailableError, MossError
from .model.loading import DEFAULT_MODEL

EXIT_OK = 0
EXIT_FAILED = 1  # an input could not be processed
EXIT_USAGE = 2  # bad flags, no inputs, unknown or broken model
LONG_AUDIO_SECONDS = 600  # the authors recommend under 10 minutes per request

app = typer.Typer(
    help="Audio understanding from the shell with MOSS-Audio: transcripts, captions, answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# Shared options: one definition, used by every command.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", envvar="MOSS_MODEL",
        help="Checkpoint: a local directory or a Hugging Face hub id (cached; honours HF_HUB_OFFLINE).",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="auto, float32, bfloat16 or float16. auto picks bfloat16 on GPUs (the checkpoint's own dtype) "
        "and float32 on CPU, where bfloat16 matmuls are slow on most processors.",
    ),
]
TemperatureOpt = Annotated[float, typer.Option(min=0.0, help="0 decodes greedily; above 0 samples.")]
TopPOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass (sampling only).")]
TopKOpt = Annotated[int, typer.Option(min=0, help="Sample from the k likeliest tokens; 0 for all (sampling only).")]
MaxNewTokensOpt = Annotated[int, typer.Option(min=1, help="Most tokens to generate per answer.")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for sampling, for repeatable runs.")]
TimeMarkersOpt = Annotated[
    bool, typer.Option("--time-markers/--no-time-markers", help="Mark every 2 s of audio in the prompt.")
]
ShowReasoningOpt = Annotated[
    bool, typer.Option("--show-reasoning", help="Print a Thinking model's <think> reasoning to stderr.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moss {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Audio understanding from the shell with MOSS-Audio: transcripts, captions, answers."""


@app.command()
def ask(
    audio: Annotated[Path, typer.Argument(help="Recording to ask about.", show_default=False)],
    questions: Annotated[list[str], typer.Argument(help="One or more questions, sent verbatim.", show_default=False)],
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    top_k: TopKOpt = 50,
    max_new_tokens: MaxNewTokensOpt = 1024,
    seed: SeedOpt = None,
    time_markers: TimeMarkersOpt = True,
    show_reasoning: ShowReasoningOpt = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per question (JSON Lines) instead of plain text.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Ask questions about a recording; prints only the answers (one blank line between several)."""
    options = _decoding_options(temperature, top_p, top_k, max_new_tokens, seed)
    with _reported_errors():
        samples = _read_audio(audio)  # before the model loads: a bad path fails fast
        engine = _load_engine(model, device, dtype, time_markers, quiet)
        clip = engine.encode(samples)
        if clip.seconds > LONG_AUDIO_SECONDS and not quiet:
            stderr.print(f"moss: {audio}: {clip.seconds / 60:.1f} min of audio in one request; "
                         "the model is tuned for under 10 minutes")
        for index, question in enumerate(questions):
            answer = engine.ask(clip, question, options)
            if show_reasoning and answer.reasoning:
                stderr.print(answer.reasoning, markup=False)
            if json_lines:
                record = {"audio": str(audio), "question": question, "answer": answer.text,
                          "finish_reason": answer.finish_reason, "model": model}
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(("\n" if index else "") + answer.text + "\n")
            sys.stdout.flush()


def _decoding_options(temperature: float, top_p: float, top_k: int, max_new_tokens: int, seed: int | None):
    from .decoding import DecodingOptions

    try:
        return DecodingOptions(temperature, top_p, top_k, max_new_tokens, seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _read_audio(path: Path):
    from .audio import MIN_SAMPLES, SAMPLE_RATE, load_audio

    samples = load_audio(path)
    if samples.size < MIN_SAMPLES:
        raise AudioError(f"{path}: too short ({samples.size / SAMPLE_RATE:.3f} s of audio)")
    return samples


def _load_engine(model: str, device: str, dtype: str, time_markers: bool, quiet: bool):
    from .engine import MossAudio

    if not quiet:
        stderr.print(f"moss: loading {model}", markup=False)
    engine = MossAudio.load(model, device=device, dtype=dtype, time_markers=time_markers)
    if not quiet:
        stderr.print(f"moss: model on {engine.model.device} in {str(engine.model.dtype).removeprefix('torch.')}")
    return engine


@contextmanager
def _reported_errors():
    """Domain errors become one line on stderr and an exit code; never a traceback."""
    try:
        yield
    except (ModelUnavailableError, CheckpointError) as exc:
        _fail(exc, EXIT_USAGE)
    except AudioError as exc:
        _fail(exc, EXIT_FAILED)
    except MossError as exc:
        _fail(exc, EXIT_USAGE)
    except KeyboardInterrupt:
        stderr.print("moss: interrupted")
        raise typer.Exit(130) from None


def _fail(exc: Exception, code: int) -> None:
    stderr.print(f"moss: error: {exc}", markup=False)
    raise typer.Exit(code) from None


if __name__ == "__main__":
    app()
