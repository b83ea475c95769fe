"""A progress bar on stderr for work that takes more than a few seconds; silent otherwise."""

from __future__ import annotations

import sys
import time

SHOW_AFTER_SECONDS = 2.0  # short jobs finish before a bar would be worth drawing


class ProgressBar:
    """Audio seconds done out of the file's duration, with an ETA. Draws nothing unless stderr is a terminal."""

    def __init__(self, label: str, total_seconds: float, enabled: bool = True):
        self.label = label
        self.total = max(total_seconds, 1e-6)
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.done = 0.0
        self.steps = 0  # requests finished (chunks, windows)
        self._progress = None
        self._task = None

    def advance(self, seconds: float) -> None:
        self.done = min(self.total, self.done + seconds)
        self.steps += 1
        if not self.enabled:
            return
        if self._progress is None and time.monotonic() - self.started >= SHOW_AFTER_SECONDS:
            self._start()
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, steps=self.steps)

    def begin(self, label: str, total_seconds: float) -> None:
        """A next stage over the same file (finding speakers after transcribing): the bar starts over."""
        self.label, self.total, self.done, self.steps = label, max(total_seconds, 1e-6), 0.0, 0
        if self._progress is not None:
            self._progress.update(self._task, description=label, total=self.total, completed=0, steps=0)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio, {task.fields[steps]} chunks"),
            TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=self.total, completed=self.done, steps=self.steps)
