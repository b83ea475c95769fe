"""Known voices (`--voice Ann=ann.wav`): a short sample of each names the speaker who sounds like it.

Each sample becomes one voice vector; after clustering, each speaker's mean voice is paired with at
most one sample and each sample with at most one speaker, nearest pairs first (an optimal
assignment), and a pair counts only when the voices are close enough to be one person's. Speakers
no sample matches keep their numbers (S1, S2, ...).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..audio.sources import open_audio
from ..errors import AudioError, UsageError

# Cosine distance between a sample's vector and a speaker's mean voice up to which they are one
# voice: a sample of an absent voice names nobody. Samples of nine espeak-ng voices lay 0.04 to
# 0.07 from their own voice's mean in a conversation; real voices vary more, hence the margin.
# Voices of one synthesiser can lie closer than this (0.06 to 0.45 apart): the one-to-one
# pairing, nearest pairs first, is what tells them apart.
MAX_KNOWN_DISTANCE = 0.25
MIN_SAMPLE_SECONDS = 1.0  # less voice than this in a sample cannot be told from another


def known_voices(samples: tuple[tuple[str, str], ...], diarizer) -> dict[str, np.ndarray]:
    """name -> voice vector for each (name, file); a UsageError naming the file when one cannot be used."""
    return {name: _voice(name, path, diarizer) for name, path in samples}


@lru_cache(maxsize=32)
def _voice(name: str, path: str, diarizer) -> np.ndarray:
    """Cached: a batch checks the samples once before any work, then each file reuses them."""
    try:
        source = open_audio(Path(path))
    except AudioError as exc:
        raise UsageError(f"--voice {name}={path}: {_reason(exc, path)}") from None
    try:
        if source.duration < MIN_SAMPLE_SECONDS:
            raise UsageError(f"--voice {name}={path}: {source.duration:.1f} s of audio is too short for a voice "
                             f"sample (give {MIN_SAMPLE_SECONDS:g} s or more of that voice alone)")
        try:
            return diarizer.voice_of(source)
        except ValueError as exc:
            raise UsageError(f"--voice {name}={path}: {exc}") from None
    finally:
        source.close()


def _reason(exc: AudioError, path: str) -> str:
    """The audio error's reason without its own copy of the file name."""
    message = str(exc)
    return message[len(path) + 2:] if message.startswith(f"{path}: ") else message


def matched_names(voices: np.ndarray, known: dict[str, np.ndarray]) -> dict[int, str]:
    """Speaker number -> known name, for the speakers (rows of unit mean voices) a sample matches."""
    if not known or voices.size == 0:
        return {}
    from scipy.optimize import linear_sum_assignment

    names = list(known)
    distance = 1 - voices @ np.stack([known[name] for name in names]).T
    rows, cols = linear_sum_assignment(distance)
    return {int(r): names[c] for r, c in zip(rows, cols) if distance[r, c] <= MAX_KNOWN_DISTANCE}
