"""What a batch tells about itself as it runs: files starting and finishing, warnings, failures and
the summary. The batch never prints; the CLI implements an observer that draws and prints these.
This base observer reports nothing, so a batch run from Python is silent."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_FAILED, EXIT_OK
from ..progress import NoProgress, Progress
from ..text import path_text


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    failures: list[dict] = field(default_factory=list)  # the --errors file's records
    audio_seconds: float = 0.0
    interrupted: int | None = None  # the exit code an interruption asks for
    unreported: bool = False  # the --errors file could not be written

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return self.interrupted
        return EXIT_FAILED if self.failures or self.unreported else EXIT_OK

    def record(self, name: str, message: str, kind: str) -> None:
        self.failures.append({"input": name, "error": path_text(message), "kind": kind})


class BatchObserver:
    """Called by the batch as it goes; every method may be overridden, none is required."""

    def files(self, paths: list[Path]) -> AbstractContextManager:
        """The files about to be processed, in order: held while they are (an overall progress bar)."""
        return nullcontext()

    def file(self, title: str, seconds: float) -> AbstractContextManager[Progress]:
        """One file starts ("transcribing talk.wav", its length): its progress, held while it runs."""
        return nullcontext(NoProgress())

    def file_done(self, index: int) -> None:
        """The index-th of the files is through: done, skipped at its turn or failed."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not fail an input ("x.wav: 2 chunks without times")."""

    def failure(self, text: str) -> None:
        """An input failed (the other inputs go on), or a file the run writes at its end could not be."""

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM stopped the run; finished outputs are complete."""

    def finished(self, summary: RunSummary, n_inputs: int, seconds: float, notes: list[str]) -> None:
        """The run is over: its counts, and notes from the engine (requests per server)."""
