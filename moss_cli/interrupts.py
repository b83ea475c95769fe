"""Ctrl-C and SIGTERM during a batch: the run stops at once, cleans up, and exits without waiting.

While a batch runs, SIGINT and SIGTERM raise `Interrupted` in the main thread, which only ever
waits on work done in other threads, so the signal is taken at once. The short step that renames
a finished output and its manifest into place is never cut in two: a signal there waits for it.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

_state = threading.local()
received: int | None = None  # the signal that ended the run, if one did
WAIT_SLICE = 0.1  # seconds: how late a signal taken by another thread may be handled (result_of)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted in the main thread (elsewhere signals cannot be caught).

    A signal the caller chose to ignore stays ignored (`moss ... &` from a script: SIGINT).
    """
    global received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = None
    taken = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, _on_signal) for s in taken}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving inside this block is raised when the block ends, not in the middle of it."""
    _state.deferring, _state.pending = True, None
    try:
        yield
    finally:
        _state.deferring = False
        if _state.pending is not None:
            raise Interrupted(_state.pending)


def in_background(function: Callable, *args):
    """Run `function(*args)` in a daemon thread and wait for its result, interruptibly: the main thread
    stays free to take a signal at once, and an abandoned call never holds up the exit."""
    return result_of(started(function, *args, name="moss-work"))


def result_of(future: Future):
    """`future.result()`, waited for in short slices.

    A signal sent to the process may be delivered to any thread that does not block it. Python runs
    its handler in the main thread, but only once that thread runs again: a lock wait without a
    timeout is cut short only by a signal delivered to the main thread itself, so with the signal
    taken by a worker thread (blocked in a socket read, say) Ctrl-C waited for the work to finish
    (seen in tests as a run still alive 20 s after SIGINT). A timed wait returns often enough.
    """
    while True:
        try:
            return future.result(timeout=WAIT_SLICE)
        except TimeoutError:
            if future.done():  # the work itself raised TimeoutError
                raise


def started(function: Callable, *args, name: str, stop: threading.Event | None = None) -> Future:
    """`function(*args)` running in a daemon thread; its result or exception arrives in the Future.

    `stop`: an event the function checks between short steps and gives up on; it is set when the
    interpreter exits with the work still running, and the exit waits for the function to give up
    (see _stop_background_work)."""
    future: Future = Future()
    if stop is not None:
        _stoppable[future] = stop

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed to the waiting thread, which reports it
                future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


_stoppable: weakref.WeakKeyDictionary[Future, threading.Event] = weakref.WeakKeyDictionary()
EXIT_WAIT = 10.0  # seconds the exit waits for stoppable work to give up (one short step, normally)


@atexit.register
def _stop_background_work() -> None:
    """A daemon thread still inside torch when the interpreter shuts down can abort the process
    ("terminate called without an active exception", exit status 134): seen when a run ended before
    the float32 output layer's screen was built (a recording without speech). Stoppable work is asked
    to stop, and waited for, before the shutdown goes on."""
    running = [(future, stop) for future, stop in list(_stoppable.items()) if not future.done()]
    for _, stop in running:
        stop.set()
    for future, _ in running:
        try:
            future.exception(timeout=EXIT_WAIT)
        except TimeoutError:
            pass


def exit_now(code: int) -> None:
    """After a signal: leave without waiting for threads still blocked on a server or a decoder."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _on_signal(signum: int, frame) -> None:
    global received
    received = signum
    if getattr(_state, "deferring", False):
        _state.pending = signum
        return
    raise Interrupted(signum)
