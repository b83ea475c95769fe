"""The `moss` command line: thin commands over one pipeline. Only the CLI prints and picks exit codes."""

from __future__ import annotations

import json
import math
import sys
from concurrent.futures import Future
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import DEFAULT_MODEL, __version__
from ..errors import MossError
from .helptext import Command, Group, examples
from ..batch.runner import OutputSpec, UsageError, report, stderr

app = typer.Typer(
    help="Audio understanding from the shell with MOSS-Audio: transcripts, subtitles, captions, answers.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=Group,  # flags shown as flags in --help
)

# ---- shared options: defined once, used by every command --------------------------------------
Inputs = Annotated[list[str], typer.Argument(
    help="Audio or video files, directories (searched recursively), globs, - (audio on stdin, or a list of "
    "paths: one a line or NUL-separated) or @list.txt.", show_default=False, metavar="AUDIO")]
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
SeedOpt = Annotated[int | None, typer.Option(rich_help_panel="Decoding", show_default="random", help="Random seed for sampling.")]
TimeMarkersOpt = Annotated[bool, typer.Option(
    "--time-markers/--no-time-markers", rich_help_panel="Model", help="Mark every 2 s of audio in the prompt.")]
PromptOpt = Annotated[str | None, typer.Option(
    rich_help_panel="Decoding", show_default="the task's official prompt", help="Ask this instead of the task's official prompt.")]
LanguageOpt = Annotated[str | None, typer.Option(
    "--language", metavar="CODE", rich_help_panel="Prompt", show_default="none: the model follows the speech",
    help="The speech's language (en, zh, zh-Hant, yue, German, ...): the prompt asks for the transcript in it, "
    "in its script. A hint, not a constraint.")]
ContextOpt = Annotated[str | None, typer.Option(
    "--context", metavar="TEXT", rich_help_panel="Prompt", show_default="none",
    help="What the recording is about, names and jargon: added to the prompt as context.")]
HotwordsOpt = Annotated[list[str] | None, typer.Option(
    "--hotwords", metavar="A,B,C", rich_help_panel="Prompt", show_default="none",
    help="Terms to spell as written, comma-separated or repeated: added to the prompt.")]
ServerOpt = Annotated[list[str] | None, typer.Option(
    envvar="MOSS_SERVER", rich_help_panel="Server", show_default="none: the local model",
    help="Use an OpenAI-compatible server instead of a local model (base URL ending in /v1). Give it several "
    "times (or MOSS_SERVER=URL,URL) to share the requests among servers.")]
ServerModelOpt = Annotated[str | None, typer.Option(
    rich_help_panel="Server", show_default="the server's first", help="Model name on the server.")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    envvar="MOSS_API_KEY", rich_help_panel="Server", show_default="none",
    help="Bearer token for the server (OPENAI_API_KEY is never read: a key goes only where you send it).")]
TimeoutOpt = Annotated[float, typer.Option(
    min=1.0, rich_help_panel="Server",
    help="Seconds one server request may take, end to end (connecting, sending, waiting, receiving).")]
MaxRequestOpt = Annotated[float | None, typer.Option(
    "--max-request-seconds", min=4.0, rich_help_panel="Server", show_default="600, or what a server says fits",
    help="Most seconds of audio in one request; longer audio is asked in windows (vLLM: max_num_batched_tokens / 12.5).")]
ThinkingOpt = Annotated[bool | None, typer.Option(
    "--thinking/--no-thinking", rich_help_panel="Server", show_default="from the served model's path",
    help="Whether the server's model is a Thinking checkpoint (it needs tokens to reason).")]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", rich_help_panel="Batch", metavar="K/N", show_default="all of them",
    help="Process only the K-th of N disjoint parts of the inputs (job arrays: the same inputs on N machines).")]
OutputDirOpt = Annotated[Path | None, typer.Option(
    "--output-dir", "-o", rich_help_panel="Output", show_default="stdout",
    help="Write <input stem>.<ext> files here instead of stdout, mirroring each folder given.")]
OutputNameOpt = Annotated[str | None, typer.Option(
    "--output-name", rich_help_panel="Output", metavar="TEMPLATE", show_default="{stem}",
    help="Output file name without extension, from {stem} (input name without extension), {name} (with it), "
    "{lang} (--language, else und), {task}, {model} (short name) and {date} (YYYY-MM-DD), e.g. {stem}.{lang}.")]
SkipExistingOpt = Annotated[bool, typer.Option(
    "--skip-existing", rich_help_panel="Batch",
    help="Skip inputs whose outputs exist and were made from the same content, model and options.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", rich_help_panel="Batch", help="Replace outputs even if another input or tool made them.")]
ErrorsOpt = Annotated[Path | None, typer.Option(
    "--errors", rich_help_panel="Batch", show_default="stderr only", help="Write the failures to this file as JSON Lines.")]
JobsOpt = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, rich_help_panel="Batch", show_default="1; with --server, one per server",
    help="Decode the next files while one is processed; with --server, up to N requests in flight in all.")]
BatchSizeOpt = Annotated[int | None, typer.Option(
    min=1, rich_help_panel="Model", show_default="from free memory",
    help="Chunks decoded together by the local model.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    min=1, rich_help_panel="Model", show_default="torch's own (the CPU's cores)",
    help="CPU threads for the local model, held for the whole run.")]
