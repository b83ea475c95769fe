"""The `moss` command line: thin commands over one pipeline. Only the CLI prints and picks exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import DEFAULT_MODEL, __version__
from ..batch.runner import OutputSpec, UsageError, report
from ..errors import MossError
from .ask import _asked_questions, _run_ask, _run_ask_batch
from .engine import _checked, _run_check
from .helptext import Command, Group, examples
from .options import (
    AllOpt,
    ApiKeyOpt,
    AssOpt,
    BatchFlags,
    BatchSizeOpt,
    ContextOpt,
    CpsOpt,
    CueSecondsOpt,
    DeviceOpt,
    DiarizerOpt,
    DtypeOpt,
    EngineChoice,
    ErrorsOpt,
    GapOpt,
    HighlightOpt,
    HotwordsOpt,
    HtmlAudio,
    HtmlAudioOpt,
    HtmlOpt,
    Inputs,
    JobsOpt,
    JsonOpt,
    LanguageOpt,
    LinesOpt,
    LineWidthOpt,
    MachineJsonOpt,
    MaxRequestOpt,
    MaxTokensOpt,
    MinCueSecondsOpt,
    ModelOpt,
    OutputDirOpt,
    OutputNameOpt,
    OverwriteOpt,
    ProbeServerOpt,
    PromptOpt,
    QuantizeOpt,
    QuietOpt,
    Sampling,
    SeedOpt,
    ServerModelOpt,
    ServerOpt,
    ShardOpt,
    ShowReasoningOpt,
    SkipExistingOpt,
    SpeakerNamesOpt,
    SpeakersOpt,
    SrtOpt,
    TemperatureOpt,
    ThinkingOpt,
    ThreadsOpt,
    TimeMarkersOpt,
    TimeoutOpt,
    TopKOpt,
    TopPOpt,
    TsvOpt,
    TxtOpt,
    VttOpt,
)
from .run import _formats, _hinted, _layout, _run

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
    _run(audio, OutputSpec(_formats(all_, txt=txt, json=json_, html=html), output_dir, html_audio=html_audio.value,
                    name_template=output_name),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, task.combine_instruction))


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
    _run(audio, OutputSpec(_formats(all_, txt=txt, json=json_, html=html), output_dir, html_audio=html_audio.value,
                    name_template=output_name),
         EngineChoice(model, device, dtype, time_markers, server, server_model, api_key, timeout, batch_size,
                                      thinking=thinking, max_request_seconds=max_request_seconds, threads=threads, quantize=quantize),
         Sampling(temperature, top_p, top_k, max_new_tokens, seed),
         BatchFlags(skip_existing, overwrite, errors, jobs, quiet, shard), task, "describing",
         lambda pipeline, rec: pipeline.described(task, rec, task.combine_instruction))


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
