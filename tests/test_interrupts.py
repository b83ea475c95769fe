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


# ---- the exit -----------------------------------------------------------------------------------
def test_a_refused_server_exits_cleanly_every_time(tmp_path):
    """The run ends with an error while speech scans (onnxruntime threads) still run, for the input at
    hand and the one opened ahead (mu-law: converted into the run folder, without torch, which would
    take seconds to import): the exit stops and waits for them.
    A scan left inside onnxruntime aborted the process ("terminate called ...", exit 134) 7 runs in 10."""
    import os
    import socket
    import subprocess
    import sys

    import soundfile as sf

    from tests.support.recordings import synthetic_speechlike

    sf.write(tmp_path / "a.wav", synthetic_speechlike(120.0), 16_000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", synthetic_speechlike(120.0, seed=1), 16_000, subtype="ULAW")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    with socket.socket() as held:  # bound, not listening: connections are refused at once
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/v1"
        for _ in range(20):
            result = subprocess.run([sys.executable, "-m", "moss_cli.cli", "transcribe", "a.wav", "b.wav",
                                     "--server", url], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=60)
            assert result.returncode == 2 and "terminate called" not in result.stderr, result.stderr
            assert "refused" in result.stderr and not list(temporary.glob("moss-*"))


def test_a_signal_that_ended_an_earlier_run_does_not_end_the_next_one_s_process(tmp_path):
    """A run in the same process (a test, an embedding program) after one that a signal ended: the
    later run's failure is reported with its exit code, and the process lives on (exit_now is for a
    run's own signal)."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    wav = tmp_path / "tone.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    script = (
        "import signal, sys\n"
        "from typer.testing import CliRunner\n"
        "from moss_cli import interrupts\n"
        "from moss_cli.cli import app\n"
        "interrupts.received = signal.SIGINT  # what an earlier run's Ctrl-C leaves behind\n"
        f"result = CliRunner().invoke(app, ['transcribe', {str(wav)!r}, '-m', {str(tmp_path / 'absent')!r}])\n"
        "print('alive', result.exit_code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["alive", "2"], done.stderr[-2000:]


def test_a_sigint_the_caller_ignores_stays_ignored_while_sigterm_is_taken():
    # `moss ... &` from a script starts with SIGINT ignored: a Ctrl-C meant for the foreground job
    # must not stop it, while a SIGTERM still ends it cleanly.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(Interrupted) as caught, signals_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)  # nothing happens
            signal.raise_signal(signal.SIGTERM)
            time.sleep(1)
        assert caught.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
