"""The commands' options, each declared once with its help, panel and default, in groups (see groups.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import DEFAULT_MODEL
from ..batch.outputs import OutputSpec
from ..engine.factory import EngineSpec
from ..errors import MossError, UsageError
from ..output.subtitles import CueLayout
from .groups import OptionGroup, Shown, only

if TYPE_CHECKING:
    from ..speakers.voices import SpeakerOptions
    from ..tasks.specs import Task
    from ..tasks.translate import Translation

Inputs = Annotated[list[str], typer.Argument(
    help="Audio or video files, directories (searched recursively), globs, - (audio on stdin, or a list of "
    "paths: one a line or NUL-separated) or @list.txt.", show_default=False, metavar="AUDIO")]
ShowReasoningOpt = Annotated[bool, typer.Option(
    "--show-reasoning", help="Print a Thinking model's <think> reasoning to stderr.")]
MachineJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for machines.")]


@dataclass(frozen=True)
class ServerOptions(OptionGroup):
    server: Annotated[list[str] | None, typer.Option(
        envvar="MOSS_SERVER", rich_help_panel="Server", show_default="none: the local model",
        help="Use an OpenAI-compatible server instead of a local model (base URL ending in /v1). Give it several "
        "times (or MOSS_SERVER=URL,URL) to share the requests among servers.")] = None
    server_model: Annotated[str | None, typer.Option(
        rich_help_panel="Server", show_default="the server's first", help="Model name on the server.")] = None
    api_key: Annotated[str | None, typer.Option(
        envvar="MOSS_API_KEY", rich_help_panel="Server", show_default="none",
        help="Bearer token for the server (OPENAI_API_KEY is never read: a key goes only where you send it).")] = None
    timeout: Annotated[float, typer.Option(
        min=1.0, rich_help_panel="Server",
        help="Seconds one server request may take, end to end (connecting, sending, waiting, receiving).")] = 600.0
    max_request_seconds: Annotated[float | None, typer.Option(
        "--max-request-seconds", min=4.0, rich_help_panel="Server", show_default="600, or what a server says fits",
        help="Most seconds of audio in one request; longer audio is asked in windows (vLLM: "
        "max_num_batched_tokens / 12.5).")] = None
    thinking: Annotated[bool | None, typer.Option(
        "--thinking/--no-thinking", rich_help_panel="Server", show_default="from the served model's path",
        help="Whether the server's model is a Thinking checkpoint (it needs tokens to reason).")] = None


class Dtype(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Quantize(str, Enum):
    int8 = "int8"  # the only one the local engine has (engine/factory.py QUANTIZE)


DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N, a GPU by its number


def device_choice(value: str) -> str:
    """--device checked when the command line is read, as a choice is: a typo fails before any work."""
    device = str(value).strip().lower()
    if device in DEVICES or re.fullmatch(r"cuda:\d+", device):
        return device
    raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N (a GPU's number) or mps")


def device_completions(incomplete: str) -> list[str]:
    """What the shell offers after --device: the names, and cuda:0 for a numbered GPU (no torch import)."""
    return [device for device in (*DEVICES, "cuda:0") if device.startswith(incomplete.lower())]


@dataclass(frozen=True)
class EngineOptions(OptionGroup):
    model: Annotated[str, typer.Option(
        "--model", "-m", envvar="MOSS_MODEL", rich_help_panel="Model",
        help="Checkpoint: a local directory or a Hugging Face hub id (cached; honours HF_HUB_OFFLINE).",
    )] = DEFAULT_MODEL
    device: Annotated[str, typer.Option(
        rich_help_panel="Model", metavar="<auto|cpu|cuda|cuda:N|mps>", parser=device_choice,
        autocompletion=device_completions, help="auto: CUDA, then MPS, then CPU.")] = "auto"
    dtype: Annotated[Dtype, typer.Option(
        rich_help_panel="Model",
        help="auto picks bfloat16 on GPUs (the checkpoint's own dtype) and float32 on CPU, where bfloat16 "
        "matmuls are slow on most processors.")] = Dtype.auto
    time_markers: Annotated[bool, typer.Option(
        "--time-markers/--no-time-markers", rich_help_panel="Model",
        help="Mark every 2 s of audio in the prompt.")] = True
    batch_size: Annotated[int | None, typer.Option(
        min=1, rich_help_panel="Model", show_default="from free memory",
        help="Chunks decoded together by the local model.")] = None
    threads: Annotated[int | None, typer.Option(
        min=1, rich_help_panel="Model", show_default="torch's own (the CPU's cores)",
        help="CPU threads for the local model, held for the whole run.")] = None
    quantize: Annotated[Quantize | None, typer.Option(
        rich_help_panel="Model", show_default="off",
        help="int8: int8 weights for the LLM and output layer on the CPU (faster; answers can differ from "
        "float32). `moss quantize` stores them once.")] = None

    def spec(self, server: ServerOptions) -> EngineSpec:
        """The engine the run asks for: this model, run here or on `server`'s servers."""
        return EngineSpec(self.model, self.device, Dtype(self.dtype).value, self.time_markers, server.server,
                          server.server_model, server.api_key, server.timeout, self.batch_size, thinking=server.thinking,
                          max_request_seconds=server.max_request_seconds, threads=self.threads,
                          quantize=Quantize(self.quantize).value if self.quantize is not None else None)


