"""`summarize`'s outputs: the digest as Markdown, and its chapters as a WebVTT chapters track, FFmpeg
metadata (;FFMETADATA1) and the `00:00 Title` lines video sites read. One small class each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TextIO

from ..results import Chapter, Digest, Result, seconds_to_ms
from ..timeref import format_clock
from .subtitles import format_timestamp
from .writers import Writer


def _digest(result: Result) -> Digest:
    if result.digest is None:
        raise ValueError(f"{result.task} has no digest to write")
    return result.digest


class MarkdownWriter(Writer):
    """The digest to read: summaries, chapters with their times, key points, action items, decisions."""

    extension = "md"

    def write(self, result: Result, file: TextIO) -> None:
        digest = _digest(result)
        facts = f"*{digest.kind.capitalize()} · {format_clock(result.duration)}*"  # times below: at their second
        summary = "\n\n".join(_inline(paragraph) for paragraph in digest.summary.split("\n") if paragraph.strip())
        parts = [f"# {_inline(Path(result.audio).name)}", facts, _inline(digest.short_summary), "## Summary",
                 summary or "(none)"]
        if digest.chapters:
            parts += ["## Chapters", "\n".join(
                f"- **{_second(c.start)}** {_inline(c.title)}" + (f" — {_inline(c.gist)}" if c.gist else "")
                for c in digest.chapters)]
        if digest.key_points:
            parts += ["## Key points", _bullets(digest.key_points)]
        if digest.kind == "meeting":
            parts += ["## Action items", "\n".join(_action(a) for a in digest.action_items) or "(none)",
                      "## Decisions", _bullets(digest.decisions) or "(none)"]
        if result.voices and result.voices.get("speakers"):
            parts += ["## Voices", _voices(result.voices["speakers"])]
        file.write("\n\n".join(part for part in parts if part) + "\n")


def _voices(profiles: dict[str, dict[str, str]]) -> str:
    """--voices: a line per speaker, their voice as the model described it (fields it could not say: left out)."""
    lines = []
    for name, profile in profiles.items():
        described = "; ".join(f"{key}: {value}" for key, value in profile.items())
        lines.append(f"- **{_inline(name)}**: {_inline(described) or '(not described)'}")
    return "\n".join(lines)


def _action(item) -> str:
    who = f"**{_inline(item.who)}**: " if item.who else ""
    said = f" (said at {_second(item.said_at)})" if item.said_at is not None else ""
    return f"- {who}{_inline(item.what)}{said}"


def _second(seconds: float) -> str:
    """The clock of the second a time falls in: a reader who seeks there hears it from its start."""
    return format_clock(seconds_to_ms(seconds) // 1000)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {_inline(item)}" for item in items)


def _inline(text: str) -> str:
    """One line of Markdown: the model's line breaks joined, a leading mark that would start a heading,
    list or quote escaped."""
    line = " ".join(text.split())
    return re.sub(r"^([#>*+-]|\d+[.)])", r"\\\1", line)


class ChapterVttWriter(Writer):
    """A WebVTT chapters track (<track kind="chapters">): one cue per chapter, its title the cue text."""

    extension = "chapters.vtt"

    def write(self, result: Result, file: TextIO) -> None:
        file.write("WEBVTT\n\n")
        for index, chapter in enumerate(_digest(result).chapters, start=1):
            start, end = _span_ms(chapter)
            title = " ".join(chapter.title.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            file.write(f"{index}\n{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{title}\n\n")


class FfmetadataWriter(Writer):
    """FFmpeg's metadata file: `ffmpeg -i in.mp4 -i talk.ffmetadata -map_metadata 1 -codec copy out.mp4`
    puts the chapters into the file (times in milliseconds)."""

    extension = "ffmetadata"

    def write(self, result: Result, file: TextIO) -> None:
        digest = _digest(result)
        file.write(";FFMETADATA1\n")
        file.write(f"title={_ffescape(Path(result.audio).stem)}\n")
        if digest.short_summary:
            file.write(f"description={_ffescape(digest.short_summary)}\n")
        for chapter in digest.chapters:
            start, end = _span_ms(chapter)
            file.write(f"\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={_ffescape(chapter.title)}\n")


def _ffescape(text: str) -> str:
    """=, ;, #, \\ and line breaks are special in FFmpeg's metadata: a backslash before each. A value
    cannot end in a backslash: FFmpeg reads the line break after it, escaped or not, as part of the
    value, and the next line with it; so a trailing one is dropped."""
    return re.sub(r"([=;#\\\n])", r"\\\1", " ".join(text.split()).rstrip("\\ "))


class ChapterListWriter(Writer):
    """`00:00 Title` lines, as video sites read chapters from a description (h:mm:ss past an hour)."""

    extension = "chapters.txt"

    def write(self, result: Result, file: TextIO) -> None:
        hours = result.duration >= 3600
        for chapter in _digest(result).chapters:
            total = seconds_to_ms(chapter.start) // 1000
            minutes, seconds = divmod(total, 60)
            clock = f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
            file.write(f"{clock} {' '.join(chapter.title.split())}\n")


def _span_ms(chapter: Chapter) -> tuple[int, int]:
    start = seconds_to_ms(chapter.start)
    return start, max(start, seconds_to_ms(chapter.end))


CHAPTER_WRITERS: dict[str, type[Writer]] = {
    cls.extension: cls for cls in (MarkdownWriter, ChapterVttWriter, FfmetadataWriter, ChapterListWriter)
}
