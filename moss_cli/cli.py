"""The `moss` command line: thin commands over one pipeline. Only the CLI prints and picks exit codes."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from . import DEFAULT_MODEL, __version__
from .errors import MossError
from .runner import OutputSpec, UsageError, report, stderr

app = typer.Typer(
    help="Audio understanding from the shell with MOSS-Audio: transcripts, subtitles, captions, answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---- shared options: defined once, used by every command --------------------------------------
Inputs = Annotated[list[str], typer.Argument(
    help="Audio or video files, directories (searched recursively), globs, - (audio on stdin, or a list of "
    "paths: one a line or NUL-separated) or @list.txt.", show_default=False)]
ModelOpt = Annotated[str, typer.Option(
    "--model", "-m", envvar="MOSS_MODEL", rich_help_panel="Model",
    help="Checkpoint: a local directory or a Hugging Face hub id (cached; honours HF_HUB_OFFLINE).")]
DeviceOpt = Annotated[str, typer.Option(rich_help_panel="Model", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[str, typer.Option(
    rich_help_panel="Model",
    help="auto, float32, bfloat16 or float16. auto picks bfloat16 on GPUs (the checkpoint's own dtype) and "
    "float32 on CPU, where bfloat16 matmuls are slow on most processors.")]
TemperatureOpt = Annotated[float, typer.Option(min=0.0, rich_help_panel="Decoding", help="0 decodes greedily; above 0 samples.")]
TopPOpt = Annotated[float, typer.Option(min=0.0, max=1.0, rich_help_panel="Decoding", help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option(min=0, rich_help_panel="Decoding", help="Sample from the k likeliest tokens; 0: all.")]
MaxTokensOpt = Annotated[int | None, typer.Option(
    min=1, rich_help_panel="Decoding", show_default="scales with audio length",
    help="Most tokens to generate per request.")]
SeedOpt = Annotated[int | None, typer.Option(rich_help_panel="Decoding", help="Random seed for sampling.")]
TimeMarkersOpt = Annotated[bool, typer.Option(
    "--time-markers/--no-time-markers", rich_help_panel="Model", help="Mark every 2 s of audio in the prompt.")]
PromptOpt = Annotated[str | None, typer.Option(rich_help_panel="Decoding", help="Ask this instead of the task's official prompt.")]
ServerOpt = Annotated[str | None, typer.Option(
    envvar="MOSS_SERVER", rich_help_panel="Server",
    help="Use an OpenAI-compatible server instead of a local model (base URL ending in /v1).")]
ServerModelOpt = Annotated[str | None, typer.Option(rich_help_panel="Server", help="Model name on the server (default: its first).")]
ApiKeyOpt = Annotated[str | None, typer.Option(envvar="MOSS_API_KEY", rich_help_panel="Server", help="Bearer token for the server.")]
TimeoutOpt = Annotated[float, typer.Option(min=1.0, rich_help_panel="Server", help="Seconds to wait for one server reply.")]
OutputDirOpt = Annotated[Path | None, typer.Option(
    "--output-dir", "-o", rich_help_panel="Output",
    help="Write <input stem>.<ext> files here instead of stdout, mirroring each folder given.")]
SkipExistingOpt = Annotated[bool, typer.Option(
    "--skip-existing", rich_help_panel="Batch",
    help="Skip inputs whose outputs exist and were made from the same content, model and options.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", rich_help_panel="Batch", help="Replace outputs even if another input or tool made them.")]
ErrorsOpt = Annotated[Path | None, typer.Option(
    "--errors", rich_help_panel="Batch", help="Write the failures to this file as JSON Lines.")]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", "-j", min=1, rich_help_panel="Batch",
    help="Decode the next files while one is processed; with --server, send up to N requests at once.")]
BatchSizeOpt = Annotated[int | None, typer.Option(
    min=1, rich_help_panel="Model", show_default="from free memory",
    help="Chunks decoded together by the local model.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr.")]
ShowReasoningOpt = Annotated[bool, typer.Option(
    "--show-reasoning", help="Print a Thinking model's <think> reasoning to stderr.")]
SrtOpt = Annotated[bool, typer.Option("--srt", rich_help_panel="Output", help="SubRip subtitles.")]
VttOpt = Annotated[bool, typer.Option("--vtt", rich_help_panel="Output", help="WebVTT subtitles.")]
JsonOpt = Annotated[bool, typer.Option("--json", rich_help_panel="Output", help="JSON (JSON Lines for several inputs on stdout).")]
TxtOpt = Annotated[bool, typer.Option("--txt", rich_help_panel="Output", help="Plain text (the default).")]
TsvOpt = Annotated[bool, typer.Option("--tsv", rich_help_panel="Output", help="start<TAB>end<TAB>text, times in ms.")]
LineCharsOpt = Annotated[int, typer.Option(min=1, rich_help_panel="Subtitles", help="Most characters per subtitle line.")]
LinesOpt = Annotated[int, typer.Option(min=1, rich_help_panel="Subtitles", help="Most lines per cue.")]
CueSecondsOpt = Annotated[float, typer.Option(min=0.1, rich_help_panel="Subtitles", help="Longest cue, in seconds.")]


@dataclass(frozen=True)
class EngineChoice:
    model: str
    device: str
    dtype: str
    time_markers: bool
    server: str | None
    server_model: str | None
    api_key: str | None
    timeout: float
    batch_size: int | None = None  # local: rows decoded together (None: from free memory)
    jobs: int = 1  # server: requests in flight


@dataclass(frozen=True)
class BatchFlags:
    skip_existing: bool
    overwrite: bool
    errors: Path | None
    jobs: int
    quiet: bool


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int | None
    seed: int | None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moss {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Audio understanding from the shell with MOSS-Audio: transcripts, subtitles, captions, answers."""