@dataclass(frozen=True)
class SamplingOptions(OptionGroup):
    """How tokens are drawn; recorded as is in each output's manifest (--skip-existing)."""

    temperature: Annotated[float, typer.Option(
        min=0.0, rich_help_panel="Decoding", help="0 decodes greedily; above 0 samples.")] = 0.0
    top_p: Annotated[float, typer.Option(
        min=0.0, max=1.0, rich_help_panel="Decoding", help="Nucleus sampling mass.")] = 1.0
    top_k: Annotated[int, typer.Option(
        min=0, rich_help_panel="Decoding", help="Sample from the k likeliest tokens; 0: all.")] = 50
    max_new_tokens: Annotated[int | None, typer.Option(
        min=1, rich_help_panel="Decoding", show_default="scales with audio length",
        help="Most tokens to generate per request.")] = None
    seed: Annotated[int | None, typer.Option(
        rich_help_panel="Decoding", show_default="random", help="Random seed for sampling.")] = None


@dataclass(frozen=True)
class PromptOptions(OptionGroup):
    """What the model is asked: the task's prompt or --prompt, then the hints (see tasks/hints.py)."""

    prompt: Annotated[str | None, typer.Option(
        rich_help_panel="Decoding", show_default="the task's official prompt",
        help="Ask this instead of the task's official prompt.")] = None
    language: Annotated[str | None, typer.Option(
        "--language", metavar="CODE", rich_help_panel="Prompt", show_default="none: the model follows the speech",
        help="The speech's language (en, zh, zh-Hant, yue, German, ...): the prompt asks for the transcript in it, "
        "in its script. A hint, not a constraint.")] = None
    context: Annotated[str | None, typer.Option(
        "--context", metavar="TEXT", rich_help_panel="Prompt", show_default="none",
        help="What the recording is about, names and jargon: added to the prompt as context.")] = None
    hotwords: Annotated[list[str] | None, typer.Option(
        "--hotwords", metavar="A,B,C", rich_help_panel="Prompt", show_default="none",
        help="Terms to spell as written, comma-separated or repeated: added to the prompt.")] = None

    def task(self, task: Task) -> Task:
        """`task` asking --prompt if given, the hints after its prompt."""
        from ..tasks.hints import hints_from_options

        try:
            hints = hints_from_options(self.language, self.context, self.hotwords)
            return task.with_prompt(self.prompt).with_hints(hints.sentences())
        except (MossError, ValueError) as exc:
            raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class BatchOptions(OptionGroup):
    skip_existing: Annotated[bool, typer.Option(
        "--skip-existing", rich_help_panel="Batch",
        help="Skip inputs whose outputs exist and were made from the same content, model and options.")] = False
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", rich_help_panel="Batch",
        help="Replace outputs even if another input or tool made them.")] = False
    errors: Annotated[Path | None, typer.Option(
        "--errors", rich_help_panel="Batch", show_default="stderr only",
        help="Write the failures to this file as JSON Lines.")] = None
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, rich_help_panel="Batch", show_default="1; with --server, one per server",
        help="Decode the next files while one is processed; with --server, up to N requests in flight in all.")] = None
    shard: Annotated[str | None, typer.Option(
        "--shard", rich_help_panel="Batch", metavar="K/N", show_default="all of them",
        help="Process only the K-th of N disjoint parts of the inputs (job arrays: the same inputs on N "
        "machines).")] = None
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr.")] = False


