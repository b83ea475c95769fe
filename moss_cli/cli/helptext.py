"""How `--help` reads: flags shown as flags, and each command's examples at the bottom."""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperGroup


def _flags_as_flags(params: list) -> list:
    """Typer's rich help writes `<bool>` beside an on/off flag as if it took a value; an empty
    metavar leaves the type column blank (the plain help never shows one for flags anyway). For a
    repeatable option or an argument it writes Python's type (`<list[str]>`): an option takes one
    value each time it is given (`<str>`), and an argument's name (AUDIO) and help say the rest."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if isinstance(param, TyperArgument):
            param.display_type_rich = _no_type
        elif param.type_descriptor.is_list and param.display_type(None).startswith("<list["):
            param.display_type_rich = _one_value(param.display_type(None))
    return params


def _no_type(ctx) -> None:
    return None


def _one_value(shown: str):
    return lambda ctx: f"<{shown[len('<list['):-len(']>')]}>"


class Command(TyperCommand):
    def get_params(self, ctx) -> list:
        return _flags_as_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx) -> list:
        return _flags_as_flags(super().get_params(ctx))


# One example a paragraph: rich help keeps each as it is, click's plain help rewraps a paragraph
# only when it is wider than the terminal, and these fit in 80 columns. No square brackets: rich
# would read them as markup.
EXAMPLES = {
    "transcribe": [
        "moss transcribe talk.wav",
        "moss transcribe talk.wav --srt > talk.srt",
        "moss transcribe a.wav b.flac --srt --vtt --json -o subs/",
        "moss transcribe talk.wav --words --vtt -o subs/",
        "moss transcribe interview.m4a --speakers 2 --speaker-names Ann,Ben --srt",
        "moss transcribe lecture.wav --language zh --hotwords 'MOSS,Qwen'",
        "moss transcribe film.mp4 --translate fr --bilingual --srt -o subs/",
        "moss transcribe recordings/ --all -o out/ --skip-existing",
        "moss transcribe talk.wav --server http://localhost:8000/v1",
    ],
    "events": [
        "moss events street.wav",
        "moss events street.wav --tsv > street.tsv",
        "moss events recordings/ --json --srt -o out/",
        "moss events street.wav --translate de --srt",
    ],
    "listen": [
        "moss listen",
        "moss listen -o live/ --clock",
        "ffmpeg -i rtsp://camera/stream -f wav - | moss listen -",
        "arecord -f S16_LE -r 16000 | moss listen - --rate 16000",
        "moss listen https://radio.example/stream.mp3 --server http://gpu1:8000/v1",
        "moss listen recording.wav --follow --events",
    ],
    "caption": [
        "moss caption clip.wav",
        "moss caption clip.wav --speech --json",
        "moss caption rehearsal.flac --context 'a cello rehearsal'",
    ],
    "describe-music": [
        "moss describe-music song.flac",
        "moss describe-music albums/ --json -o notes/",
    ],
    "summarize": [
        "moss summarize meeting.m4a --kind meeting",
        "moss summarize podcast.mp3 --json > digest.json",
        "moss summarize talk.mp4 --chapters-vtt --ffmetadata --chapter-list -o out/",
        "moss summarize interview.wav --speakers 2 --voices --html -o out/",
        "moss summarize lectures/ --all -o out/ --language en --skip-existing",
    ],
    "ask": [
        "moss ask podcast.mp3 'What was said at 2:00?'",
        "moss ask talk.wav 'Who speaks first?' 'What is the topic?' --json",
        "moss ask talk.wav 'Summarise it.' --html -o out/",
        "moss ask calls/ -Q 'Who called?' -Q 'Was a date agreed?' > answers.jsonl",
        "moss ask a.mp3 b.mp3 --questions q.txt --server http://gpu1:8000/v1 --jobs 8",
    ],
    "check-server": [
        "moss check-server http://localhost:8000/v1",
        "moss check-server http://gpu1:8000/v1 --no-time-markers",
        "moss check-server http://gpu1:8000/v1 -m 4b --compute",
    ],
    "doctor": [
        "moss doctor",
        "moss doctor --server http://localhost:8000/v1",
        "moss doctor --json",
    ],
    "serve": [
        "moss serve",
        "moss serve --server http://gpu-box:8000/v1 --port 9000",
        "moss serve --host 0.0.0.0 --api-key \"$KEY\" --max-concurrency 2",
    ],
    "mcp": [
        "moss mcp --allow ~/Recordings",
        "moss mcp --allow ~/Recordings --server http://gpu-box:8000/v1",
    ],
    "quantize": [
        "moss quantize -m 4b moss-4b-int8",
        "moss transcribe talk.wav -m moss-4b-int8",
    ],
    "models": [
        "moss models",
        "moss models --available",
        "moss models --json",
    ],
}


def examples(command: str) -> str:
    """The epilog of `command`'s help."""
    return "\n\n".join(["Examples:", *EXAMPLES[command]])
