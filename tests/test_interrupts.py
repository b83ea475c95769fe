"""Signals while the main thread waits for work done in other threads."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from moss_cli import interrupts
from moss_cli.interrupts import Interrupted, in_background, signals_interrupt


def _signal_a_worker_thread(signum: int, after: float) -> None:
    """Deliver `signum` to a thread other than the main one, as the kernel may for a process-wide signal."""
    def send() -> None:
        time.sleep(after)
        signal.pthread_kill(threading.get_ident(), signum)

    threading.Thread(target=send, daemon=True).start()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_taken_by_another_thread_still_stops_the_wait_at_once(signum):
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted) as caught, signals_interrupt():
            _signal_a_worker_thread(signum, after=0.2)
            in_background(release.wait, 30)  # work that would hold the run for 30 s
    finally:
        release.set()
    assert caught.value.signum == signum and caught.value.exit_code == 128 + signum
    assert time.monotonic() - started < 0.2 + 10 * interrupts.WAIT_SLICE


def test_waiting_returns_results_and_raises_the_work_s_own_errors():
    assert in_background(sum, [1, 2]) == 3

    def times_out():
        raise TimeoutError("the server took too long")

    with pytest.raises(TimeoutError, match="took too long"):
        in_background(times_out)
