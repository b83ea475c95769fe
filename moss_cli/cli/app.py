"""The `moss` command line: thin commands over one pipeline. Only the CLI prints and picks exit codes."""

from __future__ import annotations

import codecs
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from ..engine.factory import validated
from ..errors import EXIT_FAILED, EXIT_OK, MossError, UsageError
from .ask import ask_every_recording, ask_one_recording, asked_questions, refuse_empty_questions
from .console import report
from .engine import run_check
from .groups import Change, changing, only, options, without
from .habits import HabitCommand
from .helptext import Group, examples
from .options import (
    BatchOptions,
    DiarizeOptions,
    EngineOptions,
    Inputs,
    MachineJsonOpt,
    OutputOptions,
    PromptOptions,
    SamplingOptions,
    ServerOptions,
    ShowReasoningOpt,
    SubtitleOptions,
    TranslateOptions,
    writes,
)
from .run import run_files
from .serving import ServeOptions, ServerKeyOpt
from .summarize import DEFAULT_MIN_CHAPTER_SECONDS, DIGEST_FORMATS, DigestKind, summarize_files

app = typer.Typer(
    help="Audio understanding from the shell with MOSS-Audio: transcripts, subtitles, captions, answers.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=Group,  # flags shown as flags in --help
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moss {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Audio understanding from the shell with MOSS-Audio: transcripts, subtitles, captions, answers."""
    tolerant_streams()


def tolerant_streams() -> None:
    """A terminal or PYTHONIOENCODING that cannot encode a character (ascii, latin-1) gets it escaped
    as \\u00e9 instead of a UnicodeEncodeError ending the run: JSON on stdout stays valid JSON, and
    UTF-8 streams write exactly as before."""
    codecs.register_error("moss-escape", _json_escape)
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="moss-escape")


def _json_escape(error: UnicodeEncodeError) -> tuple[str, int]:
    """Each unencodable character as JSON writes it: \\uXXXX, a surrogate pair above U+FFFF."""
    escaped = []
    for char in error.object[error.start:error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


# A command lists its groups in the order --help shows their panels: a panel appears where its first
# option does (--prompt's Decoding before Prompt and Model, ask's Model before Decoding).

# The prompt of the commands that take no --language or --hotwords: theirs is not speech to transcribe.
ContextPrompt = Annotated[PromptOptions, only("prompt", "context")]


@app.command(cls=HabitCommand, epilog=examples("transcribe"),
             short_help="Transcribe speech with times, as text or subtitles.")
@options
def transcribe(
    audio: Inputs,
    words: Annotated[bool, typer.Option(
        "--words", help="Word-level times: subtitle cues keep each word's time (VTT inline timestamps, ASS karaoke).")] = False,
    *, output: Annotated[OutputOptions, writes("srt", "vtt", "json", "txt", "tsv", "ass", "html")],
    subtitles: SubtitleOptions, prompt: PromptOptions, engine: EngineOptions, decoding: SamplingOptions,
    server: ServerOptions, batch: BatchOptions, speakers: DiarizeOptions, translation: TranslateOptions,
) -> None:
    """Transcribe speech with times: text, SRT, VTT, ASS, TSV or JSON, sentence or word level, with speakers."""
    from ..tasks.specs import TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS

    words = words or subtitles.highlight_words
    translated = translation.chosen(words)
    task = prompt.task(TRANSCRIBE_WORDS if words else TRANSCRIBE_SENTENCES)
    run_files(audio, output.spec(subtitles.layout(words)), engine.spec(server), decoding, batch, task, "transcribing",
         lambda pipeline, rec: pipeline.timed(task, rec), speakers=speakers, language=prompt.language,
         translation=translated)


@app.command(cls=HabitCommand, epilog=examples("events"), short_help="Sound events in time order, as text, JSON, TSV or subtitles.")
@options
def events(
    audio: Inputs,
    *, output: Annotated[OutputOptions, writes("json", "srt", "vtt", "tsv", "txt", "ass", "html")],
    subtitles: Annotated[SubtitleOptions, without("highlight_words")], prompt: ContextPrompt, engine: EngineOptions,
    decoding: SamplingOptions, server: ServerOptions, batch: BatchOptions, translation: TranslateOptions,
) -> None:
    """Sound events in time order: `start - end: description` lines, JSON, TSV or subtitles."""
    from ..tasks.specs import EVENTS

    task = prompt.task(EVENTS)
    run_files(audio, output.spec(subtitles.layout()), engine.spec(server), decoding, batch, task, "listening to",
         lambda pipeline, rec: pipeline.timed(task, rec), translation=translation.chosen())


@app.command(cls=HabitCommand, epilog=examples("listen"),
             short_help="Transcribe live (--events: sounds): microphone, stdin, URL.")
@options
def listen(
    source: Annotated[str | None, typer.Argument(
        help="Where the audio comes from: none for the microphone, - for stdin (WAV, OGG, MP3 or FLAC told by its "
        "first bytes, else raw 16-bit PCM), a URL FFmpeg reads (http, https, rtsp, HLS), or a file with --follow.",
        show_default=False, metavar="SOURCE")] = None,
    events: Annotated[bool, typer.Option("--events", help="Report sound events instead of speech.")] = False,
    rate: Annotated[int, typer.Option(
        "--rate", rich_help_panel="Live input", help="Raw PCM on stdin: its sample rate in Hz.")] = 16_000,
    channels: Annotated[int, typer.Option(
        "--channels", rich_help_panel="Live input", help="Raw PCM on stdin: its channel count.")] = 1,
    follow: Annotated[bool, typer.Option(
        "--follow", rich_help_panel="Live input", help="SOURCE is a file still being written: read it as it grows.")] = False,
    device_name: Annotated[str | None, typer.Option(
        "--device-name", metavar="NAME", rich_help_panel="Live input", show_default="the default microphone",
        help="The microphone to listen to (a name or part of one, as PortAudio lists them).")] = None,
    max_utterance_seconds: Annotated[float, typer.Option(
        "--max-utterance-seconds", min=1.0, rich_help_panel="Live input",
        help="Speech without a pause is cut and sent at this length.")] = 30.0,
    max_backlog_seconds: Annotated[float, typer.Option(
        "--max-backlog-seconds", min=1.0, rich_help_panel="Live input",
        help="Most audio waiting for the model; past it the oldest waiting utterances are skipped, marked as gaps.")] = 60.0,
    clock: Annotated[bool, typer.Option(
        "--clock", rich_help_panel="Live input", help="Wall-clock times beside stream times.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status or log lines on stderr.")] = False,
    *, output: Annotated[OutputOptions, only("output_dir", output_dir=Change(
        help="Write <source>.live.srt, .vtt, .jsonl and .txt here, appended cue by cue as the run goes."))],
    subtitles: Annotated[SubtitleOptions, without("highlight_words")], prompt: PromptOptions, engine: EngineOptions,
    decoding: SamplingOptions, server: ServerOptions, speakers: DiarizeOptions,
) -> None:
    """Transcribe speech as it arrives (or, with --events, report sound events).

    Each utterance is cut at a pause or at --max-utterance-seconds, sent as soon as it ends,
    and printed with its time in the stream. The end of the stream ends the run (exit 0);
    Ctrl-C finishes the utterance in flight, closes the files and exits 0. With -o DIR the
    outputs grow as the run goes and are valid at every moment.
    """
    from ..tasks.specs import EVENTS, TRANSCRIBE_SENTENCES
    from .listen import ListenRequest, live_options, run_listen

    task = prompt.task(EVENTS if events else TRANSCRIBE_SENTENCES)
    request = ListenRequest(source, rate, channels, follow, device_name, output.output_dir, quiet)
    raise typer.Exit(run_listen(request, task, engine.spec(server), decoding, subtitles.layout(),
                                live_options(max_utterance_seconds, max_backlog_seconds, clock), speakers))


@app.command(cls=HabitCommand, epilog=examples("caption"), short_help="Describe what can be heard (--speech: the voice).")
@options
def caption(
    audio: Inputs,
    speech: Annotated[bool, typer.Option("--speech", help="Describe the voice (JSON: gender, age, pitch, ...).")] = False,
    *, output: Annotated[OutputOptions, writes("json", "txt", "html")], prompt: ContextPrompt, engine: EngineOptions,
    decoding: SamplingOptions, server: ServerOptions, batch: BatchOptions,
) -> None:
    """Describe what can be heard (or, with --speech, the voice)."""
    from ..tasks.specs import CAPTION, SPEECH_CAPTION

    describe_files(audio, prompt.task(SPEECH_CAPTION if speech else CAPTION), output, engine.spec(server), decoding, batch)


@app.command("describe-music", cls=HabitCommand, epilog=examples("describe-music"),
             short_help="Describe music: style, tempo, harmony, instruments, mood.")
@options
def describe_music(
    audio: Inputs,
    *, output: Annotated[OutputOptions, writes("json", "txt", "html")], prompt: ContextPrompt, engine: EngineOptions,
    decoding: SamplingOptions, server: ServerOptions, batch: BatchOptions,
) -> None:
    """Describe music: style and tempo, harmony, instruments, structure, mood."""
    from ..tasks.specs import MUSIC

    describe_files(audio, prompt.task(MUSIC), output, engine.spec(server), decoding, batch)


def describe_files(audio, task, output: OutputOptions, spec, decoding: SamplingOptions,
              batch: BatchOptions) -> None:
    """One description per file; a long file's windows' descriptions combined as the task says."""
    run_files(audio, output.spec(), spec, decoding, batch, task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, task.combine_instruction))


@app.command(cls=HabitCommand, epilog=examples("summarize"),
             short_help="A digest: summaries, chapters, key points, action items.")
@options
def summarize(
    audio: Inputs,
    kind: Annotated[DigestKind, typer.Option(
        "--kind", rich_help_panel="Digest", help="What the recording is, for the prompts; auto: the model says "
        "(action items and decisions only for a meeting).")] = DigestKind.auto,
    min_chapter_seconds: Annotated[float, typer.Option(
        min=0.0, rich_help_panel="Digest", help="Shortest chapter, in seconds.")] = DEFAULT_MIN_CHAPTER_SECONDS,
    *, output: Annotated[OutputOptions, writes(*DIGEST_FORMATS, json_=Change(
        help="JSON, <stem>.digest.json (JSON Lines for several inputs on stdout); its schema: docs/digest.md."),
        html=Change(help="A self-contained page per recording: the summary, a chapter lane, the transcript "
                    "and a player (index.html for several)."))],
    prompt: Annotated[PromptOptions, only("language", "context", language=Change(
        show_default="the recording's", help="The digest's language (en, zh, German, ...)."))],
    engine: EngineOptions, decoding: SamplingOptions, server: ServerOptions, batch: BatchOptions,
    speakers: DiarizeOptions,
) -> None:
    """A digest of each recording: a short and a longer summary, chapters (start, title, gist), key points,
    and for meetings action items (who, what, when said) and decisions.

    The recording is transcribed (or its transcript reused: the <stem>.json that transcribe --json wrote
    into the same -o DIR), the model listens to it in windows of up to 10 minutes and takes notes, and
    one more request turns notes and transcript into the digest. Chapters start where a transcript
    sentence starts, in order, inside the recording, none shorter than --min-chapter-seconds.
    Markdown on stdout by default; --json, and the chapters as --chapters-vtt, --ffmetadata or --chapter-list.
    With --speakers the transcript says who speaks; --voices adds each speaker's voice and each sentence's
    emotion and tone (JSON, a lane on the --html page, a Voices section in the Markdown).
    """
    summarize_files(audio, kind, min_chapter_seconds, output, prompt, engine.spec(server), decoding, batch,
                    speakers)


@app.command(cls=HabitCommand, epilog=examples("ask"), short_help="Ask questions about recordings; prints the answers.")
@options
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
    *, output: Annotated[OutputOptions, only("html", "html_audio", "output_dir", html=Change(
        help="A page with the questions and answers beside a player (one recording): on stdout instead of the "
        "answers, or with -o DIR as DIR/<stem>.html while the answers still print."))],
    show_reasoning: ShowReasoningOpt = False,
    engine: Annotated[EngineOptions, without("batch_size")],
    decoding: Annotated[SamplingOptions, changing(
        max_new_tokens=Change(1024, show_default=True, help="Most tokens per answer."))],
    server: ServerOptions, batch: Annotated[BatchOptions, only("errors", "jobs", "shard", "quiet")],
) -> None:
    """Ask questions about recordings; prints only the answers (a blank line between several).

    `moss ask FILE QUESTION...` asks about one recording. With -Q/--questions every argument is a
    recording: `moss ask a.mp3 calls/ -Q "Who calls?" -Q "Why?"` writes JSON Lines, one object per
    recording and question, in input order; a file that fails gets one line on stderr and the rest go on.
    Up to 10 minutes of audio go to the model in one request. Longer recordings: a question that
    asks about a time ("at 7:30", "7:30 in", "between 5 and 7 minutes") is answered from the audio
    around it, any other from every part of the file, combined. A time past the end is an error.
    """
    try:
        asked = asked_questions(question, questions_file, stdin_inputs="-" in audio)
        if output.output_dir is not None and not output.html:
            raise UsageError("ask writes a file only with --html (-o DIR is where its page goes)")
        if asked is None and len(audio) < 2:
            raise UsageError("ask needs a question: moss ask FILE QUESTION..., or -Q QUESTION for every recording")
        refuse_empty_questions(audio[1:] if asked is None else asked)
        if asked is not None and output.html:
            raise UsageError("--html is for one recording: moss ask FILE QUESTION... --html")
    except (MossError, KeyboardInterrupt) as exc:  # Ctrl-C while the questions are read from stdin
        raise typer.Exit(report(exc)) from None
    if asked is None:  # the single form, as it always was: the first argument is the recording
        page = output.spec() if output.html else None
        raise typer.Exit(ask_one_recording(Path(audio[0]), audio[1:], engine.spec(server), decoding, batch.quiet, json_lines,
                                  show_reasoning, page))
    ask_every_recording(audio, asked, engine.spec(server), decoding, batch, json_lines, show_reasoning)


@app.command("check-server", cls=HabitCommand, epilog=examples("check-server"),
             short_help="Compare the prompt a server builds with the local one.")
@options
def check_server(
    url: Annotated[str, typer.Argument(help="The server's base URL, ending in /v1.", show_default=False)],
    *, engine: Annotated[EngineOptions, only("model", "time_markers", model=Change(
        rich_help_panel=None, help="Checkpoint whose tokenizer builds the local prompt (a directory or a hub id; "
        "only the tokenizer files are downloaded)."))],
    server: Annotated[ServerOptions, only("server_model", "api_key", "timeout", timeout=Change(120.0))],
    compute: Annotated[bool, typer.Option(
        "--compute", help="Also compare the server's greedy answer to the probe with the local engine's, token "
        "for token: loads the checkpoint (-m) here, on the CPU in float32.")] = False,
) -> None:
    """Compare the prompt a server builds with the local engine's, token for token where it can say.

    With --compute, also what it computes: a server can build the same prompt and still answer from
    another computation (vLLM's compiled path, without --enforce-eager, leaves out DeepStack).
    Exit 0 when they match, 1 when they differ (the first difference and what to change are printed),
    2 when the server cannot be asked.
    """
    raise typer.Exit(run_check(replace(engine.spec(server), device="cpu", servers=[url]), compute))


@app.command(cls=HabitCommand, epilog=examples("doctor"),
             short_help="What is set up here: checkpoints, device, versions, servers.")
@options
def doctor(
    *, server: Annotated[ServerOptions, only("server", "api_key", "timeout", server=Change(
        rich_help_panel=None, show_default="none", metavar="URL",
        help="A server to ask check-server's probe (one token); repeat it, or MOSS_SERVER=URL,URL."),
        timeout=Change(10.0, rich_help_panel=None, help="Seconds each server may take to answer."))],
    engine: Annotated[EngineOptions, only("model")], json_: MachineJsonOpt = False,
) -> None:
    """Check this machine: MOSS-Audio checkpoints in the Hugging Face cache, the device and dtype
    --device auto and --dtype auto pick, versions and threads, and whether each --server answers.

    Exit 0 when everything asked works, 1 when the model a run would use is not here (without
    --server: a run would load it) or a server given does not answer, 2 on a usage error.
    """
    from .doctor import doctor_lines, doctor_report

    try:
        choice = validated(engine.spec(server))
        report_ = doctor_report(engine.model, list(choice.servers), choice.api_key, server.timeout)
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None
    text = report_.to_json() if json_ else "\n".join(doctor_lines(report_))
    sys.stdout.write(text + "\n")
    raise typer.Exit(EXIT_OK if report_.ok else EXIT_FAILED)  # 1: the model missing, or a server given silent


@app.command(cls=HabitCommand, epilog=examples("serve"),
             short_help="An OpenAI-compatible speech API over HTTP.")
@options
def serve(
    *, serving: ServeOptions, engine: EngineOptions, decoding: SamplingOptions,
    server: Annotated[ServerOptions, without("api_key")], server_api_key: ServerKeyOpt = None,
) -> None:
    """Serve the tasks over HTTP: POST /v1/audio/transcriptions as OpenAI defines it (json, text, srt,
    vtt, verbose_json, diarized_json, stream=true), GET /v1/models, /health, POST /v1/audio/events,
    caption, describe-music, ask and summarize (the JSON the commands write), and an upload page at /.

    Listens on 127.0.0.1 unless --host says otherwise. The model loads once, before the first request.
    Needs FastAPI, uvicorn and the MCP SDK: the package's "serve" extra.
    """
    from .serving import serve_http

    spec = replace(engine.spec(server), api_key=server_api_key)
    raise typer.Exit(serve_http(spec, decoding, serving))


@app.command(cls=HabitCommand, epilog=examples("mcp"),
             short_help="The tasks as MCP tools for agents, on stdio.")
@options
def mcp(
    allow: Annotated[list[Path], typer.Option(
        "--allow", metavar="DIR", show_default="required: nothing is readable without it",
        help="A folder whose files the tools may read (give it several times); nothing outside is read.")],
    *, engine: EngineOptions, decoding: SamplingOptions,
    server: Annotated[ServerOptions, without("api_key")], server_api_key: ServerKeyOpt = None,
) -> None:
    """Serve the tasks to MCP clients over stdio: transcribe, ask, caption, events, describe-music and
    summarize on files under the --allow folders, each answering with the JSON the command writes.

    Needs FastAPI, uvicorn and the MCP SDK: the package's "serve" extra.
    """
    from .serving import serve_mcp

    spec = replace(engine.spec(server), api_key=server_api_key)
    raise typer.Exit(serve_mcp(spec, decoding, allow))


@app.command(cls=HabitCommand, epilog=examples("quantize"),
             short_help="Store a checkpoint's int8 weights: faster, leaner CPU loads.")
@options
def quantize(
    output: Annotated[Path, typer.Argument(
        help="The new folder to write: a checkpoint that -m takes.", show_default=False)],
    engine: Annotated[EngineOptions, only("model")],
) -> None:
    """Write the int8 checkpoint of the model (-m): the layers --quantize int8 rounds at every load,
    stored rounded (the same numbers, to the bit), everything else as it is. Runs given it (-m OUTPUT)
    load as int8 on the CPU without rounding, reading a quarter of those layers' bytes.

    Exit 0 when written; 1 when writing failed (nothing is left half-written); 2 when the model cannot
    be read, OUTPUT exists, or on a usage error.
    """
    from ..model.checkpoint import model_name, resolve_checkpoint
    from ..model.int8_checkpoint import write_int8_checkpoint
    from .console import say

    try:
        name = model_name(engine.model)
        source = resolve_checkpoint(name)
        say(f"writing the int8 weights of {source} into {output}")
        write_int8_checkpoint(source, output, source_name=name)
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None
    size = sum(path.stat().st_size for path in output.iterdir())
    say(f"wrote {output} ({size / 1e6:,.0f} MB): run it with -m {output}")


@app.command(cls=HabitCommand, epilog=examples("models"),
             short_help="MOSS-Audio checkpoints: cached here, or all (--available).")
def models(
    all_: Annotated[bool, typer.Option("--all", help="Every model repo in the cache, others marked.")] = False,
    available: Annotated[bool, typer.Option(
        "--available", help="The released checkpoints, with their -m names and sizes, and whether each is "
        "cached here (offline: nothing is asked of the hub).")] = False,
    json_: MachineJsonOpt = False,
) -> None:
    """List the MOSS-Audio checkpoints in the Hugging Face cache (HF_HUB_CACHE, HF_HOME) with their
    sizes on disk and revisions; --all lists every model repo, marking those that are not MOSS-Audio;
    --available lists the released checkpoints, cached or not."""
    from dataclasses import asdict

    from .doctor import cached_models, hub_cache, model_lines, released_lines, released_models

    try:
        if available and all_:
            raise UsageError("--available lists the released checkpoints, --all the cache: give one")
        cache = cached_models()
        released = released_models(hub_cache()) if available else None
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None
    if released is not None:
        if json_:
            record = {"cache": cache.path, "available": [asdict(model) for model in released]}
            sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        else:
            sys.stdout.write("\n".join(released_lines(released, cache.path)) + "\n")
        return
    if json_:
        shown = [asdict(model) for model in cache.models if all_ or model.moss_audio]
        sys.stdout.write(json.dumps({"cache": cache.path, "models": shown}, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(model_lines(cache, every=all_)) + "\n")
