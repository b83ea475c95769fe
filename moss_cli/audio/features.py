"""Audio as the model takes it: whole files at 16 kHz mono float32, and the Whisper log-mel front end."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import AudioError
from .constants import HOP_LENGTH, MEL_DTYPE, MIN_SAMPLES, N_FFT, N_MELS, SAMPLE_RATE


def load_audio(path: str | Path) -> np.ndarray:
    """A whole file as 16 kHz mono float32: the exact samples the official front end gives the model.

    FFmpeg's decoding, channels averaged, torchaudio's sinc resampling (see sources.py).
    """
    from .sources import open_audio

    with open_audio(path) as source:
        return source.read()


def to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono samples to SAMPLE_RATE (the official sinc resampler) and check they are usable."""
    from .resample import resample

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"expected mono samples, got an array of shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples")
    if rate != SAMPLE_RATE and samples.size:
        samples = resample(samples, rate, SAMPLE_RATE)
    return samples


def log_mel(samples: np.ndarray):
    """Whisper log-mel (128 bins) without the 30 s padding: (N_MELS, len(samples) // HOP_LENGTH), bf16."""
    if samples.size < MIN_SAMPLES:
        raise AudioError(
            f"audio too short: {samples.size} samples ({samples.size / SAMPLE_RATE:.4f} s); "
            f"at least {MIN_SAMPLES} (one 10 ms mel frame) are needed"
        )
    features = _whisper_log_mel(samples)
    import torch  # not at the top: decoding audio for a server needs no torch

    return torch.from_numpy(np.ascontiguousarray(features)).to(getattr(torch, MEL_DTYPE))


def _whisper_log_mel(samples: np.ndarray) -> np.ndarray:
    """What the reference computes, `WhisperFeatureExtractor._np_extract_fbank_features`, to the last bit
    (tests/test_audio.py), with its frame-by-frame FFT loop (a Python loop over 100 frames a second,
    0.7 s for 5 minutes) done in blocks of frames. The rest is its own sequence of numpy operations:
    float64 frames, one-sided FFT stored as complex64, power, mel filters, log10, then Whisper's
    clamp and scaling."""
    padded = np.pad(samples, (N_FFT // 2, N_FFT // 2), mode="reflect").astype(np.float64)
    window = _hann_window()
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.empty((frames.shape[0], N_FFT // 2 + 1), dtype=np.complex64)
    for start in range(0, frames.shape[0], _FFT_BLOCK):
        spectrum[start : start + _FFT_BLOCK] = np.fft.rfft(frames[start : start + _FFT_BLOCK] * window, axis=-1)
    power = (np.abs(spectrum, dtype=np.float64) ** 2.0).T
    mel = np.maximum(1e-10, np.dot(_mel_filters().T, power))
    log_spec = np.asarray(np.log10(mel), np.float32)[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


_FFT_BLOCK = 4096  # frames transformed at a time: 13 MB of float64 frames


@lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    """The periodic Hann window transformers' window_function(N_FFT, "hann") gives (numpy's symmetric
    window one sample longer, its last sample dropped). Importing transformers.audio_utils costs over a
    second of a start; tests/audio/test_audio.py checks the numbers against it."""
    return np.hanning(N_FFT + 1)[:-1].astype(np.float64)


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) float64: WhisperFeatureExtractor's filters (Slaney mel scale and area
    norm, 0-8 kHz), the same numpy operations as transformers' mel_filter_bank."""
    mel_edges = np.linspace(_hertz_to_mel(0.0), _hertz_to_mel(8000.0), N_MELS + 2)
    edges = _mel_to_hertz(mel_edges)
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    widths = np.diff(edges)
    slopes = np.expand_dims(edges, 0) - np.expand_dims(fft_freqs, 1)
    down, up = -slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]
    filters = np.maximum(np.zeros(1), np.minimum(down, up)).astype(np.float64, copy=False)
    filters *= np.expand_dims(2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]), 0)  # Slaney: constant energy a band
    return filters


_MIN_LOG_HERTZ, _MIN_LOG_MEL = 1000.0, 15.0  # the Slaney scale: linear below 1 kHz, logarithmic above


def _hertz_to_mel(freq: float) -> float:
    if freq >= _MIN_LOG_HERTZ:
        return _MIN_LOG_MEL + np.log(freq / _MIN_LOG_HERTZ) * (27.0 / np.log(6.4))
    return 3.0 * freq / 200.0


def _mel_to_hertz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    log_region = mels >= _MIN_LOG_MEL
    freq[log_region] = _MIN_LOG_HERTZ * np.exp(np.log(6.4) / 27.0 * (mels[log_region] - _MIN_LOG_MEL))
    return freq


def duration(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE
