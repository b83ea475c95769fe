"""Typed results that flow from parsing to the writers. JSON is made from these, never ad hoc."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field


def json_text(value, indent: int | None = None) -> str:
    """JSON that is always valid JSON: json.dumps writes a non-finite float as a bare NaN or Infinity,
    which no strict parser reads. Such numbers (from a model's answer, or a bug) are written as null,
    as JavaScript's JSON.stringify writes them."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:  # rare: the finite copy is made only when there is something to replace
        return json.dumps(finite(value), ensure_ascii=False, indent=indent, allow_nan=False)


def finite(value):
    """A JSON-like value with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def seconds_to_ms(seconds: float) -> int:
    """All written timestamps come from integer milliseconds."""
    return int(round(seconds * 1000))


@dataclass
class Word:
    word: str
    start: float  # seconds from the start of the file
    end: float
    speaker: str | None = None  # with --speakers: "S1", "S2", ... or a given name

    def to_dict(self) -> dict:
        out = {"word": self.word, "start": _ms_round(self.start), "end": _ms_round(self.end)}
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    estimated: bool = False  # the model gave no usable times: the segment spans its chunk
    id: int = 0
    speaker: str | None = None  # with --speakers: who says it
    original: str | None = None  # with --translate: the text as spoken (`text` is its translation)

    def to_dict(self) -> dict:
        out = {"id": self.id, "start": _ms_round(self.start), "end": _ms_round(self.end), "text": self.text,
               "words": [w.to_dict() for w in self.words]}
        if self.original is not None:
            out["original"] = self.original
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.estimated:
            out["estimated"] = True
        return out


@dataclass
class Event:
    start: float
    end: float
    description: str
    estimated: bool = False
    original: str | None = None  # with --translate: the model's description (`description` is its translation)

    def to_dict(self) -> dict:
        out = {"start": _ms_round(self.start), "end": _ms_round(self.end), "description": self.description}
        if self.original is not None:
            out["original"] = self.original
        if self.estimated:
            out["estimated"] = True
        return out


@dataclass
class Chapter:
    """A part of a recording: it starts at `start` (a transcript sentence's start) and runs to `end`
    (the next chapter's start, or the end of the recording)."""

    start: float
    end: float
    title: str
    gist: str = ""  # one line on what the part is about

    def to_dict(self) -> dict:
        return {"start": _ms_round(self.start), "end": _ms_round(self.end), "title": self.title, "gist": self.gist}


@dataclass
class ActionItem:
    """Something a meeting agreed someone would do; `said_at`: when it was said, if the model knew."""

    what: str
    who: str | None = None
    said_at: float | None = None

    def to_dict(self) -> dict:
        return {"who": self.who, "what": self.what,
                "said_at": None if self.said_at is None else _ms_round(self.said_at)}


@dataclass
class Digest:
    """`summarize`: what a recording is about, in short and at length, its chapters and points."""

    kind: str  # meeting, podcast, lecture, interview or other (what --kind auto found)
    short_summary: str
    summary: str
    chapters: list[Chapter] = field(default_factory=list)
    key_points: list[str] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)  # meetings only
    decisions: list[str] = field(default_factory=list)  # meetings only
    language: str | None = None  # --language: the digest's language tag

    def to_dict(self) -> dict:
        return {"kind": self.kind, "language": self.language, "short_summary": self.short_summary,
                "summary": self.summary, "chapters": [c.to_dict() for c in self.chapters],
                "key_points": list(self.key_points), "action_items": [a.to_dict() for a in self.action_items],
                "decisions": list(self.decisions)}


@dataclass
class ChunkResult:
    """One chunk of a timed task (transcribe, events), as soon as it is answered: its span of the file and
    what was found in it, at file times. A Result gathers them."""

    start: float  # seconds from the start of the file
    end: float
    segments: list[Segment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What one task produced for one recording."""

    task: str  # transcribe, caption, describe-music, ask, events
    audio: str
    duration: float
    model: str
    text: str = ""  # the transcript, caption or answer
    segments: list[Segment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    question: str | None = None
    reasoning: str = ""  # a Thinking model's <think> text, for --show-reasoning (not in JSON)
    finish_reason: str | None = None  # for single answers: "stop", or "length" when the token cap cut it
    warnings: list[str] = field(default_factory=list)
    raw_text: str | None = None  # a text task's answer as the model gave it (times not moved), for `ask --json`
    window: tuple[float, float] | None = None  # the part of the file a question was answered from, in seconds
    voice: dict | None = None  # `caption --speech`: the answer's JSON object, parsed
    digest: Digest | None = None  # `summarize`: the digest (its transcript is in `segments`)
    translated_to: str | None = None  # --translate: the language tag the texts were translated into
    bilingual: bool = False  # --bilingual: outputs show each original text, then its translation
    voices: dict | None = None  # --voices: each speaker's profile and each segment's emotion and tone

    def answer_dict(self) -> dict:
        """`ask --json`: one line per recording and question."""
        out = {"audio": self.audio, "question": self.question, "answer": self.text, "raw_answer": self.raw_text,
               "finish_reason": self.finish_reason, "model": self.model}
        if self.window is not None:  # the answer's times were moved from this part of the file
            out["window"] = {"start": round(self.window[0], 3), "end": round(self.window[1], 3)}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def to_dict(self) -> dict:
        out: dict = {"task": self.task, "audio": self.audio, "model": self.model,
                     "duration": _ms_round(self.duration), "text": self.text}
        if self.question is not None:
            out["question"] = self.question
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        if self.voice is not None:
            out["voice"] = self.voice
        if self.translated_to is not None:
            out["translated_to"] = self.translated_to
        if self.task == "transcribe":
            out["segments"] = [s.to_dict() for s in self.segments]
        if self.voices is not None:
            out["voices"] = self.voices
        if self.task == "events":
            out["events"] = [e.to_dict() for e in self.events]
        if self.digest is not None:
            out["digest"] = self.digest.to_dict()
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def _ms_round(seconds: float) -> float:
    return seconds_to_ms(seconds) / 1000
