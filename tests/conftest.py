from __future__ import annotations

import signal
from pathlib import Path

import pytest
import soundfile as sf
from support.paths import FIXTURES
from support.recordings import synthetic_speechlike
from support.tiny_checkpoint import TinySpec, write_checkpoint

# A suite started as a background job of a script (`pytest &`, `nohup pytest &`) inherits SIGINT
# ignored, which moss rightly keeps ignored (interrupts.signals_interrupt), so the Ctrl-C tests would
# send a signal nobody takes. They test moss as a terminal runs it: Python's own handler here, and so
# the default disposition in the processes the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # No test may reach the network: hub look-ups must come from the cache or fail.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "moss-tiny", TinySpec())


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint):
    from moss_cli import MossAudio

    return MossAudio.load(str(tiny_checkpoint), device="cpu", batch_size=1)


@pytest.fixture
def wav_file(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, synthetic_speechlike(5.0), 16_000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not (FIXTURES / "moss-tiny-ref" / "golden.json").is_file():
        pytest.skip(f"conformance fixtures not found at {FIXTURES} (set MOSS_SHARED to the shared/ folder)")
    return FIXTURES
