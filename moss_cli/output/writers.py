"""Output formats: one small class each, with an extension and a pure `write(result, file)`."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from ..results import Result, json_text, seconds_to_ms
from .subtitles import Cue, CueLayout, cues_for, format_timestamp, render, word_marks, word_steps


class Writer:
    extension = ""

    def __init__(self, layout: CueLayout = CueLayout()):
        self.layout = layout

    def write(self, result: Result, file: TextIO) -> None:
        raise NotImplementedError


class TextWriter(Writer):
    """Transcripts one segment per line; events as `start - end: description`; answers as they are.
    Bilingual: each segment (or event) as it was said, then its translation on the next line."""

    extension = "txt"

    def write(self, result: Result, file: TextIO) -> None:
        if result.bilingual:
            lines = _bilingual_lines(result)
        elif result.task == "transcribe":
            speakers = [s.speaker for s in result.segments]
            lines = [_bracket_label(s.text, s.speaker, i == 0 or s.speaker != speakers[i - 1])
                     for i, s in enumerate(result.segments)]
        else:
            lines = [result.text] if result.text else []
        for line in lines:
            file.write(line + "\n")


class SrtWriter(Writer):
    """SubRip; with highlight_words, one cue per word with the current word underlined."""

    extension = "srt"

    def write(self, result: Result, file: TextIO) -> None:
        import srt  # composes and validates SRT; we hand it integer milliseconds

        subtitles = [
            srt.Subtitle(index, timedelta(milliseconds=start), timedelta(milliseconds=end), text)
            for index, (start, end, text) in enumerate(_shown(result, self.layout, escape=str, label=_bracket_label),
                                                       start=1)
        ]
        file.write(srt.compose(subtitles, reindex=False))


class VttWriter(Writer):
    """WebVTT; in word mode each word after the first carries its time (`<00:00:01.044>word`), which
    players style with ::cue(:past) and ::cue(:future); with highlight_words, one cue per word.
    With speakers, each cue is a voice span, `<v S1>text</v>`."""

    extension = "vtt"

    def write(self, result: Result, file: TextIO) -> None:
        file.write("WEBVTT\n\n")
        for start, end, text in _shown(result, self.layout, escape=_escape_vtt, word_times=self.layout.words,
                                       label=_voice_span):
            file.write(f"{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{text}\n\n")


class AssWriter(Writer):
    """Advanced SubStation Alpha; in word mode with karaoke tags (`{\\k40}word`, centiseconds)."""

    extension = "ass"

    def write(self, result: Result, file: TextIO) -> None:
        import pysubs2  # the ASS file layout (script info, styles, events) and its time format

        subs = pysubs2.SSAFile()
        subs.info.update({"Title": Path(result.audio).name, "PlayResX": "1920", "PlayResY": "1080"})
        # Karaoke shows words in the secondary colour until they are spoken, then in the primary.
        subs.styles["Default"] = pysubs2.SSAStyle(
            fontsize=60, primarycolor=pysubs2.Color(255, 255, 255), secondarycolor=pysubs2.Color(160, 160, 160),
            outline=3, shadow=1, marginv=50, marginl=60, marginr=60)
        previous = None
        for cue in cues_for(result, self.layout):
            text = _karaoke(cue) if self.layout.words else render(cue, lambda _, piece: _escape_ass(piece.text), "\\N")
            text = _bracket_label(text, _escape_ass(cue.speaker or ""), cue.speaker != previous)
            # With speakers, the event's Name (actor) field says who speaks; the text shows it at changes.
            subs.events.append(pysubs2.SSAEvent(start=cue.start_ms, end=cue.end_ms, text=_directed(text),
                                                name=cue.speaker or ""))
            previous = cue.speaker
        file.write(subs.to_string("ass"))


def _shown(result: Result, layout: CueLayout, escape, word_times: bool = False, label=None) -> list[tuple[int, int, str]]:
    """(start_ms, end_ms, text) as SRT and VTT show them: highlighted, with inline word times, or plain;
    `label(text, speaker, changed)` marks the speaker (changed: not the previous cue's speaker)."""
    shown, previous = [], None
    for cue in cues_for(result, layout):
        for start, end, text in _cue_texts(cue, layout, escape, word_times):
            text = label(text, cue.speaker, cue.speaker != previous) if label else text
            shown.append((start, end, _directed(text, "\n")))
        previous = cue.speaker
    return shown


def _cue_texts(cue: Cue, layout: CueLayout, escape, word_times: bool) -> list[tuple[int, int, str]]:
    """One cue's (start_ms, end_ms, text): a step per word when highlighting, else the cue itself."""
    if layout.highlight_words and any(piece.timed for piece in cue.pieces):
        return [(start, end, render(cue, lambda i, piece, now=spoken: f"<u>{escape(piece.text)}</u>" if i in now
                                    else escape(piece.text)))
                for start, end, spoken in word_steps(cue)]
    if word_times:
        marks = word_marks(cue)
        return [(cue.start_ms, cue.end_ms, render(cue, lambda i, piece: _vtt_mark(marks[i]) + escape(piece.text)))]
    return [(cue.start_ms, cue.end_ms, render(cue, lambda _, piece: escape(piece.text)))]


def _bilingual_lines(result: Result) -> list[str]:
    """Each original text then its translation: a segment's with its speaker label where the speaker
    changes, an event's after its times, the translation under the text."""
    lines = []
    if result.task == "events":
        for event in result.events:
            when = f"{event.start:.2f} - {event.end:.2f}: "
            lines += [when + _original(event.original, event.description), " " * len(when) + event.description]
        return lines
    previous = None
    for index, segment in enumerate(result.segments):
        changed = index == 0 or segment.speaker != previous
        lines += [_bracket_label(_original(segment.original, segment.text), segment.speaker, changed), segment.text]
        previous = segment.speaker
    return lines


def _original(original: str | None, text: str) -> str:
    return text if original is None else original


def _bracket_label(text: str, speaker: str | None, changed: bool) -> str:
    """SRT, TXT, ASS: `[S1] ` before the text where the speaker changes."""
    return f"[{speaker}] {text}" if speaker and changed else text


def _voice_span(text: str, speaker: str | None, changed: bool) -> str:
    """WebVTT's voice span on every cue (players and Chromium read who speaks from it)."""
    return f"<v {_escape_vtt(speaker)}>{text}</v>" if speaker else text


def _escape_vtt(text: str) -> str:
    """Cue text is markup: &, < and > are escaped (which also keeps "-->" out of it)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_mark(ms: int | None) -> str:
    return "" if ms is None else f"<{format_timestamp(ms, '.')}>"


def _escape_ass(text: str) -> str:
    """Braces would open override blocks (libass shows \\{ and \\} as braces); a backslash could start
    \\N, \\n or \\h, so it is written as its look-alike U+29F5."""
    return text.replace("\\", "\u29f5").replace("{", "\\{").replace("}", "\\}")


def _directed(text: str, newline: str = "\\N") -> str:
    """A cue's lines, each written mostly in a right-to-left script (Arabic, Hebrew) embedded right to
    left (U+202B ... U+202C). libass lays an ASS event out left to right (the style's Encoding 1), as it
    does SubRip that players turn into ASS; browsers take a WebVTT line's direction from its first
    letter: such a line would show its final full stop, or a Latin name at its start, on the wrong side.
    Lines in other scripts stay as they are."""
    return newline.join(f"\u202b{line}\u202c" if _right_to_left(line) else line for line in text.split(newline))


def _right_to_left(line: str) -> bool:
    """More letters of right-to-left scripts than of left-to-right ones (markup not counted)."""
    letters = [unicodedata.bidirectional(char) for char in _ASS_TAG.sub("", line)]
    return letters.count("R") + letters.count("AL") > letters.count("L")


_ASS_TAG = re.compile(r"(?<!\\)\{[^}]*\}|<[^>]*>")  # {\k40}, not an escaped \{brace\}; <v S1>, <i>


def _karaoke(cue: Cue) -> str:
    """Each group of words sung from its mark: `{\\kN}` before it, N centiseconds until the next."""
    steps = word_steps(cue)
    tags = {}
    for start, end, spoken in steps:
        tags[spoken.start] = f"{{\\k{round(end / 10) - round(start / 10)}}}"
    return render(cue, lambda i, piece: tags.get(i, "") + _escape_ass(piece.text), "\\N")


class JsonWriter(Writer):
    extension = "json"

    def write(self, result: Result, file: TextIO) -> None:
        file.write(json_text(result.to_dict(), indent=2) + "\n")


class JsonLinesWriter(Writer):
    """Several results to one stream: one compact JSON object per line."""

    extension = "jsonl"

    def write(self, result: Result, file: TextIO) -> None:
        file.write(json_text(result.to_dict()) + "\n")


class TsvWriter(Writer):
    """start, end (integer milliseconds), speaker (with --speakers) and text, tab-separated, with a header.
    Bilingual: an `original` column before the text (the translation)."""

    extension = "tsv"

    def write(self, result: Result, file: TextIO) -> None:
        speakers = any(s.speaker for s in result.segments)  # the column only when --speakers labelled them
        file.write("start\tend\t" + ("speaker\t" if speakers else "") + ("original\t" if result.bilingual else "")
                   + "text\n")
        rows = ([(e.start, e.end, None, e.original, e.description) for e in result.events] if result.task == "events"
                else [(s.start, s.end, s.speaker, s.original, s.text) for s in result.segments])
        for start, end, speaker, original, text in rows:
            clean = " ".join(text.split())
            who = f"{speaker or ''}\t" if speakers else ""
            said = " ".join(_original(original, text).split()) + "\t" if result.bilingual else ""
            file.write(f"{seconds_to_ms(start)}\t{seconds_to_ms(end)}\t{who}{said}{clean}\n")


class HtmlWriter(Writer):
    """A self-contained page (report.py): waveform, timeline, list and player. The runner passes the
    `PageContext` it read from the audio; without one the page has no waveform and no audio."""

    extension = "html"

    def __init__(self, layout: CueLayout = CueLayout(), page=None):
        super().__init__(layout)
        self.page = page

    def write(self, result: Result, file: TextIO) -> None:
        from .report import render_page  # jinja2 loads only when a page is written

        file.write(render_page([result], self.page))


class AnswerWriter(Writer):
    """`ask`: the answer alone (stdout only; the runner puts a blank line between answers)."""

    extension = "answer"

    def write(self, result: Result, file: TextIO) -> None:
        file.write(result.text + "\n")


class AnswerLinesWriter(Writer):
    """`ask --json`, or several recordings: one JSON object per recording and question."""

    extension = "answers"

    def write(self, result: Result, file: TextIO) -> None:
        file.write(json_text(result.answer_dict()) + "\n")


WRITERS: dict[str, type[Writer]] = {
    cls.extension: cls
    for cls in (TextWriter, SrtWriter, VttWriter, AssWriter, JsonWriter, TsvWriter, JsonLinesWriter, HtmlWriter,
                AnswerWriter, AnswerLinesWriter)
}


def get_writer(extension: str, layout: CueLayout = CueLayout()) -> Writer:
    return WRITERS[extension](layout)
