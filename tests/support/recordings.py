"""Recordings the tests make: sound shaped like speech, without a voice."""

import numpy as np


def synthetic_speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Noise bursts shaped like syllables over a quiet floor: not speech, but not silence either."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t)) * (np.sin(2 * np.pi * 0.25 * t) > -0.5)
    tone = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
    return (0.3 * envelope * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
