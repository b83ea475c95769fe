from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tiny_checkpoint import TinySpec, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
# The project's shared fixtures sit beside the checkout (read-only); override with MOSS_SHARED.
SHARED = Path(os.environ.get("MOSS_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


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


def synthetic_speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Noise bursts shaped like syllables over a quiet floor: not speech, but not silence either."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t)) * (np.sin(2 * np.pi * 0.25 * t) > -0.5)
    tone = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
    return (0.3 * envelope * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


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
