"""A transcript in the shapes OpenAI's transcription API answers with, made from the CLI's Result
and its writers (text, srt and vtt are the CLI's own outputs, byte for byte)."""

from __future__ import annotations

import io

from ..output.writers import get_writer
from ..results import ChunkResult, Result, seconds_to_ms
from ..text import join_words

FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
MEDIA_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}
WRITTEN = {"text": "txt", "srt": "srt", "vtt": "vtt"}


def transcript_body(result: Result, response_format: str, language: str | None, words: bool) -> str | dict:
    """The response body: a dict for the JSON formats, text for the others."""
    if response_format in WRITTEN:
        return written(result, WRITTEN[response_format])
    if response_format == "verbose_json":
        return verbose(result, language, words)
    if response_format == "diarized_json":
        return diarized(result)
    return {"text": result.text, "usage": usage(result)}


def written(result: Result, extension: str) -> str:
    """What `moss transcribe --txt/--srt/--vtt` writes for this result."""
    out = io.StringIO()
    get_writer(extension).write(result, out)
    return out.getvalue()


def usage(result: Result) -> dict:
    return {"type": "duration", "seconds": _seconds(result.duration)}


def verbose(result: Result, language: str | None, words: bool) -> dict:
    """OpenAI's verbose_json: segments (whisper's fields; moss has no log-probabilities to give, so
    those are neutral) and, when word times were asked for, the words."""
    body = {"task": "transcribe", "language": language or "unknown", "duration": _seconds(result.duration),
            "text": result.text, "segments": [_verbose_segment(s.to_dict()) for s in result.segments],
            "usage": usage(result)}
    if words:
        body["words"] = [word.to_dict() for segment in result.segments for word in segment.words]
    if result.warnings:
        body["warnings"] = list(result.warnings)
    return body


def _verbose_segment(segment: dict) -> dict:
    segment.pop("words")
    return {**segment, "seek": 0, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0,
            "no_speech_prob": 0.0}


def diarized(result: Result) -> dict:
    """OpenAI's diarized_json: segments with who speaks them."""
    return {"task": "transcribe", "duration": _seconds(result.duration), "text": result.text,
            "segments": [{"type": "transcript.text.segment", "id": f"seg_{s.id}", "start": _seconds(s.start),
                          "end": _seconds(s.end), "text": s.text, "speaker": s.speaker or "S1"}
                         for s in result.segments],
            "usage": usage(result)}


class Deltas:
    """A streamed transcript as transcript.text.delta events, one a segment, with its times (extra
    fields OpenAI's clients keep). The deltas add up to the final text exactly: each is what joining
    the segment on (join_words: a space, or none between CJK characters) adds."""

    def __init__(self):
        self.texts: list[str] = []
        self.text = ""

    def events(self, piece: ChunkResult) -> list[dict]:
        events = []
        for segment in piece.segments:
            self.texts.append(segment.text)
            joined = join_words(self.texts)
            delta = joined[len(self.text):] if joined.startswith(self.text) else segment.text
            self.text = joined
            events.append({"type": "transcript.text.delta", "delta": delta, "segment_id": f"seg_{len(self.texts) - 1}",
                           "start": _seconds(segment.start), "end": _seconds(segment.end)})
        return events


def done_event(result: Result) -> dict:
    return {"type": "transcript.text.done", "text": result.text, "usage": usage(result)}


def _seconds(seconds: float) -> float:
    """Times as the CLI's JSON writes them: whole milliseconds."""
    return seconds_to_ms(seconds) / 1000