class HtmlAudio(str, Enum):
    auto = "auto"  # a link when the page is a file and browsers play the input, else embedded
    link = "link"
    embed = "embed"
    none = "none"


# The order the outputs are written in; summarize's Markdown and chapter files last.
FORMATS = ("txt", "srt", "vtt", "ass", "tsv", "json", "html", "md", "chapters.vtt", "ffmetadata", "chapters.txt")
# The field of a format whose name is taken in Python or is no Python name.
_FLAG = {"json": "json_", "chapters.vtt": "chapters_vtt", "chapters.txt": "chapter_list"}


@dataclass(frozen=True)
class OutputOptions(OptionGroup):
    """The format flags a command writes (see `writes`), and where and how its outputs go."""

    srt: Annotated[bool, typer.Option("--srt", rich_help_panel="Output", help="SubRip subtitles.")] = False
    vtt: Annotated[bool, typer.Option("--vtt", rich_help_panel="Output", help="WebVTT subtitles.")] = False
    json_: Annotated[bool, typer.Option(
        "--json", rich_help_panel="Output", help="JSON (JSON Lines for several inputs on stdout).")] = False
    txt: Annotated[bool, typer.Option("--txt", rich_help_panel="Output", help="Plain text (the default).")] = False
    tsv: Annotated[bool, typer.Option(
        "--tsv", rich_help_panel="Output", help="start<TAB>end<TAB>text, times in ms.")] = False
    ass: Annotated[bool, typer.Option(
        "--ass", rich_help_panel="Output", help="Advanced SubStation Alpha subtitles.")] = False
    html: Annotated[bool, typer.Option(
        "--html", rich_help_panel="Output",
        help="A self-contained page per recording: waveform, timeline, list and a player (index.html for "
        "several).")] = False
    md: Annotated[bool, typer.Option(
        "--md", rich_help_panel="Output", help="Markdown (the default).")] = False
    chapters_vtt: Annotated[bool, typer.Option(
        "--chapters-vtt", rich_help_panel="Output",
        help="The chapters as a WebVTT chapters track, <stem>.chapters.vtt (<track kind=\"chapters\">).")] = False
    ffmetadata: Annotated[bool, typer.Option(
        "--ffmetadata", rich_help_panel="Output",
        help="The chapters as FFmpeg metadata, <stem>.ffmetadata: ffmpeg -i in.mp4 -i <stem>.ffmetadata "
        "-map_metadata 1 -codec copy out.mp4.")] = False
    chapter_list: Annotated[bool, typer.Option(
        "--chapter-list", rich_help_panel="Output",
        help="The chapters as '00:00 Title' lines, <stem>.chapters.txt, as video sites read them.")] = False
    all_: Annotated[bool, typer.Option(
        "--all", rich_help_panel="Output", help="Every format this command writes (needs -o).")] = False
    html_audio: Annotated[HtmlAudio, typer.Option(
        "--html-audio", rich_help_panel="Output",
        help="The page's audio: a relative link to the input, embedded (Opus), none, or auto (link when it "
        "can).")] = HtmlAudio.auto
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", "-o", rich_help_panel="Output", show_default="stdout",
        help="Write <input stem>.<ext> files here instead of stdout, mirroring each folder given.")] = None
    output_name: Annotated[str | None, typer.Option(
        "--output-name", rich_help_panel="Output", metavar="TEMPLATE", show_default="{stem}",
        help="Output file name without extension, from {stem} (input name without extension), {name} (with it), "
        "{lang} (--language, else und), {task}, {model} (short name) and {date} (YYYY-MM-DD), e.g. "
        "{stem}.{lang}.")] = None
    writes: tuple[str, ...] = FORMATS  # the formats the command has a flag for: what --all means

    @classmethod
    def from_options(cls, values: dict, shown: tuple[str, ...]) -> OutputOptions:
        return cls(**values, writes=tuple(ext for ext in FORMATS if _FLAG.get(ext, ext) in shown))

    def formats(self, default: str = "txt") -> tuple[str, ...]:
        """The extensions asked for (--all: every one the command writes); `default` when none is."""
        chosen = tuple(ext for ext in self.writes if self.all_ or getattr(self, _FLAG.get(ext, ext)))
        return chosen or (default,)

    def spec(self, layout: CueLayout | None = None, default: str = "txt",
             extensions: dict[str, str] | None = None) -> OutputSpec:
        """`default`: the format when no flag asks for one; `extensions`: file extensions that are not
        the format's name."""
        spec = OutputSpec(self.formats(default), self.output_dir, html_audio=self.html_audio.value,
                          name_template=self.output_name, extensions=extensions or {})
        return spec if layout is None else replace(spec, layout=layout)


