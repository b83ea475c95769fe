"""Silero VAD run on onnxruntime directly (no torch) finds exactly what silero-vad's own code finds."""

import numpy as np
import pytest
from support.fake_server import phrase_recording
from support.recordings import synthetic_speechlike

from moss_cli.audio import vad


@pytest.fixture(scope="module")
def recordings():
    speech, _ = phrase_recording(30.0, seed=3)
    noise = (np.random.default_rng(0).standard_normal(16_000 * 10) * 0.1).astype(np.float32)
    return {"speech": speech, "speech-like": synthetic_speechlike(10.0), "noise": noise,
            "one frame and a bit": speech[16_000 * 3 : 16_000 * 3 + 700]}


def test_onnx_detector_matches_silero_vad(recordings):
    torch = pytest.importorskip("torch")
    silero = pytest.importorskip("silero_vad")
    assert isinstance(vad._detector(), vad.SileroOnnx)  # the torch-free path is the one in use
    model = silero.load_silero_vad(onnx=True)
    for name, samples in recordings.items():
        expected = silero.get_speech_timestamps(torch.from_numpy(samples), model, sampling_rate=16_000,
                                                min_silence_duration_ms=vad.MIN_SILENCE_MS,
                                                speech_pad_ms=vad.SPEECH_PAD_MS)
        want = vad._merge([(r["start"], min(r["end"], samples.size)) for r in expected])
        assert vad.speech_regions_in(samples) == want, name
    assert vad.speech_regions_in(recordings["speech"])  # the comparison is not between two empty lists