@app.command()
def transcribe(
    audio: Inputs,
    words: Annotated[bool, typer.Option("--words", help="Word-level times: one cue per word in SRT/VTT.")] = False,
    srt: SrtOpt = False, vtt: VttOpt = False, json_: JsonOpt = False, txt: TxtOpt = False,
    output_dir: OutputDirOpt = None,
    max_line_chars: LineCharsOpt = 42, max_lines: LinesOpt = 2, max_cue_seconds: CueSecondsOpt = 7.0,
    prompt: PromptOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = 1, batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Transcribe speech with times: text, SRT, VTT or JSON, sentence or word level."""
    from .tasks import TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS

    task = (TRANSCRIBE_WORDS if words else TRANSCRIBE_SENTENCES).with_prompt(prompt)
    layout = _layout(max_line_chars, max_lines, max_cue_seconds, word_cues=words)
    outputs = OutputSpec(_formats(srt=srt, vtt=vtt, json=json_, txt=txt), output_dir, layout)
    _run(audio, outputs, EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet), task, "transcribing",
         lambda pipeline, rec: pipeline.timed(task, rec))


@app.command()
def events(
    audio: Inputs,
    json_: JsonOpt = False, srt: SrtOpt = False, vtt: VttOpt = False, tsv: TsvOpt = False, txt: TxtOpt = False,
    output_dir: OutputDirOpt = None,
    max_line_chars: LineCharsOpt = 42, max_lines: LinesOpt = 2, max_cue_seconds: CueSecondsOpt = 7.0,
    prompt: PromptOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = 1, batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Sound events in time order: `start - end: description` lines, JSON, TSV or subtitles."""
    from .tasks import EVENTS

    task = EVENTS.with_prompt(prompt)
    layout = _layout(max_line_chars, max_lines, max_cue_seconds)
    outputs = OutputSpec(_formats(json=json_, srt=srt, vtt=vtt, tsv=tsv, txt=txt), output_dir, layout)
    _run(audio, outputs, EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet), task, "listening to",
         lambda pipeline, rec: pipeline.timed(task, rec))


