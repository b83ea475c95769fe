"""Bad and awkward inputs, made by the tests: every way a file can fail to be usable audio."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from support.fake_server import phrase_recording

RATE = 16_000


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    return phrase_recording(seconds, seed=seed, gaps=(0.5, 1.5))[0]


def resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    import librosa

    return librosa.resample(samples, orig_sr=RATE, target_sr=rate)


def encode_with_pyav(path: Path, samples: np.ndarray, codec: str, rate: int = 48_000, video: bool = False) -> Path:
    """Write audio (and optionally a few video frames) with FFmpeg's encoders through PyAV."""
    import av

    audio = resampled(samples, rate).astype(np.float32) if rate != RATE else samples.astype(np.float32)
    with av.open(str(path), "w") as container:
        if video:
            picture = container.add_stream("mpeg4", rate=Fraction(5, 1))
            picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
        stream = container.add_stream(codec, rate=rate) if codec else None
        if stream is not None:
            stream.layout = "mono"
            frame_size = stream.codec_context.frame_size or 1024
            for start in range(0, audio.size, frame_size):
                block = audio[start : start + frame_size]
                if block.size < frame_size:
                    block = np.pad(block, (0, frame_size - block.size))
                frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        if video:
            for i in range(5):
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
                for packet in picture.encode(frame):
                    container.mux(packet)
            for packet in picture.encode(None):
                container.mux(packet)
    return path


def build_corpus(root: Path) -> dict[str, list[Path]]:
    """Good files (processed) and bad ones (one error line each), in one tree."""
    good, bad = [], []

    def wav(rel: str, samples, rate=RATE, **kw) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, rate, **kw)
        return path

    good.append(wav("a/talk.wav", speech(12, 1), subtype="PCM_16"))
    good.append(wav("b/talk.wav", speech(9, 2), subtype="PCM_16"))  # same name, other folder
    good.append(wav("ü ber/ä ö talk.flac", speech(8, 3)))  # non-ASCII, spaces
    good.append(wav("short.wav", speech(0.2, 4)[:3200]))  # 0.2 s: processed
    good.append(wav("silence.wav", np.zeros(RATE * 5, np.float32)))  # processed, nothing said
    good.append(wav("eight.wav", np.tile(speech(6, 5)[:, None], (1, 8)) * 0.5))  # 8 channels: mixed down
    good.append(wav("low.wav", resampled(speech(6, 6), 8_000), 8_000))
    good.append(wav("high.wav", resampled(speech(4, 7), 192_000), 192_000, subtype="FLOAT"))

    (root / "empty.wav").write_bytes(b"")
    bad.append(root / "empty.wav")
    bad.append(wav("zero.wav", np.zeros(0, np.float32)))
    (root / "text.wav").write_text("this is not audio\n" * 50)
    bad.append(root / "text.wav")
    (root / "random.wav").write_bytes(np.random.default_rng(0).bytes(40_000))
    bad.append(root / "random.wav")
    nan = speech(3, 8)
    nan[1000] = np.nan
    nan[2000] = np.inf
    bad.append(wav("nan.wav", nan, subtype="FLOAT"))
    flac = wav("cut.flac", speech(20, 9))
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 3])  # truncated
    bad.append(flac)
    mp3 = encode_with_pyav(root / "cut.mp3", speech(20, 10), "libmp3lame", 44_100)
    data = mp3.read_bytes()
    mp3.write_bytes(data[:200])  # truncated to almost nothing
    bad.append(mp3)
    bad.append(encode_with_pyav(root / "video_only.mp4", np.zeros(0, np.float32), "", video=True))
    (root / "folder.wav").mkdir()  # a directory named like audio: searched, holds nothing
    if os.geteuid() != 0:  # root reads everything: unreadable files only exist for other users
        locked = wav("locked.wav", speech(3, 11))
        locked.chmod(0)
        bad.append(locked)
    return {"good": good, "bad": bad}