QuantizeOpt = Annotated[str | None, typer.Option(
    rich_help_panel="Model", show_default="off",
    help="int8: int8 weights for the LLM and output layer on the CPU (faster; answers can differ from float32).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr.")]
ShowReasoningOpt = Annotated[bool, typer.Option(
    "--show-reasoning", help="Print a Thinking model's <think> reasoning to stderr.")]
SrtOpt = Annotated[bool, typer.Option("--srt", rich_help_panel="Output", help="SubRip subtitles.")]
VttOpt = Annotated[bool, typer.Option("--vtt", rich_help_panel="Output", help="WebVTT subtitles.")]
JsonOpt = Annotated[bool, typer.Option("--json", rich_help_panel="Output", help="JSON (JSON Lines for several inputs on stdout).")]
TxtOpt = Annotated[bool, typer.Option("--txt", rich_help_panel="Output", help="Plain text (the default).")]
TsvOpt = Annotated[bool, typer.Option("--tsv", rich_help_panel="Output", help="start<TAB>end<TAB>text, times in ms.")]
AssOpt = Annotated[bool, typer.Option("--ass", rich_help_panel="Output", help="Advanced SubStation Alpha subtitles.")]
AllOpt = Annotated[bool, typer.Option("--all", rich_help_panel="Output", help="Every format this command writes (needs -o).")]
HtmlOpt = Annotated[bool, typer.Option(
    "--html", rich_help_panel="Output",
    help="A self-contained page per recording: waveform, timeline, list and a player (index.html for several).")]


class HtmlAudio(str, Enum):
    auto = "auto"  # a link when the page is a file and browsers play the input, else embedded
    link = "link"
    embed = "embed"
    none = "none"


HtmlAudioOpt = Annotated[HtmlAudio, typer.Option(
    "--html-audio", rich_help_panel="Output",
    help="The page's audio: a relative link to the input, embedded (Opus), none, or auto (link when it can).")]
LineWidthOpt = Annotated[int, typer.Option(
    "--max-line-width", "--max-line-chars", min=1, rich_help_panel="Subtitles",
    help="Most display columns per subtitle line (a Chinese, Japanese or Korean character takes 2).")]
LinesOpt = Annotated[int, typer.Option(min=1, rich_help_panel="Subtitles", help="Most lines per cue.")]
CueSecondsOpt = Annotated[float, typer.Option(min=0.1, rich_help_panel="Subtitles", help="Longest cue, in seconds.")]
SpeakersOpt = Annotated[str | None, typer.Option(
    "--speakers", metavar="N|auto", rich_help_panel="Speakers", show_default="off",
    help="Label who speaks: N speakers, or auto to find how many (1 for a monologue).")]
SpeakerNamesOpt = Annotated[str | None, typer.Option(
    "--speaker-names", rich_help_panel="Speakers", show_default="S1, S2, ...",
    help="Names for the speakers in order of first appearance, comma-separated (alone: that many speakers).")]
DiarizerOpt = Annotated[str, typer.Option(
    "--diarizer", rich_help_panel="Speakers",
    help="resemblyzer (works offline: its weights ship with it) or pyannote (needs pyannote.audio and its "
    "gated pipeline in the Hugging Face cache).")]
MinCueSecondsOpt = Annotated[float, typer.Option(
    min=0.0, rich_help_panel="Subtitles", help="Shortest cue, in seconds, when there is silence to extend it into.")]
GapOpt = Annotated[float, typer.Option(
    min=0.0, rich_help_panel="Subtitles", help="Least time between cues, in seconds (2 frames); a shorter gap is closed up.")]
CpsOpt = Annotated[float, typer.Option(
    min=0.0, rich_help_panel="Subtitles",
    help="Most characters per second to read (20 suits Latin scripts); a faster cue is extended into silence. 0: no limit.")]
HighlightOpt = Annotated[bool, typer.Option(
    "--highlight-words", rich_help_panel="Subtitles",
    help="SRT/VTT: one cue per spoken word, the current word underlined (implies --words).")]


@dataclass(frozen=True)
class EngineChoice:
    model: str
    device: str
    dtype: str
    time_markers: bool
    servers: tuple[str, ...] | list[str] | None  # --server URLs (each may list several, comma-separated)
    server_model: str | None
    api_key: str | None
    timeout: float
    batch_size: int | None = None  # local: rows decoded together (None: from free memory)
    jobs: int = 1  # server: requests in flight, over all servers
    thinking: bool | None = None  # a Thinking checkpoint? None: from the model's name or path
    max_request_seconds: float | None = None  # the most audio in one request
    threads: int | None = None  # --threads: torch's CPU threads for the run
    quantize: str | None = None  # --quantize int8 (local, CPU)


@dataclass(frozen=True)
class BatchFlags:
    skip_existing: bool
    overwrite: bool
    errors: Path | None
    jobs: int | None  # None: 1, or one per server
    quiet: bool
    shard: str | None = None  # K/N


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


@app.command(cls=Command, epilog=examples("transcribe"),
             short_help="Transcribe speech with times, as text or subtitles.")
