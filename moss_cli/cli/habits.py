"""Options typed from habit in openai-whisper, faster-whisper and whisperX, read as moss's own.

A command's arguments pass through `translated` before click parses them: a whisper option moss has
an equivalent for becomes that option (`--output_format srt` -> `--srt`, `--initial_prompt` ->
`--context`, `--diarize` -> `--speakers auto`, `--min_speakers 2 --max_speakers 4` -> `--speakers 2-4`,
`--task translate` -> `--translate en` (whisper translates into English), and any `--snake_case`
spelling of one of the command's `--kebab-case` options); one it cannot honour ends the run with one
usage line naming what moss has instead (exit 2). None of them appears in --help: the help shows moss's options.
"""

from __future__ import annotations

import typer

from ..errors import UsageError
from .console import report
from .helptext import Command

# -f WORD: the format's flag (summarize's chapter formats by their file endings too)
FORMAT_FLAGS = {"txt": "--txt", "srt": "--srt", "vtt": "--vtt", "tsv": "--tsv", "json": "--json", "ass": "--ass",
                "html": "--html", "md": "--md", "chapters.vtt": "--chapters-vtt", "ffmetadata": "--ffmetadata",
                "chapters.txt": "--chapter-list", "all": "--all"}
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
VALUED = ("--output_format", "-f", "--output_dir", "--initial_prompt", "--task", "--min_speakers",
          "--max_speakers", "--max_line_count", "--max_line_width")
SWITCHES = ("--word_timestamps", "--highlight_words")  # whisper: `--word_timestamps True`; bare also accepted
RENAMED = {"--output_dir": "--output-dir", "--initial_prompt": "--context", "--max_line_count": "--max-lines",
           "--max_line_width": "--max-line-width", "--word_timestamps": "--words",
           "--highlight_words": "--highlight-words"}


def _options(command: Command) -> tuple[set[str], set[str]]:
    """The command's option names, and those of them that take a value."""
    names, valued = set(), set()
    for param in command.params:
        if param.param_type_name == "option":  # typer's click may be its own copy: no isinstance
            names.update(param.opts + param.secondary_opts)
            if not param.is_flag and not param.count:
                valued.update(param.opts)
    return names, valued


def translated(command: Command, args: list[str]) -> list[str]:
    """`args` with the whisper options in moss's spelling; a UsageError for those moss cannot honour."""
    names, valued = _options(command)
    out: list[str] = []
    speakers: dict[str, str] = {}  # --diarize, --min_speakers, --max_speakers: one --speakers at the end
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return out + _speakers(command, names, speakers) + args[i - 1:]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in names:  # moss's own (also when a whisper name is one: --language, --hotwords, ...)
            out.append(arg)
            if name in valued and not eq and i < len(args):
                out.append(args[i])
                i += 1
            continue
        if name in VALUED:
            if eq:
                value = inline
            elif i < len(args):
                value, i = args[i], i + 1
            else:
                raise UsageError(f"{name} needs a value")
            if name in ("--min_speakers", "--max_speakers"):
                speakers[name] = value
            else:
                out += _valued(command, names, name, value)
        elif name in SWITCHES:
            value = inline if eq else ""
            if not eq and i < len(args) and args[i].lower() in TRUE_WORDS + FALSE_WORDS:
                value, i = args[i], i + 1
            if value.lower() not in FALSE_WORDS:
                out.append(_moss(command, names, name, RENAMED[name]))
        elif name == "--diarize":
            speakers[name] = "auto"
        elif name.startswith("--") and "_" in name and name.replace("_", "-") in names:
            out.append(name.replace("_", "-") + eq + inline)
            if name.replace("_", "-") in valued and not eq and i < len(args):
                out.append(args[i])
                i += 1
        else:
            out.append(arg)
    return out + _speakers(command, names, speakers)


def _speakers(command: Command, names: set[str], given: dict[str, str]) -> list[str]:
    """whisperX's --diarize [--min_speakers A] [--max_speakers B] as moss's --speakers auto|A-B."""
    if not given:
        return []
    if "--speakers" not in names:
        moss = "--speakers auto" if list(given) == ["--diarize"] else "--speakers MIN-MAX"
        raise UsageError(f"{next(iter(given))} is {moss} in moss, which moss {command.name} does not take")
    if "--min_speakers" not in given and "--max_speakers" not in given:
        return ["--speakers", "auto"]
    from ..speakers.voices import MAX_SPEAKERS

    fewest, most = given.get("--min_speakers", "1"), given.get("--max_speakers", str(MAX_SPEAKERS))
    return ["--speakers", f"{fewest.strip()}-{most.strip()}"]


def _moss(command: Command, names: set[str], whisper: str, moss: str) -> str:
    if moss not in names:
        raise UsageError(f"{whisper} is {moss} in moss, which moss {command.name} does not take")
    return moss


def _valued(command: Command, names: set[str], name: str, value: str) -> list[str]:
    if name in ("--output_format", "-f"):
        fmt = value.strip().lower()
        own = [word for word, flag in FORMAT_FLAGS.items() if flag in names and word != "all"]
        if fmt not in FORMAT_FLAGS:
            raise UsageError(f"{name} {value}: moss {command.name} writes {', '.join(own)} "
                             f"({', '.join(FORMAT_FLAGS[word] for word in own)}) or all (--all)")
        if FORMAT_FLAGS[fmt] not in names:
            shown = ", ".join(FORMAT_FLAGS[word] for word in own)
            raise UsageError(f"moss {command.name} writes no {fmt}; its formats: {shown}")
        return [FORMAT_FLAGS[fmt]]
    if name == "--task":
        if value.strip().lower() == "translate":  # whisper translates into English
            if "--translate" not in names:
                raise UsageError(f"--task translate is --translate en in moss, which moss {command.name} does not take")
            return ["--translate", "en"]
        if value.strip().lower() == "transcribe" and command.name == "transcribe":
            return []
        raise UsageError(f"--task {value}: moss names the task by its command (moss transcribe, moss events, ...)")
    return [_moss(command, names, name, RENAMED[name]), value]


class HabitCommand(Command):
    """A command that reads the whisper habits (see `translated`), before click parses its arguments."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        try:
            args = translated(self, args)
        except UsageError as exc:
            raise typer.Exit(report(exc)) from None
        return super().parse_args(ctx, args)
