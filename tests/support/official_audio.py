"""Test recordings for the front-end fidelity tests, and the official samples they must give.

The WAVs are written from integer samples, so the same bytes come out on every machine. Their
official 16 kHz samples were computed once with the official front end (OpenMOSS `src/audio_io.py`:
torchaudio 2.9 `load` over TorchCodec, channels averaged, `functional.resample`) by
`golden/make_official_audio.py`, and are stored as SHA-256 digests in `golden/official_audio.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).parents[1]
GOLDEN = HERE / "golden" / "official_audio.json"
MP3 = HERE / "data" / "stereo44k.mp3"  # 6.3 s, 44.1 kHz stereo, made with ffmpeg's libmp3lame

# name: (rate, seconds, channels, subtype)
RECORDINGS = {
    "stereo44k.wav": (44_100, 3.1, 2, "PCM_16"),
    "mono48k.wav": (48_000, 2.2, 1, "PCM_24"),
    "mono8k.wav": (8_000, 4.05, 1, "PCM_16"),
    "mono22k.wav": (22_050, 1.3, 1, "PCM_16"),
    "long44k.wav": (44_100, 130.0, 1, "PCM_16"),  # resampled in several blocks
}


def integer_signal(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    """A clipped random walk plus noise, as int32 in the int16 range: audio-like and exact."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    walk = np.cumsum(rng.integers(-400, 401, size=(n, channels)), axis=0)
    noise = rng.integers(-1500, 1501, size=(n, channels))
    return np.clip(walk % 40_000 - 20_000 + noise, -32_000, 32_000).astype(np.int32)


def write_recording(folder: Path, name: str) -> Path:
    rate, seconds, channels, subtype = RECORDINGS[name]
    samples = integer_signal(rate, seconds, channels, seed=len(name))
    if subtype == "PCM_24":
        samples = samples << 16  # int32 full scale: libsndfile keeps the top 24 bits
    else:
        samples = samples.astype(np.int16)
    path = folder / name
    sf.write(path, samples, rate, subtype=subtype)
    return path


def digest(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))