@app.command()
def caption(
    audio: Inputs,
    speech: Annotated[bool, typer.Option("--speech", help="Describe the voice (JSON: gender, age, pitch, ...).")] = False,
    json_: JsonOpt = False, txt: TxtOpt = False, output_dir: OutputDirOpt = None,
    prompt: PromptOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = 1, batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Describe what can be heard (or, with --speech, the voice)."""
    from .tasks import CAPTION, SPEECH_CAPTION

    task = (SPEECH_CAPTION if speech else CAPTION).with_prompt(prompt)
    instruction = ("Combine these into one JSON object with the same fields, describing the voice over the whole "
                   "recording." if speech else "Combine these into one description of the whole recording.")
    _run(audio, OutputSpec(_formats(json=json_, txt=txt), output_dir),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, instruction))


@app.command("describe-music")
def describe_music(
    audio: Inputs,
    json_: JsonOpt = False, txt: TxtOpt = False, output_dir: OutputDirOpt = None,
    prompt: PromptOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = 1, batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Describe music: style and tempo, harmony, instruments, structure, mood."""
    from .tasks import MUSIC

    task = MUSIC.with_prompt(prompt)
    instruction = "Combine these into one description of the whole piece, covering the same aspects."
    _run(audio, OutputSpec(_formats(json=json_, txt=txt), output_dir),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, instruction))


@app.command()
def ask(
    audio: Annotated[Path, typer.Argument(help="Recording to ask about.", show_default=False)],
    questions: Annotated[list[str], typer.Argument(help="One or more questions, sent verbatim.", show_default=False)],
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per question (JSON Lines).")] = False,
    show_reasoning: ShowReasoningOpt = False,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: Annotated[int, typer.Option(min=1, rich_help_panel="Decoding", help="Most tokens per answer.")] = 1024,
    seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    quiet: QuietOpt = False,
) -> None:
    """Ask questions about a recording; prints only the answers (a blank line between several).

    Up to 10 minutes of audio go to the model in one request. Longer recordings: a question that
    names a time ("at 7:30", "between 5 and 7 minutes") is answered from the audio around it,
    any other from every part of the file, combined.
    """
    engine_choice = EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout)
    sampling = Sampling(temperature, top_p, top_k, max_new_tokens, seed)
    raise typer.Exit(_run_ask(audio, questions, engine_choice, sampling, quiet, json_lines, show_reasoning))


# ---- helpers -------------------------------------------------------------------------------------
def _formats(**flags: bool) -> tuple[str, ...]:
    chosen = tuple(name for name, on in flags.items() if on)
    return chosen or ("txt",)


def _layout(max_line_chars: int, max_lines: int, max_cue_seconds: float, word_cues: bool = False):
    from .subtitles import CueLayout

    return CueLayout(max_line_chars, max_lines, max_cue_seconds, word_cues)


def _run(raw_inputs, outputs, engine_choice, sampling, flags: BatchFlags, task, label, work) -> None:
    """Check the command line, start the engine on first use, process every file, exit."""
    from . import interrupts
    from .inputs import expand_inputs
    from .runner import BatchPolicy, check_errors_file, run_batch

    try:
        _check_finite()
        if flags.skip_existing and flags.overwrite:
            raise UsageError("--skip-existing and --overwrite contradict each other")
        check_errors_file(flags.errors)
        inputs = expand_inputs(raw_inputs)
        if not inputs.files and not inputs.problems:
            raise UsageError("no audio files among the inputs")
        outputs.check(len(inputs.files))
        options = _pipeline_options(sampling)
    except (MossError, KeyboardInterrupt) as exc:  # Ctrl-C while a long list is read from stdin
        raise typer.Exit(report(exc)) from None
    engine_choice = replace(engine_choice, jobs=flags.jobs)
    engine = _LazyEngine(engine_choice, flags.quiet)
    settings = _settings(task, engine_choice, sampling, outputs)
    policy = BatchPolicy(flags.skip_existing, flags.overwrite, flags.errors, flags.jobs, flags.quiet, settings)

    def process(recording, bar):
        from .pipeline import Pipeline

        return work(Pipeline(engine.get(), options, bar), recording)

    try:
        code = run_batch(inputs, process, outputs, policy, label)
    except (Exception, KeyboardInterrupt) as exc:  # model missing, server gone: ends the whole run
        code = report(exc)
    if interrupts.received is not None:  # threads may still wait on a server or a decoder: don't wait
        interrupts.exit_now(code)
    raise typer.Exit(code)


