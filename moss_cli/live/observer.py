"""What a live run tells as it goes. The run never prints; the CLI's observer draws and prints these.
This base observer reports nothing, so a live run from Python is silent."""

from __future__ import annotations

from ..results import Result


class LiveObserver:
    def heard(self, result: Result, record: dict) -> None:
        """An utterance answered: its result at stream times; `record`: start, end (and clock) of it."""

    def gap(self, start: float, end: float, reason: str) -> None:
        """Stream seconds [start, end) that will not be transcribed, and why."""

    def status(self, state: str, backlog_seconds: float) -> None:
        """Where the run stands now (listening, speech, waiting for the model or the source)."""

    def warning(self, text: str) -> None:
        """Something the user should know (an utterance skipped, a model answer without times)."""
