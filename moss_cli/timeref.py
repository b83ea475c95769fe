"""Times in free text: finding the time a question names, and moving times in an answer."""

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
_BARE_CLOCK = re.compile(rf"(?<![\d.:])({_CLOCK})(?![\d:])")


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
    """The time or range a question names ("at 2:00", "between 5 and 7 minutes", "the last 30 s")."""
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
    for pattern in (_POINT, _BARE_CLOCK):
        for match in pattern.finditer(question):
            value = seconds_of(match.group(1))
            if value is not None and match.group(1).strip():
                return TimeSpan(value, value, match.group(0))
    return None


def format_clock(seconds: float) -> str:
    """62.5 -> '1:02', 3723 -> '1:02:03' (whole seconds, as people write them)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_ANSWER_CLOCK = re.compile(rf"(?<![\d.:])({_CLOCK})(?![\d:])")
_ANSWER_BRACKET_SECONDS = re.compile(rf"\[({_NUM})\]")


def shift_times(text: str, offset: float) -> str:
    """Move clock times (`1:05`, `[00:08]`) and bracketed seconds (`[12.34]`) in a text by `offset`."""
    if offset == 0:
        return text

    def clock(match: re.Match) -> str:
        original = match.group(1)
        shifted = seconds_of(original) + offset
        if original.count(":") == 1 and len(original.split(":")[0]) == 2 and shifted < 6000:
            minutes, secs = divmod(int(round(shifted)), 60)
            return f"{minutes:02d}:{secs:02d}"  # keep the model's mm:ss style
        return format_clock(shifted)

    text = _ANSWER_CLOCK.sub(clock, text)
    return _ANSWER_BRACKET_SECONDS.sub(lambda m: f"[{float(m.group(1)) + offset:.2f}]", text)


def _unit_of(expression: str) -> str | None:
    found = re.findall(rf"({_H}|{_M}|{_S})\b", expression.lower())
    return found[-1][0] if found else None
