"""A process and its descendants: their memory, sampled, and signals to all of them (from /proc)."""

from __future__ import annotations

import os
import threading


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now (from /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(current)
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident MB of `pid` and all its descendants (0 for processes already gone)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def signal_tree(pid: int, number: int) -> None:
    for member in process_tree(pid):
        try:
            os.kill(member, number)
        except ProcessLookupError:
            continue


class PeakSampler:
    """Samples a process tree's resident memory in a thread; `peak` since the last reset()."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def reset(self) -> None:
        self.peak = 0.0

    def stop(self) -> None:
        self._stop.set()
