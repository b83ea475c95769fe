"""How work reports how far it got: seconds of a recording's audio done. The pipeline advances a
Progress; the CLI draws one (cli/progress.py); NoProgress is for work nobody watches."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def advance(self, seconds: float) -> None: ...

    def begin(self, label: str, total_seconds: float) -> None: ...  # a next stage over the same file


class NoProgress:
    def advance(self, seconds: float) -> None:
        pass

    def begin(self, label: str, total_seconds: float) -> None:
        pass
