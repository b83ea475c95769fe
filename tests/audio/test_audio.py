import numpy as np
import pytest
import soundfile as sf
import torch
from support.recordings import synthetic_speechlike

from moss_cli.audio.constants import MIN_SAMPLES, N_MELS
from moss_cli.audio.features import load_audio, log_mel, to_model_rate
from moss_cli.errors import AudioError


def test_log_mel_is_unpadded_bf16():
    samples = synthetic_speechlike(3.21)
    mel = log_mel(samples)
    assert mel.dtype == torch.bfloat16
    assert mel.shape == (N_MELS, samples.size // 160)  # no padding to 30 s
    values = mel.float()
    assert values.max() - values.min() <= 2.0 + 1e-2  # clamped to max - 8 in log10, then / 4


def test_log_mel_matches_whisper_formula():
    import librosa

    samples = synthetic_speechlike(1.0, seed=3)
    spec = np.abs(librosa.stft(samples, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect")) ** 2
    filters = librosa.filters.mel(sr=16000, n_fft=400, n_mels=128, fmin=0, fmax=8000, htk=False, norm="slaney")
    expected = np.log10(np.maximum(filters @ spec[:, :-1], 1e-10))
    expected = (np.maximum(expected, expected.max() - 8.0) + 4.0) / 4.0
    assert np.allclose(log_mel(samples).float().numpy(), expected, atol=2e-2)  # bf16 resolution


@pytest.mark.parametrize("length", [MIN_SAMPLES, 401, 16_000 * 3 + 77, 16_000 * 130 + 5])
def test_log_mel_is_the_reference_extractor_s_to_the_last_bit(length):
    """The blocked FFT gives exactly what WhisperFeatureExtractor._np_extract_fbank_features (the
    official processor's call) does, for lengths across the FFT blocks' edges, before bf16."""
    from moss_cli.audio import features as audio

    rng = np.random.default_rng(length)
    samples = (synthetic_speechlike(length / 16_000 + 0.1, seed=length % 7)[:length]
               + 1e-3 * rng.standard_normal(length)).astype(np.float32)
    reference = reference_extractor()._np_extract_fbank_features(samples[None], device="cpu")[0]
    ours = audio._whisper_log_mel(samples)
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    assert np.array_equal(ours, reference)


def reference_extractor():
    from transformers import WhisperFeatureExtractor

    from moss_cli.audio.constants import HOP_LENGTH, N_FFT, SAMPLE_RATE

    return WhisperFeatureExtractor(feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT)


def test_window_and_mel_filters_are_transformers_to_the_bit():
    """features.py computes Whisper's window and filters without importing transformers."""
    from transformers.audio_utils import window_function

    from moss_cli.audio import features as audio
    from moss_cli.audio.constants import N_FFT

    assert np.array_equal(audio._hann_window(), window_function(N_FFT, "hann").astype(np.float64))
    expected = reference_extractor().mel_filters
    assert audio._mel_filters().dtype == expected.dtype and np.array_equal(audio._mel_filters(), expected)


def test_short_and_empty_audio_are_refused():
    with pytest.raises(AudioError, match="too short"):
        log_mel(np.zeros(MIN_SAMPLES - 1, dtype=np.float32))
    with pytest.raises(AudioError, match="too short"):
        log_mel(np.zeros(0, dtype=np.float32))


def test_load_audio_mixes_down_and_resamples(tmp_path):
    path = tmp_path / "stereo44k.wav"
    left = synthetic_speechlike(2.0, rate=44_100)
    sf.write(path, np.stack([left, left], axis=1), 44_100)
    samples = load_audio(path)
    assert samples.dtype == np.float32
    assert abs(samples.size - 32_000) <= 2


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"hello, not audio", "not an audio or video file")])
def test_bad_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "absent.wav")
    (tmp_path / "x.wav").mkdir()
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path / "x.wav")


def test_nan_samples_are_refused():
    with pytest.raises(AudioError, match="NaN"):
        to_model_rate(np.array([0.0, np.nan] * 500, dtype=np.float32), 16_000)