def _check_finite() -> None:
    """inf and nan pass click's range checks; no option of moss means anything with them."""
    import math

    try:  # typer 0.2x carries its own copy of click
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context

    context = get_current_context(silent=True)
    for parameter in context.command.params if context else []:
        value = context.params.get(parameter.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{parameter.opts[0]}: {value} is not a finite number")


def _settings(task, engine_choice: EngineChoice, sampling: Sampling, outputs) -> dict:
    """Everything that shapes an output, recorded in its manifest for --skip-existing."""
    from dataclasses import asdict

    engine = {k: v for k, v in asdict(engine_choice).items()
              if k not in ("api_key", "timeout", "device", "batch_size", "jobs")}
    if engine_choice.server:
        engine.pop("dtype")
    return {"task": task.name, "prompt": task.prompt, "output": task.output, "engine": engine,
            "sampling": asdict(sampling), "layout": asdict(outputs.layout)}


def _run_ask(path, questions, engine_choice, sampling, quiet, json_lines, show_reasoning) -> int:
    """One recording, several questions: the audio is read once and (locally) encoded once."""
    from .pipeline import Pipeline
    from .progress import ProgressBar
    from .runner import read_recording

    from .interrupts import signals_interrupt
    from .text import printable_name

    try:
        _check_finite()
        with signals_interrupt():  # SIGTERM too ends the run through here, so temporary files go
            recording = read_recording(path)  # before the model loads: a bad path fails fast
            with recording.source:  # a converted input's temporary file goes with it
                pipeline = Pipeline(_LazyEngine(engine_choice, quiet).get(), _pipeline_options(sampling))
                label = f"asking about {printable_name(path.name)}"
                with ProgressBar(label, recording.duration, enabled=not quiet) as bar:
                    pipeline.progress = bar
                    results = pipeline.ask_all(recording, questions)
        for index, result in enumerate(results):
            _print_answer(result, index, json_lines, show_reasoning)
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    return 0


def _print_answer(result, index: int, json_lines: bool, show_reasoning: bool) -> None:
    if show_reasoning and result.reasoning:
        stderr.print(result.reasoning, markup=False)
    if json_lines:
        record = {"audio": result.audio, "question": result.question, "answer": result.text,
                  "finish_reason": result.finish_reason, "model": result.model}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(("\n" if index else "") + result.text + "\n")
    sys.stdout.flush()


def _pipeline_options(sampling: Sampling):
    from .decoding import DecodingOptions
    from .pipeline import PipelineOptions

    try:
        decoding = DecodingOptions(sampling.temperature, sampling.top_p, sampling.top_k,
                                   sampling.max_new_tokens or 1024, sampling.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return PipelineOptions(decoding=decoding, token_cap=sampling.max_new_tokens)


class _LazyEngine:
    """Loads the model (or connects to the server) when the first file needs it, once."""

    def __init__(self, choice: EngineChoice, quiet: bool):
        self.choice = choice
        self.quiet = quiet
        self._engine = None

    def get(self):
        if self._engine is None:
            self._engine = self._open()
        return self._engine

    def _open(self):
        choice = self.choice
        if choice.server:
            from .remote import RemoteEngine, ServerConfig

            key = choice.api_key or os.environ.get("OPENAI_API_KEY")
            return RemoteEngine(ServerConfig(choice.server, choice.server_model, choice.model, key,
                                             choice.timeout, concurrency=choice.jobs))
        from .engine import MossAudio
        from .text import printable_name

        if not self.quiet:
            stderr.print(f"moss: loading {printable_name(choice.model)}", markup=False)
        engine = MossAudio.load(choice.model, device=choice.device, dtype=choice.dtype,
                                time_markers=choice.time_markers, batch_size=choice.batch_size)
        if not self.quiet:
            stderr.print(f"moss: model on {engine.model.device} in {str(engine.model.dtype).removeprefix('torch.')}")
        return engine


if __name__ == "__main__":
    app()