def transcribe(
    audio: Inputs,
    words: Annotated[bool, typer.Option(
        "--words", help="Word-level times: subtitle cues keep each word's time (VTT inline timestamps, ASS karaoke).")] = False,
    srt: SrtOpt = False, vtt: VttOpt = False, json_: JsonOpt = False, txt: TxtOpt = False, tsv: TsvOpt = False,
    ass: AssOpt = False, html: HtmlOpt = False, all_: AllOpt = False, html_audio: HtmlAudioOpt = HtmlAudio.auto,
    output_dir: OutputDirOpt = None, output_name: OutputNameOpt = None,
    max_line_chars: LineWidthOpt = 42, max_lines: LinesOpt = 2, max_cue_seconds: CueSecondsOpt = 7.0,
    min_cue_seconds: MinCueSecondsOpt = 0.833, min_gap_seconds: GapOpt = 0.066, max_cps: CpsOpt = 20.0,
    highlight_words: HighlightOpt = False,
    prompt: PromptOpt = None, language: LanguageOpt = None, context: ContextOpt = None, hotwords: HotwordsOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    max_request_seconds: MaxRequestOpt = None, thinking: ThinkingOpt = None,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = None, shard: ShardOpt = None, batch_size: BatchSizeOpt = None,
    threads: ThreadsOpt = None, quantize: QuantizeOpt = None,
    speakers: SpeakersOpt = None, speaker_names: SpeakerNamesOpt = None, diarizer: DiarizerOpt = "resemblyzer",
    quiet: QuietOpt = False,
) -> None:
    """Transcribe speech with times: text, SRT, VTT, ASS, TSV or JSON, sentence or word level, with speakers."""
    from ..tasks.specs import TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS

    words = words or highlight_words
    task = _hinted((TRANSCRIBE_WORDS if words else TRANSCRIBE_SENTENCES).with_prompt(prompt), language, context, hotwords)
    layout = _layout(max_line_chars, max_lines, max_cue_seconds, min_cue_seconds, min_gap_seconds, max_cps,
                     words=words, highlight_words=highlight_words)
    formats = _formats(all_, txt=txt, srt=srt, vtt=vtt, ass=ass, tsv=tsv, json=json_, html=html)
    outputs = OutputSpec(formats, output_dir, layout, html_audio.value, output_name)
    _run(audio, outputs, EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "transcribing",
         lambda pipeline, rec: pipeline.timed(task, rec), speakers=(speakers, speaker_names, diarizer), language=language)


@app.command(cls=Command, epilog=examples("events"), short_help="Sound events in time order, as text, JSON, TSV or subtitles.")
def events(
    audio: Inputs,
    json_: JsonOpt = False, srt: SrtOpt = False, vtt: VttOpt = False, tsv: TsvOpt = False, txt: TxtOpt = False,
    ass: AssOpt = False, html: HtmlOpt = False, all_: AllOpt = False, html_audio: HtmlAudioOpt = HtmlAudio.auto,
    output_dir: OutputDirOpt = None, output_name: OutputNameOpt = None,
    max_line_chars: LineWidthOpt = 42, max_lines: LinesOpt = 2, max_cue_seconds: CueSecondsOpt = 7.0,
    min_cue_seconds: MinCueSecondsOpt = 0.833, min_gap_seconds: GapOpt = 0.066, max_cps: CpsOpt = 20.0,
    prompt: PromptOpt = None, context: ContextOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    max_request_seconds: MaxRequestOpt = None, thinking: ThinkingOpt = None,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = None, shard: ShardOpt = None, batch_size: BatchSizeOpt = None,
    threads: ThreadsOpt = None, quantize: QuantizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Sound events in time order: `start - end: description` lines, JSON, TSV or subtitles."""
    from ..tasks.specs import EVENTS

    task = _hinted(EVENTS.with_prompt(prompt), context=context)
    layout = _layout(max_line_chars, max_lines, max_cue_seconds, min_cue_seconds, min_gap_seconds, max_cps)
    formats = _formats(all_, txt=txt, srt=srt, vtt=vtt, ass=ass, tsv=tsv, json=json_, html=html)
    outputs = OutputSpec(formats, output_dir, layout, html_audio.value, output_name)
    _run(audio, outputs, EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "listening to",
         lambda pipeline, rec: pipeline.timed(task, rec))


@app.command(cls=Command, epilog=examples("caption"), short_help="Describe what can be heard (--speech: the voice).")
def caption(
    audio: Inputs,
    speech: Annotated[bool, typer.Option("--speech", help="Describe the voice (JSON: gender, age, pitch, ...).")] = False,
    json_: JsonOpt = False, txt: TxtOpt = False, html: HtmlOpt = False, all_: AllOpt = False,
    html_audio: HtmlAudioOpt = HtmlAudio.auto, output_dir: OutputDirOpt = None, output_name: OutputNameOpt = None,
    prompt: PromptOpt = None, context: ContextOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    max_request_seconds: MaxRequestOpt = None, thinking: ThinkingOpt = None,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = None, shard: ShardOpt = None, batch_size: BatchSizeOpt = None,
    threads: ThreadsOpt = None, quantize: QuantizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Describe what can be heard (or, with --speech, the voice)."""
    from ..tasks.specs import CAPTION, SPEECH_CAPTION

    task = _hinted((SPEECH_CAPTION if speech else CAPTION).with_prompt(prompt), context=context)
    instruction = ("Combine these into one JSON object with the same fields, describing the voice over the whole "
                   "recording." if speech else "Combine these into one description of the whole recording.")
    _run(audio, OutputSpec(_formats(all_, txt=txt, json=json_, html=html), output_dir, html_audio=html_audio.value,
                    name_template=output_name),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, instruction))


@app.command("describe-music", cls=Command, epilog=examples("describe-music"),
             short_help="Describe music: style, tempo, harmony, instruments, mood.")
