"""The options of the commands, declared once: each a Typer declaration with its help and panel."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..engine.factory import EngineSpec

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


ProbeServerOpt = Annotated[list[str] | None, typer.Option(
    "--server", envvar="MOSS_SERVER", show_default="none", metavar="URL",
    help="A server to ask check-server's probe (one token); repeat it, or MOSS_SERVER=URL,URL.")]
MachineJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for machines.")]



# The engine's options are the factory's EngineSpec; the old name stays while other branches still use it.
EngineChoice = EngineSpec


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
