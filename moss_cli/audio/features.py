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
    extractor = _feature_extractor()
    padded = np.pad(samples, (N_FFT // 2, N_FFT // 2), mode="reflect").astype(np.float64)
    window = _hann_window()
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.empty((frames.shape[0], N_FFT // 2 + 1), dtype=np.complex64)
    for start in range(0, frames.shape[0], _FFT_BLOCK):
        spectrum[start : start + _FFT_BLOCK] = np.fft.rfft(frames[start : start + _FFT_BLOCK] * window, axis=-1)
    power = (np.abs(spectrum, dtype=np.float64) ** 2.0).T
    mel = np.maximum(1e-10, np.dot(extractor.mel_filters.T, power))
    log_spec = np.asarray(np.log10(mel), np.float32)[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


_FFT_BLOCK = 4096  # frames transformed at a time: 13 MB of float64 frames


@lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    from transformers.audio_utils import window_function

    return window_function(N_FFT, "hann").astype(np.float64)


def duration(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE


@lru_cache(maxsize=1)
def _feature_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT
    )
