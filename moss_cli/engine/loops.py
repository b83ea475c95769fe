"""Loops in text: the local engine's repetition guard run on text as it arrives, and loops cut out.

A server streams text, not token ids, so the guard runs on text units that stand in for tokens:
words (long ones in pieces of up to 8 letters), single CJK characters, numbers and punctuation
marks, whitespace aside. Two checks run: the local engine's guard on the units as they are, and
one that takes every number for the same unit but wants twice the copies, for a model that loops
on a sentence with rising timestamps ("[2.01]so[4.02][4.02]so[6.03]...").

Rising numbers alone do not make a loop: a periodic sound (a clock ticking every 0.25 s, footsteps)
is the same event again and again with its own, rising, times, exactly like a looping model. What
tells them apart is the audio: a real event lies inside it, a loop goes on past its end. So a loop
whose numbers differ counts only once a number in it passes the end of the audio the model heard
(`seconds`), the same rule for a streamed answer (TextLoopGuard) and a finished one (rising_loop,
used by the pipeline for every engine). Without a length (a text-only request) it counts as before.
"""

from __future__ import annotations

import math
import re

from .base import RepetitionGuard

# CJK scripts write without spaces: one unit per character, as their tokens nearly are.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
UNIT = re.compile(rf"[{_CJK}]|\d+(?:[.,:]\d+)*|[^\W\d_{_CJK}]{{1,8}}|[^\w\s]|_")
NUMBER = "#"  # what every number is in the second check
LONGEST_LOOP_UNITS = 64  # the longest repeated phrase cut out of a kept answer
MIN_COPIES = 3  # a kept answer is cut when it ends in this many copies of a phrase ...
MIN_COPIES_ANY_NUMBERS = 8  # ... or in this many when numbers may differ between copies
LOOP_TAIL_CHARS = 16_000  # a finished answer's loop is looked for in its end: linear in its length
PAST_END_SECONDS = 1.0  # a number this far past the end of the audio is no time in it: the model loops


def masked_guard(guard: RepetitionGuard) -> RepetitionGuard:
    """The guard for units whose numbers are masked: twice the copies and span."""
    return RepetitionGuard(guard.max_ngram, 2 * guard.min_repeats, 2 * guard.min_span)


def text_units(text: str) -> list[str]:
    return [match.group() for match in UNIT.finditer(text)]


def _masked(unit: str) -> str:
    return NUMBER if unit[0].isdigit() else unit


def number_value(unit: str) -> float:
    """A number unit's value, read as seconds: "12.5", "1:02.5" (62.5), "1,000" (1000)."""
    value = 0.0
    try:
        for part in unit.replace(",", "").split(":"):
            value = value * 60 + float(part or 0)
    except ValueError:  # "1.2.3": no time, so nothing says it lies inside the audio
        return math.inf
    return value


def past_end(numbers, seconds: float | None) -> bool:
    """Whether rising numbers may be taken for a loop: some number runs past the end of the audio
    (or the audio's length is not known)."""
    return seconds is None or any(number_value(unit) > seconds + PAST_END_SECONDS for unit in numbers)


class TextLoopGuard:
    """Feeds streamed text to the repetition guard, unit by unit; `feed` says whether it loops now.

    The last two units stay pending until more text comes: "12" may yet become "12.5". When it
    loops, `seen` is how many characters of the text lead up to the unit that showed it: what
    follows is the start of yet another copy.
    """

    def __init__(self, guard: RepetitionGuard | None = None, seconds: float | None = None):
        self.guard = guard or RepetitionGuard()
        self.seconds = seconds  # of audio the answer is about: rising times past it are a loop
        self.masked_guard = masked_guard(self.guard)
        self.units: list[str] = []
        self.masked: list[str] = []
        self.seen = 0
        self._pending = ""
        self._offset = 0  # characters of the text before _pending
        self._last_number = "0"

    def feed(self, text: str) -> bool:
        self._pending += text
        matches = list(UNIT.finditer(self._pending))
        if len(matches) <= 2:
            return False
        for match in matches[:-2]:
            unit = match.group()
            self.units.append(unit)
            self.masked.append(_masked(unit))
            self._last_number = unit if unit[0].isdigit() else self._last_number
            self.seen = self._offset + match.end()
            if self.guard.is_looping(self.units) or self._rising_loop():
                return True
        self._offset += matches[-2].start()
        self._pending = self._pending[matches[-2].start():]
        return False


    def _rising_loop(self) -> bool:
        """The masked units loop and the last number in them is past the audio: when the repeated
        phrase holds a number, the last one is in its last copy (a phrase without one loops in
        the units as they are, which the plain guard sees first)."""
        return past_end([self._last_number], self.seconds) and self.masked_guard.is_looping(self.masked)


def rising_loop(text: str, seconds: float | None) -> bool:
    """Whether a text ends in MIN_COPIES_ANY_NUMBERS copies of a phrase whose numbers differ between
    copies, some of them past the end of the audio: a loop with rising timestamps, not a periodic sound."""
    units = text_units(text[-LOOP_TAIL_CHARS:])
    period, run = _loop_at_end([_masked(u) for u in units], MIN_COPIES_ANY_NUMBERS)
    return bool(period) and past_end([u for u in units[len(units) - run - period:] if u[0].isdigit()], seconds)


def trim_loop(text: str, seconds: float | None = None) -> str:
    """The text up to the end of the first copy of the phrase it ends repeating, or as it is when it
    ends in no loop (MIN_COPIES copies, or MIN_COPIES_ANY_NUMBERS when numbers differ and run past
    the end of `seconds` of audio)."""
    matches = list(UNIT.finditer(text))
    units = [m.group() for m in matches]
    for sequence, copies in ((units, MIN_COPIES), ([_masked(u) for u in units], MIN_COPIES_ANY_NUMBERS)):
        period, run = _loop_at_end(sequence, copies)
        if period and sequence is not units and not rising_loop(text, seconds):
            break  # a periodic sound inside the audio: its events are kept
        if period:  # keep one copy, ending as the text ends: on the copy's last unit, not mid-copy
            kept = len(units) - period * (run // period)
            return text[: matches[kept - 1].end()].rstrip()
    return text


def _loop_at_end(units: list[str], copies: int) -> tuple[int, int]:
    """(period, units after the first copy) of the longest loop the units end in, or (0, 0)."""
    best_period, best_run = 0, 0
    for period in range(1, min(LONGEST_LOOP_UNITS, len(units) // copies) + 1):
        run = _periodic_tail(units, period)
        if run >= (copies - 1) * period and run > best_run:
            best_period, best_run = period, run
    return best_period, best_run


def _periodic_tail(units: list[str], period: int) -> int:
    """How many units at the end repeat the unit `period` places before them."""
    run = 0
    for i in range(len(units) - 1, period - 1, -1):
        if units[i] != units[i - period]:
            break
        run += 1
    return run
