"""Outputs that grow while a live run goes on: SRT, VTT, JSON Lines and TXT, appended an utterance at a
time and flushed, so that each file is valid up to its last cue whenever the run ends (kill -9 too).

Each utterance's cues are written by the very writers a file run uses (writers.py), over a result
that holds that utterance alone, at stream times: a live run's cues are a file run's cues over the
same utterances. Only the numbering of SRT cues runs on across utterances.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from ..errors import OutputError
from ..results import Result, json_text, seconds_to_ms
from .subtitles import CueLayout
from .writers import SrtWriter, TextWriter, VttWriter

LIVE_FORMATS = ("srt", "vtt", "jsonl", "txt")


def skipped_note(reason: str) -> str:
    return f"[skipped: {reason}]"


class AppendingOutputs:
    """DIR/<stem>.srt, .vtt, .jsonl and .txt (those in `formats`), each written cue by cue."""

    def __init__(self, directory: Path, stem: str, layout: CueLayout = CueLayout(), formats=LIVE_FORMATS):
        self.layout = layout
        self.cues = 0  # SRT cues written so far: the next one's number follows
        self.files: dict[str, io.TextIOBase] = {}
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for extension in formats:
                self.files[extension] = open(directory / f"{stem}.{extension}", "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            self.close()
            raise OutputError(f"{directory}: cannot write the live outputs ({exc.strerror or exc})") from None
        self.paths = [Path(file.name) for file in self.files.values()]
        if "vtt" in self.files:
            self._append("vtt", "WEBVTT\n\n")

    def add(self, result: Result, record: dict) -> None:
        """One utterance's result (times in the stream); `record`: its JSON line's fields besides them."""
        if "srt" in self.files:
            self._append("srt", self._numbered(_written(SrtWriter(self.layout), result)))
        if "vtt" in self.files:
            self._append("vtt", _written(VttWriter(self.layout), result).removeprefix("WEBVTT\n\n"))
        if "txt" in self.files:
            self._append("txt", _written(TextWriter(self.layout), result))
        if "jsonl" in self.files:
            items = ({"events": [e.to_dict() for e in result.events]} if result.task == "events"
                     else {"segments": [s.to_dict() for s in result.segments]})
            self._append("jsonl", json_text({**record, "text": result.text, **items}) + "\n")

    def skipped(self, start: float, end: float, reason: str, record: dict) -> None:
        """A gap the run did not transcribe, marked in every output: never silently lost."""
        note = skipped_note(reason)
        start_ms, end_ms = seconds_to_ms(start), max(seconds_to_ms(end), seconds_to_ms(start) + 1)
        if "srt" in self.files:
            import srt

            self.cues += 1
            cue = srt.Subtitle(self.cues, timedelta(milliseconds=start_ms), timedelta(milliseconds=end_ms), note)
            self._append("srt", srt.compose([cue], reindex=False))
        if "vtt" in self.files:
            from .subtitles import format_timestamp

            self._append("vtt", f"{format_timestamp(start_ms, '.')} --> {format_timestamp(end_ms, '.')}\n{note}\n\n")
        if "txt" in self.files:
            self._append("txt", f"[skipped {start:.2f} - {end:.2f} s: {reason}]\n")
        if "jsonl" in self.files:
            self._append("jsonl", json_text({"skipped": [round(start, 3), round(end, 3)], "reason": reason,
                                             **record}) + "\n")

    def close(self) -> None:
        for file in self.files.values():
            try:
                file.close()
            except OSError:
                pass

    def _numbered(self, composed: str) -> str:
        """A file run's SRT for one utterance, its cues numbered on from the last one written."""
        import srt

        cues = list(srt.parse(composed))
        for cue in cues:
            self.cues += 1
            cue.index = self.cues
        return srt.compose(cues, reindex=False) if cues else ""

    def _append(self, extension: str, text: str) -> None:
        if not text:
            return
        file = self.files[extension]
        try:
            file.write(text)
            file.flush()  # in the kernel's hands: a killed run leaves the file as it is now
        except OSError as exc:
            raise OutputError(f"{file.name}: cannot write ({exc.strerror or exc})") from None


def _written(writer, result: Result) -> str:
    text = io.StringIO()
    writer.write(result, text)
    return text.getvalue()
