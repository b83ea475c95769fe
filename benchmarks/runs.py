"""Interleaved, repeated timing: the order of runs and what is reported from them.

Sides run in turn (A B A B ...), so a machine whose speed drifts (other work, heat) slows every
side alike; the median is the figure to quote and the min-max spread says how noisy it was.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no runs to summarise")
        return cls(statistics.median(values), min(values), max(values))


def interleaved(sides: Sequence[str], repeats: int) -> list[str]:
    """The order of runs: every side once per round, `repeats` rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    return [side for _ in range(repeats) for side in sides]


def run_interleaved(runners: dict[str, Callable[[], float]], repeats: int,
                    report: Callable[[int, str, float], None] = lambda *_: None) -> dict[str, list[float]]:
    """Runs each side's timed work in interleaved order; returns the seconds of every run per side."""
    seconds: dict[str, list[float]] = {side: [] for side in runners}
    for index, side in enumerate(interleaved(list(runners), repeats)):
        seconds[side].append(runners[side]())
        report(index // len(runners) + 1, side, seconds[side][-1])
    return seconds


def ratios(seconds: dict[str, list[float]], reference: str) -> dict[str, float]:
    """How many times slower each other side is than `reference`, median against median."""
    base = Spread.of(seconds[reference]).median
    return {side: Spread.of(times).median / base for side, times in seconds.items() if side != reference}


def read_event(process: subprocess.Popen, event: str) -> dict | None:
    """The next JSON record of `event` a worker process writes on stdout (one object a line); None when
    the process stopped first. Anything else on its stdout is the libraries' chatter, skipped."""
    for line in process.stdout:
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                return record
    return None
