"""The engine a command runs on: its options checked, then loaded (or connected) once, when first needed.

Which backend, and how it opens, is the factory's business (engine/factory.py); here is only what the
terminal sees: the lines announcing a local model, and errors turned into messages and exit codes.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future
from dataclasses import replace

from ..engine.factory import EngineSpec, check_available, check_server, loads_weights, open_engine, validated
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from .console import report, say


def run_check(spec: EngineSpec, compute: bool = False) -> int:
    try:
        spec = validated(spec)
        if len(spec.servers) != 1:
            raise UsageError("check-server: give one server URL")
        check = check_server(replace(spec, retries=1), compute)  # a check asks once: a failing server is the answer
    except (Exception, KeyboardInterrupt) as exc:
        code = report(exc)
        # a server that fails the question cannot be checked: that is not a mismatch (1)
        return EXIT_USAGE if code == EXIT_FAILED else code
    sys.stdout.write("\n".join(check.lines) + "\n")
    return EXIT_OK if check.matches else EXIT_FAILED


def use_threads(threads: int | None) -> None:
    """--threads: torch's CPU thread count, set once for the whole run (nothing in moss changes it)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


class LazyEngine:
    """Loads the model (or connects to the server) when the first file needs it, once."""

    def __init__(self, spec: EngineSpec, quiet: bool):
        self.spec = spec
        self.quiet = quiet
        self._engine = None
        self._loading: Future | None = None  # the model loading in the background (start())

    def get(self):
        if self._engine is None:
            from ..interrupts import result_of

            self._engine = result_of(self._loading) if self._loading else self._open()
        return self._engine

    def check(self) -> None:
        """A local checkpoint that is missing is reported now, before any audio is decoded or scanned
        (found without importing torch: the model's imports wait for start())."""
        check_available(self.spec)

    def start(self) -> None:
        """Load the local model in the background (seconds of imports and weights) while the first
        input is decoded and its speech found; get() waits for it and raises what loading raised."""
        if not loads_weights(self.spec) or self._loading is not None or self._engine is not None:
            return
        from ..interrupts import started

        self._loading = started(self._open, name="moss-load")  # get() raises what loading raised

    def notes(self) -> list[str]:
        """For the run summary: how many requests each of several servers answered."""
        counts = self._engine.counts() if self._engine is not None else None
        return [counts] if counts else []

    def close(self) -> None:
        """Free what an opened engine holds; a model still loading is left to finish (it cannot be cut short)."""
        if self._engine is not None:
            self._engine.close()

    def _open(self):
        announce = loads_weights(self.spec) and not self.quiet
        if announce:
            from ..text import printable_name

            say(f"loading {printable_name(self.spec.model)}")
        engine = open_engine(self.spec)
        if announce and engine.where is not None:
            say(f"model on {engine.where}")
        return engine