def writes(*formats: str, **changes) -> Shown:
    """The Output panel of a command that writes `formats`, their flags in this order (`changes`: as `only`'s)."""
    return only(*(_FLAG.get(ext, ext) for ext in formats), "all_", "html_audio", "output_dir", "output_name", **changes)


@dataclass(frozen=True)
class SubtitleOptions(OptionGroup):
    """The cue layout rules; their defaults are CueLayout's, where the rules are."""

    max_line_chars: Annotated[int, typer.Option(
        "--max-line-width", "--max-line-chars", min=1, rich_help_panel="Subtitles",
        help="Most display columns per subtitle line (a Chinese, Japanese or Korean character takes 2).",
    )] = CueLayout.max_line_width
    max_lines: Annotated[int, typer.Option(
        min=1, rich_help_panel="Subtitles", help="Most lines per cue.")] = CueLayout.max_lines
    max_cue_seconds: Annotated[float, typer.Option(
        min=0.1, rich_help_panel="Subtitles", help="Longest cue, in seconds.")] = CueLayout.max_seconds
    min_cue_seconds: Annotated[float, typer.Option(
        min=0.0, rich_help_panel="Subtitles", help="Shortest cue, in seconds, when there is silence to extend it "
        "into.")] = CueLayout.min_seconds
    min_gap_seconds: Annotated[float, typer.Option(
        min=0.0, rich_help_panel="Subtitles",
        help="Least time between cues, in seconds (2 frames); a shorter gap is closed up.")] = CueLayout.min_gap_seconds
    max_cps: Annotated[float, typer.Option(
        min=0.0, rich_help_panel="Subtitles",
        help="Most characters per second to read (20 suits Latin scripts); a faster cue is extended into silence. "
        "0: no limit.")] = CueLayout.max_cps
    highlight_words: Annotated[bool, typer.Option(
        "--highlight-words", rich_help_panel="Subtitles",
        help="SRT/VTT: one cue per spoken word, the current word underlined (implies --words).",
    )] = CueLayout.highlight_words

    def layout(self, words: bool = False) -> CueLayout:
        """`words`: cues keep each word's time (transcribe --words)."""
        try:
            return CueLayout(self.max_line_chars, self.max_lines, self.max_cue_seconds, self.min_cue_seconds,
                             self.min_gap_seconds, self.max_cps, words=words, highlight_words=self.highlight_words)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class TranslateOptions(OptionGroup):
    """--translate LANG: the model translates the timed text itself (tasks/translate.py); --bilingual."""

    translate: Annotated[str | None, typer.Option(
        "--translate", metavar="LANG", rich_help_panel="Translation", show_default="off",
        help="Write the text translated into this language (fr, de, zh-Hant, Japanese, ...) by the model itself, "
        "in text-only requests; every cue keeps its time.")] = None
    bilingual: Annotated[bool, typer.Option(
        "--bilingual", rich_help_panel="Translation",
        help="With --translate: each cue and line shows the original text, then its translation.")] = False

    def chosen(self, words: bool = False) -> Translation | None:
        """The translation asked for, None when off; `words`: the command times each word (refused with it)."""
        from ..tasks.translate import translation_for

        if self.translate is None:
            if self.bilingual:
                raise UsageError("--bilingual needs --translate LANG (the language to add under the original)")
            return None
        if words:
            raise UsageError("--translate writes sentence-level cues (a translation has no word times); "
                             "leave out --words and --highlight-words")
        try:
            return translation_for(self.translate, self.bilingual)
        except MossError as exc:
            raise UsageError(str(exc)) from None


