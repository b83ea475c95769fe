"""Progress bars on stderr for work that takes more than a few seconds; silent otherwise.

One rich display holds every bar of a run: the overall one of a batch (files, hours of audio, ETA)
and the current file's (seconds of audio, chunks). Bars draw only when stderr is a terminal, or
when MOSS_PROGRESS=1 asks for them anyway (a log that keeps them, the tests).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SHOW_AFTER_SECONDS = 2.0  # short jobs finish before a bar would be worth drawing
FORCE_ENV = "MOSS_PROGRESS"  # "1": draw bars even when stderr is not a terminal


def bars_wanted(enabled: bool) -> bool:
    return enabled and (os.environ.get(FORCE_ENV) == "1" or sys.stderr.isatty())


def clock(seconds: float) -> str:
    """Audio lengths in bars: H:MM:SS."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Board:
    """The run's one rich display (rich allows one live display at a time), started when a bar first draws."""

    def __init__(self, on_start: Callable[[], None] | None = None):
        self._progress = None
        self._lock = threading.RLock()
        self._on_start = on_start  # the overall bar puts itself first, whichever bar draws first

    def add(self, label: str, total: float | None, completed: float, detail: str) -> int:
        with self._lock:
            if self._progress is None:
                self._progress = self._start()
                if self._on_start is not None:
                    self._on_start()
            return self._progress.add_task(label, total=total, completed=completed, detail=detail)

    def update(self, task: int, **fields) -> None:
        with self._lock:  # the durations thread may draw while the main thread closes the board
            if self._progress is not None:
                self._progress.update(task, **fields)

    def remove(self, task: int) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.remove_task(task)

    def close(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.refresh()  # the last state drawn, for a log kept with MOSS_PROGRESS=1
                self._progress.stop()
                self._progress = None

    @staticmethod
    def _start():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        forced = os.environ.get(FORCE_ENV) == "1"
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"), TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=forced or None), transient=True,
        )
        progress.start()
        return progress


class ProgressBar:
    """Audio seconds done out of one file's duration, with an ETA; on the batch's board when there is one."""

    def __init__(self, label: str, total_seconds: float, enabled: bool = True, board: Board | None = None):
        self.label = label
        self.total = max(total_seconds, 1e-6)
        self.enabled = bars_wanted(enabled)
        self.started = time.monotonic()
        self.done = 0.0
        self.steps = 0  # requests finished (chunks, windows)
        self._own = board is None
        self._board = board or Board()
        self._task: int | None = None

    def advance(self, seconds: float) -> None:
        self.done = min(self.total, self.done + seconds)
        self.steps += 1
        if not self.enabled:
            return
        if self._task is None and time.monotonic() - self.started >= SHOW_AFTER_SECONDS:
            self._task = self._board.add(self.label, self.total, self.done, self._detail())
        if self._task is not None:
            self._board.update(self._task, completed=self.done, detail=self._detail())

    def begin(self, label: str, total_seconds: float) -> None:
        """A next stage over the same file (finding speakers after transcribing): the bar starts over."""
        self.label, self.total, self.done, self.steps = label, max(total_seconds, 1e-6), 0.0, 0
        if self._task is not None:
            self._board.update(self._task, description=label, total=self.total, completed=0, detail=self._detail())

    def close(self) -> None:
        if self._task is not None and not self._own:
            self._board.remove(self._task)  # the batch's board goes on with the next file
        self._task = None
        if self._own:
            self._board.close()

    def _detail(self) -> str:
        return f"{self.done:.0f}/{self.total:.0f} s of audio, {self.steps} chunks"

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BatchProgress:
    """The overall bar of a batch: files done of all, hours of audio done of all, and an ETA by audio.

    The total audio comes from the files' headers (never decoded), read in a background thread so
    that a batch of 10,000 files starts on the first at once; until all are read, the total shows as
    unknown and the bar has no ETA.
    """

    def __init__(self, paths: Sequence[Path], enabled: bool = True, probe: Callable[[Path], float] | None = None):
        self.paths = list(paths)
        self.enabled = bars_wanted(enabled) and len(self.paths) > 1
        self.board = Board(on_start=self._draw)
        self.files_done, self.seconds_done = 0, 0.0
        self.total_seconds: float | None = None  # known once every header is read
        self._seconds: dict[int, float] = {}  # by index in paths
        self._probe = probe or _header_seconds
        self._started = time.monotonic()
        self._task: int | None = None
        self._stop = threading.Event()
        if self.enabled:
            threading.Thread(target=self._measure, name="moss-durations", daemon=True).start()

    def finished(self, index: int) -> None:
        """The index-th file is through (done or failed): its audio counts as done."""
        self.files_done += 1
        if not self.enabled:
            return  # nothing reads the counts: no header is opened again
        self.seconds_done += self._length(index)
        if (self._task is not None or time.monotonic() - self._started >= SHOW_AFTER_SECONDS):
            self._draw()

    def close(self) -> None:
        self._stop.set()
        self.board.close()

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _measure(self) -> None:
        total = 0.0
        for index in range(len(self.paths)):
            if self._stop.is_set():
                return
            total += self._length(index)
        self.total_seconds = total
        if self._task is not None:
            self._draw()

    def _length(self, index: int) -> float:
        if index not in self._seconds:  # a dict item assignment is atomic: at worst a header is read twice
            self._seconds[index] = self._probe(self.paths[index])
        return self._seconds[index]

    def _draw(self) -> None:
        total = self.total_seconds
        detail = (f"{self.files_done}/{len(self.paths)} files, {clock(self.seconds_done)}/"
                  f"{clock(total) if total is not None else '?'} of audio")
        fields = {"total": max(total, 1e-6) if total is not None else None, "completed": self.seconds_done,
                  "detail": detail}
        if self._task is None:
            self._task = -1  # being added: the board's on_start calls back here
            self._task = self.board.add("all files", fields.pop("total"), fields.pop("completed"), detail)
        elif self._task >= 0:
            self.board.update(self._task, **fields)


def _header_seconds(path: Path) -> float:
    from ..audio.sources import header_seconds

    return header_seconds(path)
