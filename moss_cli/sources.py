"""Audio files as seekable 16 kHz mono sources, decoded without holding a whole long file in memory.

A 16 kHz mono file libsndfile reads (WAV, FLAC, OGG, MP3) is read in place. Anything else is
converted once, block by block, into a temporary 16 kHz mono float WAV: libsndfile formats at
other rates or channel counts through soxr, and the rest (m4a/aac, opus, webm, mp4/mkv audio
tracks) through FFmpeg's libraries via PyAV.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import AudioError
from .files import not_regular

BLOCK_SECONDS = 60  # decoding and scanning granularity: memory per step, not per file


class AudioSource:
    """16 kHz mono float32 samples of one input, read by range."""

    def __init__(self, name: str, path: Path | None = None, samples: np.ndarray | None = None, temporary: bool = False):
        self.name = name
        self._path = path
        self._samples = samples
        self._temporary = temporary
        if samples is not None:
            self.n_samples = int(samples.size)
        else:
            import soundfile as sf

            self.n_samples = int(sf.info(os.fsencode(path)).frames)

    @classmethod
    def from_array(cls, name: str, samples: np.ndarray) -> AudioSource:
        return cls(name, samples=np.asarray(samples, dtype=np.float32))

    @property
    def duration(self) -> float:
        return self.n_samples / SAMPLE_RATE

    def read(self, start: int = 0, end: int | None = None) -> np.ndarray:
        end = self.n_samples if end is None else min(end, self.n_samples)
        if self._samples is not None:
            return self._samples[start:end]
        import soundfile as sf

        try:
            with sf.SoundFile(os.fsencode(self._path)) as file:
                file.seek(start)
                block = file.read(end - start, dtype="float32", always_2d=True)[:, 0]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{self.name}: decoding failed ({_first_line(exc)})") from None
        if block.size < end - start:
            raise AudioError(f"{self.name}: truncated or damaged: the audio stops at "
                             f"{(start + block.size) / SAMPLE_RATE:.1f} s of {self.duration:.1f} s")
        return _checked(block, self.name)

    def close(self) -> None:
        if self._temporary and self._path is not None:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_audio(path: str | Path, workdir: str | Path | None = None) -> AudioSource:
    """Open an input; raises AudioError naming the file and the reason."""
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    kind = not_regular(path)  # a FIFO would block the read below, /dev/zero never end
    if kind:
        raise AudioError(f"{path}: is {kind}, not an audio file")
    try:
        with open(path, "rb") as handle:
            if not handle.read(1):
                raise AudioError(f"{path}: empty file")
    except PermissionError:
        raise AudioError(f"{path}: permission denied") from None
    try:
        info = sf.info(os.fsencode(path))  # bytes: soundfile cannot encode undecodable names
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None
    if info is not None and info.frames == 0:
        raise AudioError(f"{path}: no audio (0 samples)")
    if info is not None and info.samplerate == SAMPLE_RATE and info.channels == 1:
        return AudioSource(str(path), path)
    target = Path(tempfile.mkstemp(prefix="moss-", suffix=".wav", dir=workdir)[1])
    try:
        if info is not None:
            _convert_sndfile(path, target)
        else:
            _convert_with_pyav(path, target)
        source = AudioSource(str(path), target, temporary=True)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if source.n_samples == 0:
        source.close()
        raise AudioError(f"{path}: no audio (0 samples)")
    return source


def _convert_sndfile(path: Path, target: Path) -> None:
    """Mix down and resample block by block (soxr keeps its filter state across blocks)."""
    import soundfile as sf
    import soxr

    try:
        with sf.SoundFile(os.fsencode(path)) as file, _writer(target) as out:
            resampler = soxr.ResampleStream(file.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            for block in file.blocks(blocksize=file.samplerate * BLOCK_SECONDS, dtype="float32", always_2d=True):
                mono = _checked(block.mean(axis=1), str(path))
                out.write(resampler.resample_chunk(mono, last=False))
            out.write(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: decoding failed ({_first_line(exc)})") from None


def _convert_with_pyav(path: Path, target: Path) -> None:
    try:
        import av
    except ImportError:
        raise AudioError(f"{path}: not a format libsndfile reads, and PyAV is not installed") from None
    try:
        with av.open(str(path)) as container, _writer(target) as out:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(f"{path}: no audio track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for piece in resampler.resample(frame):
                    out.write(_checked(piece.to_ndarray().reshape(-1), str(path)))
            for piece in resampler.resample(None):
                out.write(_checked(piece.to_ndarray().reshape(-1), str(path)))
    except AudioError:
        raise
    except av.error.InvalidDataError:
        raise AudioError(f"{path}: not an audio or video file") from None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"{path}: decoding failed ({_first_line(exc)})") from None


def _writer(target: Path):
    import soundfile as sf

    # RF64: a float WAV passes the 4 GB limit of plain WAV at about 17 hours.
    return sf.SoundFile(os.fsencode(target), "w", SAMPLE_RATE, 1, subtype="FLOAT", format="RF64")


def _checked(samples: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return samples.astype(np.float32, copy=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
