"""Parsing the model's timed output and repairing what it gets wrong.

All times here are relative to the chunk the model heard; the pipeline adds the chunk offset.
Outputs to expect: `[0.00]hello there[2.01][2.01]the weather is nice[4.32]` for sentences and words,
`0.00 - 57.00: birds chirping` lines for events, and every deviation: missing brackets, overlaps,
times past the end, repeated segments, clock times like `[01:02.5]`.

Answers come from a model (or a server) and can be anything: every pattern here runs in time linear
in the answer's length (no two unbounded quantifiers that can trade characters, whitespace runs
collapsed before a line is matched), and repairs build text in lists, never by growing strings.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?"
_SECONDS = r"\d+(?:\.\d+)?"
TIME = rf"(?:{_CLOCK}|{_SECONDS})"
# A bracketed time, or what a model writes in its place when it breaks: [nan], [inf], [-5.00], [1e308].
# Broken ones are matched too, so they never stay in the text; their value is unusable (`_usable`).
_NOT_A_TIME = r"nan|inf(?:inity)?|\d+(?:\.\d+)?e[-+]?\d+"  # first: "1e308" is no "1" and a word "e308"
_BROKEN = rf"[-+]?(?:{_NOT_A_TIME})|-{TIME}"
_BRACKET_TIME = re.compile(rf"\[\s*({TIME}|{_BROKEN})\s*(?:(?:sec|s)\s*)?\]", re.IGNORECASE)
# Matched against a line whose whitespace runs are single spaces, so each ` ?` has one way to match.
_UNIT = r"(?:(?:seconds|sec|s)\b)"  # longest first, whole words: "3 sec]" and "1 - 2 sirens" parse right
_EVENT_TIMES = re.compile(
    rf"[-*•]? ?[\[(]? ?({_NOT_A_TIME}|{TIME}) ?{_UNIT}? ?[\])]? ?(?:-|–|—|~|to) ?[\[(]? ?({_NOT_A_TIME}|{TIME}) ?{_UNIT}?"
    rf" ?[\])]? ?[:：\-–]?",
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


def _usable(value: str) -> float | None:
    """A time's seconds; None for a broken one (not a number, infinite, negative): a time the model
    could not say, repaired from its neighbours like a missing one. 1e308 is a time far past the end,
    clamped like any."""
    try:
        seconds = parse_time(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


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
        time = _usable(piece)
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
    """A missing start takes the previous end (or 0); a missing end takes the next time (or the chunk end)."""
    filled: list[Timed] = []
    for i, (start, end, text) in enumerate(spans):
        if start is None:
            start = filled[-1].end if filled else 0.0
        if end is None:  # the next time said, a start or (after a broken one) an end
            end = next((t for s, e, _ in spans[i + 1 :] for t in (s, e) if t is not None), duration)
        filled.append(Timed(start, end, text))
    return filled


def repair(spans: list[Timed], duration: float) -> list[Timed]:
    """Clamp into the chunk, order, remove overlaps and repeats; text is kept, never silently lost."""
    repaired: list[Timed] = []
    pieces: list[list[str]] = []  # the texts of each repaired span, joined once at the end
    for span in spans:
        start, end = sorted((_clamp(span.start, duration), _clamp(span.end, duration)))
        previous = repaired[-1] if repaired else None
        if previous and _same_text(pieces[-1][-1], span.text) and start < previous.end:
            previous.end = max(previous.end, end)  # the same segment again, over the same time
            continue
        if previous and start < previous.end:
            start = previous.end
            end = max(end, start)
        if end - start < MIN_SPAN:
            if previous:  # nothing left of its time: its words belong to the previous span
                pieces[-1].append(span.text)
                continue
            end = min(duration, start + MIN_SPAN)
        repaired.append(Timed(start, end, span.text))
        pieces.append([span.text])
    for span, texts in zip(repaired, pieces):
        span.text = " ".join(texts)
    return repaired


def parse_events(output: str, duration: float) -> list[Timed]:
    """`start - end: description` lines -> events ordered by start, inside [0, duration]."""
    events: list[Timed] = []
    seen = set()
    for line in output.splitlines():
        line = " ".join(line.split())
        match = _EVENT_TIMES.match(line)
        description = line[match.end():].strip() if match else ""
        times = (_usable(match.group(1)), _usable(match.group(2))) if description else (None, None)
        if None in times:  # a line without times, or with a broken one: no event to place
            continue
        start, end = sorted(_clamp(time, duration) for time in times)
        event = Timed(start, max(end, min(duration, start + MIN_SPAN)), description)
        if (event.start, event.end, event.text) not in seen:
            seen.add((event.start, event.end, event.text))
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


def json_object(answer: str) -> tuple[dict | None, str]:
    """(object, its JSON text) for an answer that is a JSON object, alone or in a ``` code fence;
    (None, answer) otherwise. Python reads NaN, Infinity and 1e999 where JSON has no such numbers:
    in the object they are None (written as null), so every JSON output stays valid JSON; the text
    keeps them as the model wrote them."""
    body = answer.strip()
    fence = body.find("```")
    if fence != -1:  # ```json\n{...}\n```, perhaps after a sentence
        opened = body.find("\n", fence)
        closed = body.find("```", opened + 1) if opened != -1 else -1
        body = body[opened + 1 : closed if closed != -1 else len(body)].strip() if opened != -1 else body
    try:
        parsed = JSON_DECODER.decode(body)
    except (ValueError, RecursionError):
        return None, answer
    return (parsed, body) if isinstance(parsed, dict) else (None, answer)


def _no_number(_constant: str) -> None:
    return None  # NaN, Infinity, -Infinity


def _finite_float(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


# What json_object reads a model's JSON with: NaN, Infinity and numbers past float's range as None.
JSON_DECODER = json.JSONDecoder(parse_constant=_no_number, parse_float=_finite_float)