def describe_music(
    audio: Inputs,
    json_: JsonOpt = False, txt: TxtOpt = False, html: HtmlOpt = False, all_: AllOpt = False,
    html_audio: HtmlAudioOpt = HtmlAudio.auto, output_dir: OutputDirOpt = None, output_name: OutputNameOpt = None,
    prompt: PromptOpt = None, context: ContextOpt = None,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: MaxTokensOpt = None, seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    max_request_seconds: MaxRequestOpt = None, thinking: ThinkingOpt = None,
    skip_existing: SkipExistingOpt = False, overwrite: OverwriteOpt = False, errors: ErrorsOpt = None,
    jobs: JobsOpt = None, shard: ShardOpt = None, batch_size: BatchSizeOpt = None,
    threads: ThreadsOpt = None, quantize: QuantizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Describe music: style and tempo, harmony, instruments, structure, mood."""
    from ..tasks.specs import MUSIC

    task = _hinted(MUSIC.with_prompt(prompt), context=context)
    instruction = "Combine these into one description of the whole piece, covering the same aspects."
    _run(audio, OutputSpec(_formats(all_, txt=txt, json=json_, html=html), output_dir, html_audio=html_audio.value,
                    name_template=output_name),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, instruction))


@app.command(cls=Command, epilog=examples("ask"), short_help="Ask questions about recordings; prints the answers.")
def ask(
    audio: Annotated[list[str], typer.Argument(
        help="Recordings: files, directories, globs, - or @list.txt, as transcribe takes them. Without "
        "-Q/--questions: one recording, then its questions (moss ask talk.wav \"Who speaks?\").", show_default=False)],
    question: Annotated[list[str] | None, typer.Option(
        "--question", "-Q", show_default="none: the questions follow the recording",
        help="A question to ask about every recording, sent verbatim; give it several times.")] = None,
    questions_file: Annotated[str | None, typer.Option(
        "--questions", metavar="FILE", show_default="none",
        help="Questions, one a line (blank lines and lines starting with # skipped); - reads them from stdin.")] = None,
    json_lines: Annotated[bool, typer.Option(
        "--json", help="One JSON object per recording and question (JSON Lines; always so for several recordings).")] = False,
    html: Annotated[bool, typer.Option(
        "--html", rich_help_panel="Output",
        help="A page with the questions and answers beside a player (one recording): on stdout instead of the "
        "answers, or with -o DIR as DIR/<stem>.html while the answers still print.")] = False,
    html_audio: HtmlAudioOpt = HtmlAudio.auto, output_dir: OutputDirOpt = None,
    show_reasoning: ShowReasoningOpt = False,
    model: ModelOpt = DEFAULT_MODEL, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
    time_markers: TimeMarkersOpt = True,
    temperature: TemperatureOpt = 0.0, top_p: TopPOpt = 1.0, top_k: TopKOpt = 50,
    max_new_tokens: Annotated[int, typer.Option(min=1, rich_help_panel="Decoding", help="Most tokens per answer.")] = 1024,
    seed: SeedOpt = None,
    server: ServerOpt = None, server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 600.0,
    max_request_seconds: MaxRequestOpt = None, thinking: ThinkingOpt = None,
    errors: ErrorsOpt = None, jobs: JobsOpt = None, shard: ShardOpt = None,
    threads: ThreadsOpt = None, quantize: QuantizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Ask questions about recordings; prints only the answers (a blank line between several).

    `moss ask FILE QUESTION...` asks about one recording. With -Q/--questions every argument is a
    recording: `moss ask a.mp3 calls/ -Q "Who calls?" -Q "Why?"` writes JSON Lines, one object per
    recording and question, in input order; a file that fails gets one line on stderr and the rest go on.
    Up to 10 minutes of audio go to the model in one request. Longer recordings: a question that
    asks about a time ("at 7:30", "7:30 in", "between 5 and 7 minutes") is answered from the audio
    around it, any other from every part of the file, combined. A time past the end is an error.
    """
    engine_choice = EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout,
                                 thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize)
    sampling = Sampling(temperature, top_p, top_k, max_new_tokens, seed)
    try:
        asked = _asked_questions(question, questions_file, stdin_inputs="-" in audio)
        if output_dir is not None and not html:
            raise UsageError("ask writes a file only with --html (-o DIR is where its page goes)")
        if asked is None and len(audio) < 2:
            raise UsageError("ask needs a question: moss ask FILE QUESTION..., or -Q QUESTION for every recording")
        if asked is not None and html:
            raise UsageError("--html is for one recording: moss ask FILE QUESTION... --html")
    except (MossError, KeyboardInterrupt) as exc:  # Ctrl-C while the questions are read from stdin
        raise typer.Exit(report(exc)) from None
    if asked is None:  # the single form, as it always was: the first argument is the recording
        page = OutputSpec(("html",), output_dir, html_audio=html_audio.value) if html else None
        raise typer.Exit(_run_ask(Path(audio[0]), audio[1:], engine_choice, sampling, quiet, json_lines,
                                  show_reasoning, page))
    _run_ask_batch(audio, asked, engine_choice, sampling, BatchFlags(False, False, errors, jobs, quiet, shard),
                   json_lines, show_reasoning)


@app.command("check-server", cls=Command, epilog=examples("check-server"),
             short_help="Compare the prompt a server builds with the local one.")
