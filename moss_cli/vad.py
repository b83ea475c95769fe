"""Voice activity: where speech is, in samples. Silero VAD (ONNX), else its TorchScript twin, else energy."""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from .audio import SAMPLE_RATE

log = logging.getLogger(__name__)
SPEECH_PAD_MS = 200  # keep a little air around each region so no onset or tail is clipped
MIN_SILENCE_MS = 300  # gaps shorter than this are pauses inside speech, not places to cut
ENERGY_FRAME = 480  # 30 ms frames for the fallback detector


SILENCE_FLOOR = 1e-4  # -80 dBFS: a block quieter than this is digital silence, not worth a VAD pass


BLOCK_SECONDS = 60
OVERLAP_SECONDS = 5  # each block is scanned with this much context on both sides


def speech_regions(source) -> list[tuple[int, int]]:
    """Speech in an AudioSource, scanned in overlapping blocks so memory stays bounded.

    The overlap lets speech that straddles a block border be seen whole from one side.
    """
    regions: list[tuple[int, int]] = []
    size, overlap = BLOCK_SECONDS * SAMPLE_RATE, OVERLAP_SECONDS * SAMPLE_RATE
    for start in range(0, source.n_samples, size):
        first = max(0, start - overlap)
        block = source.read(first, start + size + overlap)
        if block.size and np.abs(block).max() >= SILENCE_FLOOR:
            regions += [(first + a, first + b) for a, b in speech_regions_in(block)]
    return _merge(regions, MIN_SILENCE_MS * SAMPLE_RATE // 1000)


def speech_regions_in(samples: np.ndarray) -> list[tuple[int, int]]:
    """Sorted, non-overlapping [start, end) sample ranges that contain speech."""
    if samples.size == 0:
        return []
    detector = _silero()
    if detector is None:
        return energy_regions(samples)
    import torch
    from silero_vad import get_speech_timestamps

    found = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), detector,
        sampling_rate=SAMPLE_RATE, min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=SPEECH_PAD_MS,
    )
    return _merge([(int(r["start"]), min(int(r["end"]), samples.size)) for r in found])


@lru_cache(maxsize=1)
def _silero():
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        log.warning("silero-vad is not installed: finding speech by energy instead")
        return None
    try:
        return load_silero_vad(onnx=True)
    except Exception:  # onnxruntime missing or broken: the TorchScript model needs only torch
        return load_silero_vad(onnx=False)


def energy_regions(samples: np.ndarray, threshold_db: float = -40.0) -> list[tuple[int, int]]:
    """Frames within `threshold_db` of the loudest frame count as speech. A fallback, not a VAD."""
    n = samples.size // ENERGY_FRAME
    if n == 0:
        return []
    frames = samples[: n * ENERGY_FRAME].reshape(n, ENERGY_FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10
    level = 20 * np.log10(rms / rms.max())
    active = (level > threshold_db) & (rms > 1e-4)
    pad = SPEECH_PAD_MS * SAMPLE_RATE // 1000
    regions = []
    for i in np.flatnonzero(active):
        start, end = i * ENERGY_FRAME, (i + 1) * ENERGY_FRAME
        regions.append((max(0, start - pad), min(samples.size, end + pad)))
    gap = MIN_SILENCE_MS * SAMPLE_RATE // 1000
    return _merge(regions, gap)


def _merge(regions: list[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
