"""What the CLI writes to the terminal: one-line errors with their exit codes, and a batch's
progress, warnings, failures and summary on stderr (the observer the batch reports to)."""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from rich.console import Console

from ..batch.observer import BatchObserver, RunSummary
from ..errors import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, MossError
from ..text import printable_name
from .progress import BatchProgress, ProgressBar

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def report(exc: BaseException) -> int:
    """One line on stderr for an error that ends the whole run; returns the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        stderr.print("moss: interrupted")
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):  # the reader went away (`moss ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if not isinstance(exc, MossError):  # a bug, not a bad input: say so, still in one line
        stderr.print(printable_name(f"moss: internal error: {type(exc).__name__}: {exc}"), markup=False)
        return EXIT_FAILED
    stderr.print(printable_name(f"moss: error: {exc}"), markup=False)
    return exc.exit_code


def say(text: str) -> None:
    """A log line on stderr ("moss: loading ..."), as it is."""
    stderr.print(f"moss: {text}", markup=False)


def readable_duration(seconds: float) -> str:
    """A duration as a person says it: "4.2 s", "47 s", "3 min 5 s", "2 h 14 min" (rounded to its
    largest unit's next one down: a summary, not a measurement)."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


class ConsoleObserver(BatchObserver):
    """A batch on the terminal: an overall bar and one per file (when stderr is a terminal),
    warnings and errors as `moss: ...` lines, and a summary for runs of several inputs."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._overall: BatchProgress | None = None

    @contextmanager
    def files(self, paths: list[Path]):
        with BatchProgress(paths, enabled=not self.quiet) as overall:
            self._overall = overall
            try:
                yield
            finally:
                self._overall = None

    def file(self, title: str, seconds: float) -> AbstractContextManager[ProgressBar]:
        overall = self._overall
        board = overall.board if overall is not None and overall.enabled else None  # one display holds both bars
        return ProgressBar(title, seconds, not self.quiet, board)

    def file_done(self, index: int) -> None:
        if self._overall is not None:
            self._overall.finished(index)

    def warning(self, text: str) -> None:
        if not self.quiet:
            stderr.print(f"moss: warning: {text}", markup=False)

    def failure(self, text: str) -> None:
        stderr.print(printable_name(f"moss: error: {text}"), markup=False)

    def interrupted(self) -> None:
        stderr.print("moss: interrupted; finished outputs are complete, re-run with --skip-existing for the rest")

    def finished(self, summary: RunSummary, n_inputs: int, seconds: float, notes: list[str]) -> None:
        if self.quiet:
            return
        if n_inputs > 1 or summary.skipped or summary.interrupted:
            stderr.print(f"moss: {summary.done} done, {summary.skipped} skipped, {len(summary.failures)} failed; "
                         f"{readable_duration(summary.audio_seconds)} of audio in {readable_duration(seconds)}")
        for note in notes:
            say(note)
