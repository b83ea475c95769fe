"""Output formats: one small class each, with an extension and a pure `write(result, file)`."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TextIO

from .results import Result, seconds_to_ms
from .subtitles import CueLayout, cues_for, format_timestamp


class Writer:
    extension = ""

    def __init__(self, layout: CueLayout = CueLayout()):
        self.layout = layout

    def write(self, result: Result, file: TextIO) -> None:
        raise NotImplementedError


class TextWriter(Writer):
    """Transcripts one segment per line; events as `start - end: description`; answers as they are."""

    extension = "txt"

    def write(self, result: Result, file: TextIO) -> None:
        if result.task == "transcribe":
            lines = [s.text for s in result.segments]
        else:
            lines = [result.text] if result.text else []
        for line in lines:
            file.write(line + "\n")


class SrtWriter(Writer):
    extension = "srt"

    def write(self, result: Result, file: TextIO) -> None:
        import srt  # composes and validates SRT; we hand it integer milliseconds

        subtitles = [
            srt.Subtitle(index, timedelta(milliseconds=cue.start_ms), timedelta(milliseconds=cue.end_ms), cue.text)
            for index, cue in enumerate(cues_for(result, self.layout), start=1)
        ]
        file.write(srt.compose(subtitles, reindex=False))


class VttWriter(Writer):
    extension = "vtt"

    def write(self, result: Result, file: TextIO) -> None:
        file.write("WEBVTT\n\n")
        for cue in cues_for(result, self.layout):
            # Cue text is markup: &, < and > are escaped; a blank line would end the cue early.
            escaped = cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            text = "\n".join(line for line in escaped.splitlines() if line.strip())
            file.write(f"{format_timestamp(cue.start_ms, '.')} --> {format_timestamp(cue.end_ms, '.')}\n{text}\n\n")


class JsonWriter(Writer):
    extension = "json"

    def write(self, result: Result, file: TextIO) -> None:
        json.dump(result.to_dict(), file, ensure_ascii=False, indent=2)
        file.write("\n")


class JsonLinesWriter(Writer):
    """Several results to one stream: one compact JSON object per line."""

    extension = "jsonl"

    def write(self, result: Result, file: TextIO) -> None:
        file.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")


class TsvWriter(Writer):
    """start, end (integer milliseconds) and text, tab-separated, with a header."""

    extension = "tsv"

    def write(self, result: Result, file: TextIO) -> None:
        file.write("start\tend\ttext\n")
        rows = ([(e.start, e.end, e.description) for e in result.events] if result.task == "events"
                else [(s.start, s.end, s.text) for s in result.segments])
        for start, end, text in rows:
            clean = " ".join(text.split())
            file.write(f"{seconds_to_ms(start)}\t{seconds_to_ms(end)}\t{clean}\n")


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


WRITERS: dict[str, type[Writer]] = {
    cls.extension: cls
    for cls in (TextWriter, SrtWriter, VttWriter, JsonWriter, TsvWriter, JsonLinesWriter, HtmlWriter)
}


def get_writer(extension: str, layout: CueLayout = CueLayout()) -> Writer:
    return WRITERS[extension](layout)