DEFAULT_DIARIZER = "resemblyzer"


@dataclass(frozen=True)
class DiarizeOptions(OptionGroup):
    speakers: Annotated[str | None, typer.Option(
        "--speakers", metavar="N|MIN-MAX|auto", rich_help_panel="Speakers", show_default="off",
        help="Label who speaks: N speakers, auto to find how many (1 for a monologue), or MIN-MAX (2-4) to "
        "find how many within a range.")] = None
    speaker_names: Annotated[str | None, typer.Option(
        "--speaker-names", rich_help_panel="Speakers", show_default="S1, S2, ...",
        help="Names for the speakers in order of first appearance, comma-separated (alone: that many "
        "speakers).")] = None
    diarizer: Annotated[str, typer.Option(
        "--diarizer", rich_help_panel="Speakers",
        help="resemblyzer (the speakers extra; works offline: its weights ship with it) or pyannote (needs pyannote.audio and its "
        "gated pipeline in the Hugging Face cache).")] = DEFAULT_DIARIZER
    voice: Annotated[list[str] | None, typer.Option(
        "--voice", metavar="NAME=FILE", rich_help_panel="Speakers", show_default="none",
        help="Name the speaker who sounds like FILE, a short sample of one voice (10 s or so; repeat for "
        "each known voice; voices no sample matches stay S1, S2, ...).")] = None
    voices: Annotated[bool, typer.Option(
        "--voices", rich_help_panel="Speakers",
        help="Describe each speaker's voice (gender, age, accent, pitch, speed, emotion, tone) and each "
        "segment's emotion and tone, from the model's speech caption of their own speech (JSON, --html; "
        "alone: --speakers auto).")] = False

    def chosen(self) -> SpeakerOptions | None:
        """--speakers N|auto, --speaker-names A,B and --diarizer as SpeakerOptions; None when off."""
        from ..speakers.voices import SpeakerOptions

        if self.speakers is None and self.speaker_names is None and not self.voice and not self.voices:
            return None
        names = self.speaker_names
        listed = tuple(name.strip() for name in names.split(",")) if names is not None else ()
        samples = tuple(_voice_sample(value) for value in self.voice or ())
        number, bounds = _speaker_count(self.speakers, None if samples or not listed else len(listed))
        if number is not None and len(listed) > number:
            raise UsageError(f"--speaker-names gives {len(listed)} names for {number} speakers")
        try:
            return SpeakerOptions(number, listed, self.diarizer or DEFAULT_DIARIZER, bounds, samples, self.voices)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def _speaker_count(value: str | None, unset: int | None) -> tuple[int | None, tuple[int, int] | None]:
    """--speakers as (exact count, or None for auto; (fewest, most) for a range); `unset`: the count
    without it (the number of --speaker-names; None, auto, when voice samples name the speakers)."""
    if value is None:
        return unset, None
    text = value.strip().lower()
    fewest, dash, most = text.partition("-")
    if text == "auto":
        return None, None
    if text.isdigit() and int(text) >= 1:
        return int(text), None
    if dash and fewest.strip().isdigit() and most.strip().isdigit() and 1 <= int(fewest) <= int(most):
        return (int(fewest), None) if int(fewest) == int(most) else (None, (int(fewest), int(most)))
    raise UsageError(f"--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not {value!r}")


def _voice_sample(value: str) -> tuple[str, str]:
    """--voice NAME=FILE as (name, file)."""
    name, equals, path = value.partition("=")
    if not equals or not name.strip() or not path:
        raise UsageError(f"--voice takes NAME=FILE (a name and a short sample of that voice), not {value!r}")
    return name.strip(), path