def check_server(
    url: Annotated[str, typer.Argument(help="The server's base URL, ending in /v1.", show_default=False)],
    model: Annotated[str, typer.Option(
        "--model", "-m", envvar="MOSS_MODEL", help="Checkpoint whose tokenizer builds the local prompt "
        "(a directory or a hub id; only the tokenizer files are downloaded).")] = DEFAULT_MODEL,
    time_markers: TimeMarkersOpt = True,
    server_model: ServerModelOpt = None, api_key: ApiKeyOpt = None, timeout: TimeoutOpt = 120.0,
) -> None:
    """Compare the prompt a server builds with the local engine's, token for token where it can say.

    Exit 0 when they match, 1 when they differ (the first difference and what to change are printed),
    2 when the server cannot be asked.
    """
    choice = EngineChoice(model, "cpu", "auto", time_markers, [url], server_model, api_key, timeout)
    raise typer.Exit(_run_check(choice))


ProbeServerOpt = Annotated[list[str] | None, typer.Option(
    "--server", envvar="MOSS_SERVER", show_default="none", metavar="URL",
    help="A server to ask check-server's probe (one token); repeat it, or MOSS_SERVER=URL,URL.")]
MachineJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for machines.")]


@app.command(cls=Command, epilog=examples("doctor"),
             short_help="What is set up here: checkpoints, device, versions, servers.")
def doctor(
    server: ProbeServerOpt = None, api_key: ApiKeyOpt = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds each server may take to answer.")] = 10.0,
    model: ModelOpt = DEFAULT_MODEL, json_: MachineJsonOpt = False,
) -> None:
    """Check this machine: MOSS-Audio checkpoints in the Hugging Face cache, the device and dtype
    --device auto and --dtype auto pick, versions and threads, and whether each --server answers.

    Exit 0 when everything asked works, 1 when a server given does not answer, 2 on a usage error.
    """
    from .doctor import doctor_lines, doctor_report

    try:
        choice = _checked(EngineChoice(model, "auto", "auto", True, server, None, api_key, timeout))
        report_ = doctor_report(list(choice.servers), choice.api_key, timeout)
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None
    sys.stdout.write((report_.to_json(model) if json_ else "\n".join(doctor_lines(report_, model))) + "\n")
    raise typer.Exit(0 if report_.ok else 1)


@app.command(cls=Command, epilog=examples("models"),
             short_help="The MOSS-Audio checkpoints in the Hugging Face cache.")
