"""How many requests run at once and how many wait: past both, a request is turned away at once
(HTTP 429 with Retry-After) rather than queued without end. Each request's work runs in a thread
of its own with a private folder for its upload, removed when the work ends, whatever ends it."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .work import Watch


class Busy(Exception):
    """Every running place and every waiting place is taken."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; try again in {retry_after} s")
        self.retry_after = retry_after


class Slots:
    """`max_concurrency` requests run at once, `max_queue` more wait; the rest are refused."""

    def __init__(self, max_concurrency: int = 1, max_queue: int = 8):
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("need at least one running place and no negative queue")
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self._running = threading.Semaphore(max_concurrency)
        self._lock = threading.Lock()
        self.admitted = 0  # running or waiting
        self._seconds = 5.0  # a running mean of how long a request holds its place, for Retry-After

    def admit(self) -> Ticket:
        with self._lock:
            if self.admitted >= self.max_concurrency + self.max_queue:
                raise Busy(self.retry_after())
            self.admitted += 1
        return Ticket(self)

    def take_place(self, watch: Watch) -> None:
        """Wait for a running place; a request abandoned while it waits never starts (Cancelled)."""
        while not self._running.acquire(timeout=0.1):
            watch.check()

    def give_place(self) -> None:
        self._running.release()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: one request's mean time per running place, at least 1."""
        return max(1, round(self._seconds * (1 + self.max_queue) / self.max_concurrency))

    def _left(self, seconds: float | None) -> None:
        with self._lock:
            self.admitted -= 1
            if seconds is not None:
                self._seconds = 0.8 * self._seconds + 0.2 * seconds


class Ticket:
    """One admitted request: its place in the queue, its private folder, its work's thread."""

    def __init__(self, slots: Slots):
        self.slots = slots
        self.watch = Watch()
        self.folder = Path(tempfile.mkdtemp(prefix="moss-serve-", dir=_root()))
        self._released = False
        self.started = False

    def start(self, work: Callable[[], object], done: Callable[[object, BaseException | None], None]) -> None:
        """Run `work()` in a thread once a running place is free; `done(result, error)` gets its outcome.
        The folder is removed and the place given back when the thread ends."""
        self.started = True
        threading.Thread(target=self._run, args=(work, done), name="moss-request", daemon=True).start()

    def _run(self, work, done) -> None:
        result, error, began = None, None, None
        try:
            self.slots.take_place(self.watch)
            began = time.monotonic()
            try:
                result = work()
            finally:
                self.slots.give_place()
        except BaseException as exc:  # handed to the request; a bug becomes a 500 there, never a dead thread
            error = exc
        finally:
            self.release(None if began is None else time.monotonic() - began)
        done(result, error)

    def release(self, seconds: float | None = None) -> None:
        """The folder removed and the place given back (once)."""
        if self._released:
            return
        self._released = True
        shutil.rmtree(self.folder, ignore_errors=True)
        self.slots._left(seconds)


_ROOT: list[Path] = []


def _root() -> Path:
    """This process's own folder for uploads (mode 700: other users cannot list or read them)."""
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="moss-uploads-")))
    return _ROOT[0]


def upload_root() -> Path:
    return _root()


def remove_root() -> None:
    if _ROOT:
        shutil.rmtree(_ROOT.pop(), ignore_errors=True)
