"""Loops in text: the local engine's repetition guard run on text as it arrives, and loops cut out.

A server streams text, not token ids, so the guard runs on text units that stand in for tokens:
words (long ones in pieces of up to 8 letters), single CJK characters, numbers and punctuation
marks, whitespace aside. Two checks run: the local engine's guard on the units as they are, and
one that takes every number for the same unit but wants twice the copies, for a model that loops
on a sentence with rising timestamps ("[2.01]so[4.02][4.02]so[6.03]..."). Twice: a recording may
hold the same short event or word again and again, with its own times each time.
"""

from __future__ import annotations

import re

from .base import RepetitionGuard

# CJK scripts write without spaces: one unit per character, as their tokens nearly are.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
UNIT = re.compile(rf"[{_CJK}]|\d+(?:[.,:]\d+)*|[^\W\d_{_CJK}]{{1,8}}|[^\w\s]|_")
NUMBER = "#"  # what every number is in the second check
LONGEST_LOOP_UNITS = 64  # the longest repeated phrase cut out of a kept answer
MIN_COPIES = 3  # a kept answer is cut when it ends in this many copies of a phrase ...
MIN_COPIES_ANY_NUMBERS = 8  # ... or in this many when numbers may differ between copies


def masked_guard(guard: RepetitionGuard) -> RepetitionGuard:
    """The guard for units whose numbers are masked: twice the copies and span."""
    return RepetitionGuard(guard.max_ngram, 2 * guard.min_repeats, 2 * guard.min_span)


def text_units(text: str) -> list[str]:
    return [match.group() for match in UNIT.finditer(text)]


def _masked(unit: str) -> str:
    return NUMBER if unit[0].isdigit() else unit


class TextLoopGuard:
    """Feeds streamed text to the repetition guard, unit by unit; `feed` says whether it loops now.

    The last two units stay pending until more text comes: "12" may yet become "12.5". When it
    loops, `seen` is how many characters of the text lead up to the unit that showed it: what
    follows is the start of yet another copy.
    """

    def __init__(self, guard: RepetitionGuard | None = None):
        self.guard = guard or RepetitionGuard()
        self.masked_guard = masked_guard(self.guard)
        self.units: list[str] = []
        self.masked: list[str] = []
        self.seen = 0
        self._pending = ""
        self._offset = 0  # characters of the text before _pending

    def feed(self, text: str) -> bool:
        self._pending += text
        matches = list(UNIT.finditer(self._pending))
        if len(matches) <= 2:
            return False
        for match in matches[:-2]:
            self.units.append(match.group())
            self.masked.append(_masked(match.group()))
            self.seen = self._offset + match.end()
            if self.guard.is_looping(self.units) or self.masked_guard.is_looping(self.masked):
                return True
        self._offset += matches[-2].start()
        self._pending = self._pending[matches[-2].start():]
        return False


def trim_loop(text: str) -> str:
    """The text up to the end of the first copy of the phrase it ends repeating, or as it is when it
    ends in no loop (MIN_COPIES copies, or MIN_COPIES_ANY_NUMBERS when numbers differ)."""
    matches = list(UNIT.finditer(text))
    units = [m.group() for m in matches]
    for sequence, copies in ((units, MIN_COPIES), ([_masked(u) for u in units], MIN_COPIES_ANY_NUMBERS)):
        period, run = _loop_at_end(sequence, copies)
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