def models(
    all_: Annotated[bool, typer.Option("--all", help="Every model repo in the cache, others marked.")] = False,
    json_: MachineJsonOpt = False,
) -> None:
    """List the MOSS-Audio checkpoints in the Hugging Face cache (HF_HUB_CACHE, HF_HOME) with their
    sizes on disk and revisions; --all lists every model repo, marking those that are not MOSS-Audio."""
    from dataclasses import asdict

    from .doctor import cached_models, model_lines

    try:
        cache = cached_models()
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None
    if json_:
        shown = [asdict(model) for model in cache.models if all_ or model.moss_audio]
        sys.stdout.write(json.dumps({"cache": cache.path, "models": shown}, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(model_lines(cache, every=all_)) + "\n")


# ---- helpers -------------------------------------------------------------------------------------
def _run_check(choice: EngineChoice) -> int:
    try:
        choice = _checked(choice)
        if len(choice.servers) != 1:
            raise UsageError("check-server: give one server URL")
        from ..engine.remote.check import check_prompt
        from ..model.loading import load_tokenizer, resolve_tokenizer
        from ..engine.remote.engine import RemoteEngine, ServerConfig

        tokenizer = load_tokenizer(resolve_tokenizer(choice.model))
        engine = RemoteEngine(ServerConfig(choice.servers, choice.server_model, choice.model, choice.api_key,
                                           choice.timeout, retries=1, time_markers=choice.time_markers))
        check = check_prompt(engine, tokenizer, choice.time_markers)
    except (Exception, KeyboardInterrupt) as exc:
        code = report(exc)
        return 2 if code == 1 else code  # a server that fails the question cannot be checked: not a mismatch
    served = engine.served
    kind = f", {served.owner}" if served.owner else ""
    sys.stdout.write(f"server {engine.servers[0].name}: model {engine.name}{kind}\n")
    sys.stdout.write("\n".join(check.lines) + "\n")
    return 0 if check.matches else 1



def _hinted(task, language: str | None = None, context: str | None = None, hotwords: list[str] | None = None):
    """The task with the --language, --context and --hotwords hints after its prompt (see hints.py)."""
    from ..tasks.hints import hints_from_options

    try:
        return task.with_hints(hints_from_options(language, context, hotwords).sentences())
    except (MossError, ValueError) as exc:
        raise typer.Exit(report(UsageError(str(exc)))) from None


def _formats(every: bool, **flags: bool) -> tuple[str, ...]:
    """The extensions asked for (--all: every one the command has); plain text when none is."""
    chosen = tuple(name for name, on in flags.items() if on or every)
    return chosen or ("txt",)


def _layout(max_line_width: int, max_lines: int, max_seconds: float, min_seconds: float, min_gap: float,
            max_cps: float, **word_options: bool):
    from ..output.subtitles import CueLayout

    try:
        return CueLayout(max_line_width, max_lines, max_seconds, min_seconds, min_gap, max_cps, **word_options)
    except ValueError as exc:
        raise typer.Exit(report(UsageError(str(exc)))) from None


def _run(raw_inputs, outputs, engine_choice, sampling, flags: BatchFlags, task, label, work, speakers=(None, None, None),
         prompts: list[str] | None = None, language: str | None = None) -> None:
    """Check the command line, start the engine on first use, process every file, exit.

    `language`: the command's --language, for --output-name's {lang}."""
    from .. import interrupts
    from ..batch.inputs import expand_inputs
    from ..batch.runner import BatchPolicy, check_errors_file, run_batch
    from ..batch.shards import in_shard, parse_shard

    try:
        _check_finite()
        engine_choice = _checked(engine_choice, prompts or [task.prompt])  # prompts: ask's questions
        _use_threads(engine_choice.threads)
        shard = parse_shard(flags.shard) if flags.shard is not None else None
        if flags.skip_existing and flags.overwrite:
            raise UsageError("--skip-existing and --overwrite contradict each other")
        check_errors_file(flags.errors)
        inputs = expand_inputs(raw_inputs)
        if not inputs.files and not inputs.problems:
            raise UsageError("no audio files among the inputs")
        outputs.check(len(inputs.files))  # before sharding: every machine checks the same command line
        if outputs.name_template is not None:
            inputs = _output_naming(outputs.name_template, task, engine_choice, language).apply(inputs)
        every = len(inputs.files)
        inputs = replace(inputs, files=in_shard(inputs.files, shard))
        options = replace(_pipeline_options(sampling, engine_choice.max_request_seconds),
                          speakers=_speaker_options(*speakers))
        if options.speakers is not None:  # before any file is transcribed: a missing diarizer fails fast
            from ..speakers.voices import load_diarizer

            load_diarizer(options.speakers.diarizer)
    except (MossError, KeyboardInterrupt) as exc:  # Ctrl-C while a long list is read from stdin
        raise typer.Exit(report(exc)) from None
    if not inputs.files and not inputs.problems:  # a job array's part may hold nothing: that part is done
        if not flags.quiet:
            stderr.print(f"moss: shard {shard} holds none of the {every} inputs; nothing to do", markup=False)
        raise typer.Exit(0)
    jobs = flags.jobs or max(1, len(engine_choice.servers or ()))
    engine_choice = replace(engine_choice, jobs=jobs)
    engine = _LazyEngine(engine_choice, flags.quiet)
    settings = _settings(task, engine_choice, sampling, outputs, options.speakers)
    policy = BatchPolicy(flags.skip_existing, flags.overwrite, flags.errors, jobs, flags.quiet, settings,
                         notes=engine.notes, prepare=_speech_scan(task, engine_choice), warm_up=engine.start)

    def process(recording, bar):
        from ..tasks.pipeline import Pipeline

        return work(Pipeline(engine.get(), options, bar), recording)

    try:
        engine.check()
        code = run_batch(inputs, process, outputs, policy, label)
    except (Exception, KeyboardInterrupt) as exc:  # model missing, server gone: ends the whole run
        code = report(exc)
    if interrupts.received is not None:  # threads may still wait on a server or a decoder: don't wait
        interrupts.exit_now(code)
    raise typer.Exit(code)


def _output_naming(template: str, task, engine_choice: EngineChoice, language: str | None):
    """--output-name's fields that hold for the whole run, the template checked. {lang} is --language
    where the command has one and it was given, else "und" (undetermined, ISO 639-2): a language the
    model reports is known only after a file is processed, too late for the names that
    --skip-existing and the clash check need before any work."""
    import datetime

    from ..batch.inputs import OutputName

    model = engine_choice.server_model if engine_choice.servers and engine_choice.server_model else engine_choice.model
    naming = OutputName(template, task.name, Path(model.rstrip("/")).name or model, (language or "").strip() or "und",
                        datetime.date.today().isoformat())
    naming.check()
    return naming


def _speech_scan(task, engine_choice: EngineChoice):
    """Transcripts and events are cut where Silero VAD finds speech: the batch runner opens the next
    input and starts its scan in the background while the model (or the servers) work on the current
    one; the current input's later blocks are scanned while its first chunks are asked (pipeline)."""
    if task.output not in ("sentences", "words", "events"):
        return None  # one request per file up to 10 minutes: a scan would mostly be wasted
    from ..audio.vad import scan_ahead

    return scan_ahead


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


def _settings(task, engine_choice: EngineChoice, sampling: Sampling, outputs, speakers=None) -> dict:
    """Everything that shapes an output, recorded in its manifest for --skip-existing."""
    from dataclasses import asdict

    engine = {k: v for k, v in asdict(engine_choice).items()
              if k not in ("api_key", "timeout", "device", "batch_size", "jobs", "servers", "threads")}
    if engine_choice.servers:
        from ..engine.remote.http import redact_url
        from ..engine.remote.engine import request_extras

        engine.pop("dtype")
        servers = sorted(redact_url(url) for url in engine_choice.servers)  # no password in manifests
        engine["server"] = servers[0] if len(servers) == 1 else servers
        engine["request"] = request_extras(engine_choice.time_markers)  # what each request carries
    settings = {"task": task.name, "prompt": task.prompt, "output": task.output, "engine": engine,
                "sampling": asdict(sampling), "layout": asdict(outputs.layout)}
    if "html" in outputs.formats:
        settings["html_audio"] = outputs.html_audio
    if speakers is not None:  # only when asked: outputs made before speakers existed stay up to date
        settings["speakers"] = asdict(speakers)
    return settings


def _speaker_options(count: str | None, names: str | None, diarizer: str | None):
    """--speakers N|auto, --speaker-names A,B and --diarizer as SpeakerOptions; None when off."""
    from ..speakers.voices import SpeakerOptions

    if count is None and names is None:
        return None
    listed = tuple(name.strip() for name in names.split(",")) if names is not None else ()
    if count is None:
        number = len(listed)
    elif count.strip().lower() == "auto":
        number = None
    elif count.strip().isdigit() and int(count) >= 1:
        number = int(count)
    else:
        raise UsageError(f"--speakers takes a number of speakers (1 or more) or auto, not {count!r}")
    if number is not None and len(listed) > number:
        raise UsageError(f"--speaker-names gives {len(listed)} names for {number} speakers")
    try:
        return SpeakerOptions(number, listed, diarizer or "resemblyzer")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _asked_questions(given: list[str] | None, from_file: str | None, stdin_inputs: bool) -> list[str] | None:
    """-Q questions, then --questions FILE's lines; None when neither is given (the single form)."""
    if not given and from_file is None:
        return None
    asked = list(given or [])
    if from_file is not None:
        if from_file == "-" and stdin_inputs:
            raise UsageError("--questions - and the input - both want stdin; put the questions in a file")
        try:
            if from_file == "-":
                text = sys.stdin.read()
            else:
                with open(from_file, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--questions {from_file}: cannot read the questions ({reason})") from None
        asked += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not asked:
        raise UsageError(f"--questions {from_file}: no questions in it")
    return asked


def _run_ask_batch(inputs, questions, engine_choice, sampling, flags: BatchFlags, json_lines, show_reasoning) -> None:
    """Every recording, every question: the batch machinery of the other commands, answers as JSON Lines
    (or, for one recording without --json, as text). Several questions share one encode and prefill."""
    from ..tasks.specs import ASK

    def work(pipeline, recording):
        results = pipeline.ask_all(recording, questions)
        for result in results if show_reasoning else []:  # model text, made printable by the pipeline
            if result.reasoning:
                sys.stderr.write(result.reasoning + "\n")
        return results

    # Text only for one file named alone: a folder, glob or list (or a job array's part of one) always
    # gives JSON Lines, however many files it turns out to hold.
    one_file = len(inputs) == 1 and inputs[0] != "-" and not inputs[0].startswith("@") and Path(inputs[0]).is_file()
    outputs = OutputSpec(("answers",) if json_lines or not one_file else ("answer",))
    _run(inputs, outputs, engine_choice, sampling, flags, ASK, "asking about", work, prompts=questions)


def _run_ask(path, questions, engine_choice, sampling, quiet, json_lines, show_reasoning, page=None) -> int:
    """One recording, several questions: the audio is read once and (locally) encoded once.

    `page` (--html): the page goes to stdout instead of the answers, or with -o DIR to a file.
    """
    from ..batch.pages import ask_page_target, write_ask_page
    from ..tasks.pipeline import Pipeline, asked_time
    from .progress import ProgressBar
    from ..interrupts import signals_interrupt
    from ..batch.runner import read_recording
    from ..text import printable_name

    try:
        _check_finite()
        if page is not None:  # before the model loads: a bad command line fails fast
            if json_lines and page.output_dir is None:
                raise UsageError("--html and --json both want stdout; -o DIR writes the page to a file")
            page.check(1)
            target = ask_page_target(path, page)
        engine_choice = _checked(engine_choice, questions)
        _use_threads(engine_choice.threads)
        engine_choice = replace(engine_choice, jobs=max(1, len(engine_choice.servers)))  # each server one question
        engine = _LazyEngine(engine_choice, quiet)
        options = _pipeline_options(sampling, engine_choice.max_request_seconds)
        engine.check()  # a missing model is reported before the audio is decoded
        with signals_interrupt():  # SIGTERM too ends the run through here, so temporary files go
            recording = read_recording(path)  # before the model loads: a bad path fails fast
            for warning in [] if quiet else recording.source.warnings:
                stderr.print(printable_name(f"moss: warning: {path}: {warning}"), markup=False)
            with recording.source:  # a converted input's temporary file goes with it
                for question in questions:  # a time past the end fails before the model loads
                    asked_time(question, recording)
                pipeline = Pipeline(engine.get(), options)
                label = f"asking about {printable_name(path.name)}"
                with ProgressBar(label, recording.duration, enabled=not quiet) as bar:
                    pipeline.progress = bar
                    results = pipeline.ask_all(recording, questions)
                if page is not None:
                    from ..tasks.specs import ASK

                    settings = {**_settings(ASK, engine_choice, sampling, page), "questions": questions}
                    write_ask_page(results, recording.source, path, target, page, settings)
        page_on_stdout = page is not None and page.output_dir is None
        for index, result in enumerate(results):
            _print_answer(result, index, json_lines, show_reasoning, quiet, to_stdout=not page_on_stdout)
        for note in [] if quiet else engine.notes():
            stderr.print(f"moss: {note}", markup=False)
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    return 0


def _print_answer(result, index: int, json_lines: bool, show_reasoning: bool, quiet: bool,
                  to_stdout: bool = True) -> None:
    if show_reasoning and result.reasoning:  # model text, made printable by the pipeline
        sys.stderr.write(result.reasoning + "\n")
        sys.stderr.flush()
    if not quiet:
        for warning in result.warnings:
            stderr.print(f"moss: warning: {result.audio}: {warning}", markup=False)
    if not to_stdout:  # stdout carries the --html page
        return
    if json_lines:
        sys.stdout.write(json.dumps(result.answer_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(("\n" if index else "") + result.text + "\n")
    sys.stdout.flush()


def _checked(choice: EngineChoice, prompts=()) -> EngineChoice:
    """Engine options checked before any work. The API key loses surrounding whitespace (a key file's
    newline or CR) and must then be printable ASCII to go in a header; it is never echoed."""
    from ..engine.base import has_audio_span

    if not math.isfinite(choice.timeout) or choice.timeout <= 0:
        raise UsageError(f"--timeout: need a finite number of seconds above 0, got {choice.timeout}")
    if choice.max_request_seconds is not None and not math.isfinite(choice.max_request_seconds):
        raise UsageError(f"--max-request-seconds: need a finite number of seconds, got {choice.max_request_seconds}")
    if choice.quantize not in (None, "int8"):
        raise UsageError(f"--quantize {choice.quantize!r}: only int8 is supported")
    servers = tuple(url.strip() for listed in choice.servers or () for url in listed.split(",") if url.strip())
    if servers and choice.quantize:
        raise UsageError("--quantize applies to the local model; a server keeps its own weights")
    if not servers:
        return replace(choice, servers=())
    if any(has_audio_span(prompt or "") for prompt in prompts):
        raise UsageError("a prompt holding its own audio span (<|audio_bos|><|AUDIO|><|audio_eos|>) needs the "
                         "local engine: a server lays out the prompt with its own chat template")
    for url in servers:
        _check_server_url(url)
    key = (choice.api_key or "").strip()
    if not all("!" <= char <= "~" for char in key):
        raise UsageError("--api-key (or MOSS_API_KEY): a key may hold only printable ASCII characters, "
                         "without spaces (it is sent in an HTTP header)")
    return replace(choice, servers=tuple(dict.fromkeys(servers)), api_key=key or None)


def _use_threads(threads: int | None) -> None:
    """--threads: torch's CPU thread count, set once for the whole run (nothing in moss changes it)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _check_server_url(url: str) -> None:
    from urllib.parse import urlsplit

    from ..engine.remote.http import redact_url

    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a malformed port or IPv6 address
        usable = False
    if not usable:
        raise UsageError(f"--server {redact_url(url)!r}: need an http:// or https:// URL with a host, "
                         f"like http://localhost:8000/v1")


def _pipeline_options(sampling: Sampling, max_request_seconds: float | None = None):
    from ..engine.base import DecodingOptions
    from ..tasks.pipeline import PipelineOptions

    try:
        decoding = DecodingOptions(sampling.temperature, sampling.top_p, sampling.top_k,
                                   sampling.max_new_tokens or 1024, sampling.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return PipelineOptions(decoding=decoding, token_cap=sampling.max_new_tokens, max_request_seconds=max_request_seconds)


class _LazyEngine:
    """Loads the model (or connects to the server) when the first file needs it, once."""

    def __init__(self, choice: EngineChoice, quiet: bool):
        self.choice = choice
        self.quiet = quiet
        self._engine = None
        self._loading: Future | None = None  # the model loading in the background (start())

    def get(self):
        if self._engine is None:
            from ..interrupts import result_of

            self._engine = result_of(self._loading) if self._loading else self._open()
        return self._engine

    def check(self) -> None:
        """A local checkpoint that is missing is reported now, before any audio is decoded or scanned
        (found without importing torch: the model's imports wait for start())."""
        if not self.choice.servers:
            from ..model.checkpoint import resolve_checkpoint

            resolve_checkpoint(self.choice.model)

    def start(self) -> None:
        """Load the local model in the background (seconds of imports and weights) while the first
        input is decoded and its speech found; get() waits for it and raises what loading raised."""
        if self.choice.servers or self._loading is not None or self._engine is not None:
            return
        from ..interrupts import started

        self._loading = started(self._open, name="moss-load")  # get() raises what loading raised

    def notes(self) -> list[str]:
        """For the run summary: how many requests each of several servers answered."""
        if self._engine is None or len(self.choice.servers or ()) < 2:
            return []
        return [self._engine.counts()]

    def _open(self):
        choice = self.choice
        if choice.servers:
            from ..engine.remote.engine import RemoteEngine, ServerConfig

            return RemoteEngine(ServerConfig(choice.servers, choice.server_model, choice.model, choice.api_key,
                                             choice.timeout, concurrency=choice.jobs,
                                             time_markers=choice.time_markers, thinking=choice.thinking))
        from ..model.allocator import keep_freed_memory
        from ..engine.local.engine import MossAudio
        from ..text import printable_name

        keep_freed_memory()  # a local model's large temporaries reuse memory instead of fresh pages
        if not self.quiet:
            stderr.print(f"moss: loading {printable_name(choice.model)}", markup=False)
        engine = MossAudio.load(choice.model, device=choice.device, dtype=choice.dtype,
                                time_markers=choice.time_markers, batch_size=choice.batch_size,
                                quantize=choice.quantize)
        if choice.thinking is not None:  # the checkpoint's folder name may not say
            engine.thinking = choice.thinking
        if not self.quiet:
            stderr.print(f"moss: model on {engine.model.device} in {str(engine.model.dtype).removeprefix('torch.')}")
        return engine

