"""Parsing the model's timed output and repairing what it gets wrong.

All times here are relative to the chunk the model heard; the pipeline adds the chunk offset.
Outputs to expect: `[0.00]hello there[2.01][2.01]the weather is nice[4.32]` for sentences and words,
`0.00 - 57.00: birds chirping` lines for events, and every deviation: missing brackets, overlaps,
times past the end, repeated segments, clock times like `[01:02.5]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?"
_SECONDS = r"\d+(?:\.\d+)?"
TIME = rf"(?:{_CLOCK}|{_SECONDS})"
_BRACKET_TIME = re.compile(rf"\[\s*({TIME})\s*(?:s|sec)?\s*\]")
_EVENT_LINE = re.compile(
    rf"^\s*[-*•]?\s*[\[(]?\s*({TIME})\s*(?:s|sec|seconds)?\s*[\])]?\s*(?:-|–|—|~|to)\s*"
    rf"[\[(]?\s*({TIME})\s*(?:s|sec|seconds)?\s*[\])]?\s*[:：\-–]?\s*(.*?)\s*$",
    re.IGNORECASE,
)
MIN_SPAN = 0.01  # a cue shorter than 10 ms is no cue


@dataclass
class Timed:
    start: float
    end: float
    text: str


def parse_time(value: str) -> float:
    """'12.5' -> 12.5, '01:02.5' -> 62.5, '1:02:03' -> 3723."""
    seconds = 0.0
    for part in value.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_bracketed(output: str, duration: float) -> list[Timed]:
    """`[s]text[e]` runs -> repaired, ordered spans inside [0, duration]. Empty if no usable times."""
    raw = _bracketed_spans(output)
    if not any(start is not None or end is not None for start, end, _ in raw):
        return []
    return repair(_fill_missing(raw, duration), duration)


def _bracketed_spans(output: str) -> list[tuple[float | None, float | None, str]]:
    spans: list[tuple[float | None, float | None, str]] = []
    pending_start: float | None = None
    last_time: float | None = None
    text = ""
    for index, piece in enumerate(_BRACKET_TIME.split(output)):
        if index % 2 == 0:  # text between times
            text += piece
            continue
        time = parse_time(piece)
        if text.strip():
            start = pending_start if pending_start is not None else last_time
            spans.append((start, time, _clean(text)))
            pending_start, text = None, ""
        else:  # a time followed by text opens the next span
            pending_start, text = time, ""
        last_time = time
    if text.strip():
        spans.append((pending_start if pending_start is not None else last_time, None, _clean(text)))
    return spans


def _fill_missing(spans, duration: float) -> list[Timed]:
    """A missing start takes the previous end (or 0); a missing end takes the next start (or the chunk end)."""
    filled: list[Timed] = []
    for i, (start, end, text) in enumerate(spans):
        if start is None:
            start = filled[-1].end if filled else 0.0
        if end is None:
            later = [s for s, _, _ in spans[i + 1 :] if s is not None]
            end = later[0] if later else duration
        filled.append(Timed(start, end, text))
    return filled


def repair(spans: list[Timed], duration: float) -> list[Timed]:
    """Clamp into the chunk, order, remove overlaps and repeats; text is kept, never silently lost."""
    repaired: list[Timed] = []
    for span in spans:
        start, end = sorted((_clamp(span.start, duration), _clamp(span.end, duration)))
        previous = repaired[-1] if repaired else None
        if previous and _same_text(previous.text, span.text) and start < previous.end:
            previous.end = max(previous.end, end)  # the same segment again, over the same time
            continue
        if previous and start < previous.end:
            start = previous.end
            end = max(end, start)
        if end - start < MIN_SPAN:
            if previous:  # nothing left of its time: its words belong to the previous span
                previous.text = f"{previous.text} {span.text}"
                continue
            end = min(duration, start + MIN_SPAN)
        repaired.append(Timed(start, end, span.text))
    return repaired


def parse_events(output: str, duration: float) -> list[Timed]:
    """`start - end: description` lines -> events ordered by start, inside [0, duration]."""
    events: list[Timed] = []
    for line in output.splitlines():
        match = _EVENT_LINE.match(line)
        if not match or not match.group(3):
            continue
        start, end = sorted((_clamp(parse_time(match.group(1)), duration), _clamp(parse_time(match.group(2)), duration)))
        event = Timed(start, max(end, min(duration, start + MIN_SPAN)), _clean(match.group(3)))
        if not any(e.start == event.start and e.end == event.end and e.text == event.text for e in events):
            events.append(event)
    events.sort(key=lambda e: (e.start, e.end))
    return events


def strip_times(output: str) -> str:
    """The text of an output whose times were unusable."""
    return _clean(_BRACKET_TIME.sub(" ", output))


def _clean(text: str) -> str:
    return " ".join(text.split())


def _clamp(value: float, duration: float) -> float:
    return min(max(value, 0.0), duration)


def _same_text(a: str, b: str) -> bool:
    return a.casefold().strip(" .,!?") == b.casefold().strip(" .,!?")
