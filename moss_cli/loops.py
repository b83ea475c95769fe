"""Loops in text: the local engine's repetition guard run on text as it arrives, and loops cut out.

A server streams text, not token ids, so the guard runs on text units that stand in for tokens:
words (long ones in pieces of up to 8 letters), single CJK characters, numbers and punctuation
marks, whitespace aside. Numbers count as one and the same unit: a model that loops on a
sentence with rising timestamps ("[2.01]so[4.02][4.02]so[6.03]...") repeats itself all the same.
"""

from __future__ import annotations

import re

from .decoding import RepetitionGuard

# CJK scripts write without spaces: one unit per character, as their tokens nearly are.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
UNIT = re.compile(rf"[{_CJK}]|\d+(?:[.,:]\d+)*|[^\W\d_{_CJK}]{{1,8}}|[^\w\s]|_")
NUMBER = "#"
LONGEST_LOOP_UNITS = 64  # the longest repeated phrase cut out of a kept answer


def _unit(match: re.Match) -> str:
    text = match.group()
    return NUMBER if text[0].isdigit() else text


def text_units(text: str) -> list[str]:
    return [_unit(m) for m in UNIT.finditer(text)]


class TextLoopGuard:
    """Feeds streamed text to a RepetitionGuard, unit by unit; `feed` says whether it loops now.

    The last two units stay pending until more text comes: "12" may yet become "12.5".
    """

    def __init__(self, guard: RepetitionGuard | None = None):
        self.guard = guard or RepetitionGuard()
        self.units: list[str] = []
        self._pending = ""

    def feed(self, text: str) -> bool:
        self._pending += text
        matches = list(UNIT.finditer(self._pending))
        if len(matches) <= 2:
            return False
        for match in matches[:-2]:
            self.units.append(_unit(match))
            if self.guard.is_looping(self.units):
                return True
        self._pending = self._pending[matches[-2].start():]
        return False


def trim_loop(text: str) -> str:
    """The text up to the end of the first copy of the phrase it ends repeating (3 copies or more);
    the text as it is when it ends in no such loop."""
    matches = list(UNIT.finditer(text))
    units = [_unit(m) for m in matches]
    best_period, best_run = 0, 0
    for period in range(1, min(LONGEST_LOOP_UNITS, len(units) // 3) + 1):
        run = _periodic_tail(units, period)
        if run >= 2 * period and run > best_run:
            best_period, best_run = period, run
    if not best_period:
        return text
    first_copy_end = len(units) - best_run - 1  # index of the last unit of the first copy
    return text[: matches[first_copy_end].end()].rstrip()


def _periodic_tail(units: list[str], period: int) -> int:
    """How many units at the end repeat the unit `period` places before them."""
    run = 0
    for i in range(len(units) - 1, period - 1, -1):
        if units[i] != units[i - period]:
            break
        run += 1
    return run
