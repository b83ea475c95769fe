"""Write golden/official_audio.json: the official front end's 16 kHz samples of the test recordings.

Run with a Python that has torch 2.9.1, torchaudio 2.9.1 and torchcodec 0.9 (the official code's
pins) and FFmpeg's libraries, from the tests folder:  python golden/make_official_audio.py
"""

import json
import sys
import tempfile
from pathlib import Path

import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.official_audio import GOLDEN, MP3, RECORDINGS, digest, write_recording  # noqa: E402


def official_load_audio(path, sample_rate=16_000):
    """The calls of OpenMOSS src/audio_io.py load_audio."""
    waveform, rate = torchaudio.load(str(path))
    if waveform.size(0) > 1:
        waveform = waveform.mean(dim=0, keepdim=True)
    if rate != sample_rate:
        waveform = torchaudio.functional.resample(waveform, orig_freq=rate, new_freq=sample_rate)
    return waveform.squeeze(0).cpu().numpy()


def main() -> None:
    entries = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = [write_recording(Path(folder), name) for name in RECORDINGS] + [MP3]
        for path in paths:
            samples = official_load_audio(path)
            entries[path.name] = {"samples": int(samples.size), "sha256": digest(samples),
                                  "head": [float(v) for v in samples[:4]]}
    GOLDEN.write_text(json.dumps({"torchaudio": torchaudio.__version__, "recordings": entries}, indent=1) + "\n")


if __name__ == "__main__":
    main()
