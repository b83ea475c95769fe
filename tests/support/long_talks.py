"""Recordings of ten minutes and more for the speaker tests: one voice reading, or two or three in turn.

Unlike `conversations.py`, every paragraph is spoken with its own pitch and speed and passes through
its own channel (band limits, level, a little noise), as a talker who moves and tires: one voice
then varies more than espeak-ng's fixed rendering, which is what splits a monologue in two. The
recordings are made once per machine and kept in the temporary folder (about 20 MB each).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .conversations import RATE, SENTENCES, Conversation, Turn, require_espeak

CACHE = Path(tempfile.gettempdir()) / "moss-test-long-talks"
VERSION = 2  # bump when the recipe below changes: cached files of an older recipe are not reused


def long_talk(voices: tuple[str, ...], minutes: float, seed: int) -> Conversation:
    """Paragraphs of one to four sentences; the voice changes at every paragraph when there are several."""
    key = hashlib.sha1(repr((VERSION, voices, minutes, seed)).encode()).hexdigest()[:16]
    cached = CACHE / f"{key}.npz"
    if cached.exists():
        saved = np.load(cached)
        return Conversation(saved["samples"], tuple(Turn(float(a), float(b), int(v), "") for a, b, v in saved["turns"]))
    conv = _made(voices, minutes, seed)
    CACHE.mkdir(exist_ok=True)
    partial = cached.with_suffix(f".{seed}.tmp.npz")  # another test process may make the same file
    np.savez(partial, samples=conv.samples, turns=np.array([(t.start, t.end, t.voice) for t in conv.turns]))
    partial.replace(cached)
    return conv


def _made(voices: tuple[str, ...], minutes: float, seed: int) -> Conversation:
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    pieces, turns, position, voice = [np.zeros(RATE // 2, np.float32)], [], RATE // 2, 0
    while position < minutes * 60 * RATE:
        if turns and len(voices) > 1:
            voice = (voice + 1 + int(rng.integers(len(voices) - 1))) % len(voices)
        text = " ".join(SENTENCES[int(i)] for i in rng.integers(len(SENTENCES), size=int(rng.integers(1, 5))))
        audio = _spoken(text, voices[voice], pitch=int(rng.uniform(25, 75)), words_per_minute=int(rng.uniform(130, 210)))
        band = butter(2, [rng.uniform(60, 300), rng.uniform(3500, 7900)], "bandpass", fs=RATE, output="sos")
        audio = sosfilt(band, audio) * rng.uniform(0.2, 1.0) + rng.uniform(0, 0.005) * rng.standard_normal(audio.size)
        gap = int(rng.uniform(0.3, 1.0) * RATE)
        turns.append(Turn(position / RATE, (position + audio.size) / RATE, voice, text))
        pieces += [audio.astype(np.float32), np.zeros(gap, np.float32)]
        position += audio.size + gap
    return Conversation(np.concatenate(pieces), tuple(turns))


def _spoken(text: str, voice: str, pitch: int, words_per_minute: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    wav = subprocess.run([require_espeak(), "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "--stdout", text],
                         capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    # scipy's polyphase filter: a tenth of the time of moss's own resampler, which builds its
    # kernel on each call (about a thousand calls per set of recordings)
    samples = resample_poly(samples, RATE // gcd(RATE, rate), rate // gcd(RATE, rate)).astype(np.float32)
    loud = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[loud[0] : loud[-1] + 1]
