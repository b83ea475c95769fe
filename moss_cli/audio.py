"""Audio input: decoding to 16 kHz mono float32 and the Whisper log-mel front end."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16_000  # the encoder was trained on 16 kHz audio
N_FFT = 400  # 25 ms analysis window
HOP_LENGTH = 160  # 10 ms: 100 mel frames per second
N_MELS = 128
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
ENCODER_DOWNSAMPLE = 8  # three stride-2 convolutions
TOKENS_PER_SECOND = FRAMES_PER_SECOND / ENCODER_DOWNSAMPLE  # 12.5 audio tokens per second
MIN_SAMPLES = N_FFT  # below one analysis window there is no spectrum to compute
MEL_DTYPE = "bfloat16"  # the reference quantises the log-mel to bf16 before the encoder


def load_audio(path: str | Path) -> np.ndarray:
    """Decode a whole file to 16 kHz mono float32 samples in [-1, 1]."""
    from .sources import open_audio

    with open_audio(path) as source:
        return source.read()


def to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono samples to SAMPLE_RATE (soxr through librosa) and check they are usable."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"expected mono samples, got an array of shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples")
    if rate != SAMPLE_RATE and samples.size:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE).astype(np.float32)
    return samples


def log_mel(samples: np.ndarray) -> "torch.Tensor":
    """Whisper log-mel (128 bins) without the 30 s padding: (N_MELS, len(samples) // HOP_LENGTH), bf16."""
    if samples.size < MIN_SAMPLES:
        raise AudioError(
            f"audio too short: {samples.size / SAMPLE_RATE:.3f} s "
            f"(at least {MIN_SAMPLES / SAMPLE_RATE:.3f} s needed)"
        )
    # Whisper's own extractor, so the features match the reference to the last bit.
    features = _feature_extractor()._np_extract_fbank_features(samples[None, :], device="cpu")
    import torch  # here, not at the top: the remote engine reads audio without torch

    return torch.from_numpy(np.ascontiguousarray(features[0])).to(getattr(torch, MEL_DTYPE))


def duration(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE


@lru_cache(maxsize=1)
def _feature_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT
    )
