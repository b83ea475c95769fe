"""Times in free text: finding the time a question asks about, and moving times in an answer.

Not everything shaped like a clock is a time: "John 3:16", "a 2:1 ratio", "the 9:45 train". A question
chooses the audio it is answered from only by a time it asks about ("at 7:30", "7:30 in", "between 5
and 7 minutes"); an answer about a window has its times moved only where they read as times inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"\d+(?:\.\d+)?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?"
_H = r"(?:hours?|hrs?|h)"
_M = r"(?:minutes?|mins?|m)"
_S = r"(?:seconds?|secs?|s)"
# "1:02:30", "1h 2m 30s", "2 min 30", "90 seconds", "7.5 minutes"
_AMOUNT = (
    rf"(?:{_CLOCK}|{_NUM}\s*{_M}\b\s*{_NUM}(?![\d.]|\s*{_H}\b)(?:\s*{_S}\b)?"
    rf"|(?:{_NUM}\s*{_H}\b\s*)?(?:{_NUM}\s*{_M}\b\s*)?(?:{_NUM}\s*{_S}\b)?)"
)
_POINT = re.compile(rf"\b(?:at|around|about|near|roughly|approximately|after|by)\s+(?:the\s+)?({_AMOUNT})", re.I)
_RANGE = re.compile(
    rf"\b(?:between|from)\s+({_NUM}|{_AMOUNT})\s*(?:and|to|until|-|–)\s*({_AMOUNT})", re.I
)
_FIRST_LAST = re.compile(rf"\b(first|last|final)\s+({_NUM})\s*({_H}|{_M}|{_S})\b", re.I)
# A clock time without "at"/"around" before it counts when it says where it is: "10:15 in", "the 7:30
# mark", "timestamp 7:30", "[7:30]".
_NAMED_CLOCK = re.compile(
    rf"(?<![\d.:])({_CLOCK})(?![\d:])(?=\s*(?:in\b|into\b|mark\b))"
    rf"|\b(?:timestamp|time|mark)\s+({_CLOCK})(?![\d:])|\[({_CLOCK})\]",
    re.I,
)


@dataclass(frozen=True)
class TimeSpan:
    start: float
    end: float  # == start for a point in time
    text: str  # the words in the question that named it


def seconds_of(expression: str, default_unit: str | None = None) -> float | None:
    """'1:02:30' -> 3750, '2 min 30' -> 150, '90 seconds' -> 90, '7' with default 'm' -> 420."""
    expression = expression.strip().lower()
    if re.fullmatch(_CLOCK, expression):
        total = 0.0
        for part in expression.split(":"):
            total = total * 60 + float(part)
        return total
    parts = re.findall(rf"({_NUM})\s*({_H}|{_M}|{_S})?\b", expression)
    if not parts:
        return None
    total, previous = 0.0, None
    for amount, unit in parts:
        unit = unit or {"h": "m", "m": "s"}.get(previous or "", default_unit or "s")
        key = unit[0]
        total += float(amount) * {"h": 3600, "m": 60, "s": 1}[key]
        previous = key
    return total


def find_time_span(question: str, duration: float) -> TimeSpan | None:
    """The time or range a question asks about ("at 2:00", "between 5 and 7 minutes", "the last 30 s").

    Times may lie past `duration` (or be infinite, for absurdly long numbers): the caller decides.
    """
    if match := _RANGE.search(question):
        end = seconds_of(match.group(2))
        unit = _unit_of(match.group(2))
        start = seconds_of(match.group(1), default_unit=unit)
        if start is not None and end is not None:
            return TimeSpan(min(start, end), max(start, end), match.group(0))
    if match := _FIRST_LAST.search(question):
        length = seconds_of(f"{match.group(2)} {match.group(3)}") or 0.0
        if match.group(1).lower() == "first":
            return TimeSpan(0.0, min(length, duration), match.group(0))
        return TimeSpan(max(0.0, duration - length), duration, match.group(0))
    for match in _POINT.finditer(question):
        value = seconds_of(match.group(1))
        if value is not None and match.group(1).strip():
            return TimeSpan(value, value, match.group(0))
    if match := _NAMED_CLOCK.search(question):
        clock = next(group for group in match.groups() if group)
        value = seconds_of(clock)
        return TimeSpan(value, value, clock)
    return None


def format_clock(seconds: float) -> str:
    """62.5 -> '1:02', 3723 -> '1:02:03' (whole seconds, as people write them)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_ANSWER_CLOCK = re.compile(rf"(?<![\d.:])({_CLOCK})(?![\d:])")
_ANSWER_BRACKET_SECONDS = re.compile(rf"\[({_NUM})\]")
_WORD_BEFORE = re.compile(r"([^\W\d_]+)\s+$")  # the word right before a time, if any
# Words after which a number is a time; after any other word ("John 3:16", "ratio 2:1") it is not.
_TIME_WORDS = frozenset(
    "at around about from to until till between and by after before since near approximately roughly the "
    "is was start starts starting begin begins end ends ending stop stops time timestamp mark".split()
)
WINDOW_SLACK_SECONDS = 1.0  # a model may name a time a little past the end of what it heard


def shift_times(text: str, offset: float, length: float) -> str:
    """Times in an answer about a window `length` seconds long that starts `offset` seconds into the
    file, moved to file times: clock times (`1:05`, `[00:08]`) and bracketed seconds (`[12.34]`).

    Only what reads as a time inside the window moves: "9:45" in a two-minute window stays, and so does
    a number right after a word that does not introduce a time ("John 3:16").
    """
    if offset == 0:
        return text

    def inside(match: re.Match, seconds: float, bracketed: bool = False) -> bool:
        if seconds > length + WINDOW_SLACK_SECONDS:
            return False
        before = None if bracketed else _WORD_BEFORE.search(text, max(0, match.start() - 40), match.start())
        return before is None or before.group(1).lower() in _TIME_WORDS

    def clock(match: re.Match) -> str:
        original = match.group(1)
        seconds = seconds_of(original)
        if not inside(match, seconds):
            return original
        shifted = seconds + offset
        if original.count(":") == 1 and len(original.split(":")[0]) == 2 and shifted < 6000:
            minutes, secs = divmod(int(round(shifted)), 60)
            return f"{minutes:02d}:{secs:02d}"  # keep the model's mm:ss style
        return format_clock(shifted)

    def bracketed(match: re.Match) -> str:
        seconds = float(match.group(1))
        return f"[{seconds + offset:.2f}]" if inside(match, seconds, bracketed=True) else match.group(0)

    text = _ANSWER_CLOCK.sub(clock, text)
    return _ANSWER_BRACKET_SECONDS.sub(bracketed, text)


def _unit_of(expression: str) -> str | None:
    found = re.findall(rf"({_H}|{_M}|{_S})\b", expression.lower())
    return found[-1][0] if found else None
