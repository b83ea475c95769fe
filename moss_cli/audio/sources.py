"""Audio files as seekable 16 kHz mono sources, decoded without holding a whole long file in memory.

The samples are the official front end's, bit for bit: FFmpeg's decoding (libsndfile where it
gives the same floats: PCM and FLAC), channels averaged, then torchaudio's sinc resampling
(`resample.py`). A 16 kHz mono PCM/FLAC file is read in place. Anything else is converted once,
block by block, into a temporary 16 kHz mono float WAV, so a long file never sits in memory whole.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import AudioError
from .constants import SAMPLE_RATE
from .handles import open_regular, pyav_open, sndfile_open
from .resample import Resampler, filter_bytes, mix_down

BLOCK_SECONDS = 60  # decoding and scanning granularity: memory per step, not per file
GATHER_SECONDS = 10  # decoded audio resampled at a time


class AudioSource:
    """16 kHz mono float32 samples of one input, read by range.

    `file`: an open libsndfile reader, kept for the source's life (a name re-opened per block could by
    then be a FIFO or another file); `temporary`: a converted file of ours, removed on close."""

    def __init__(self, name: str, file=None, samples: np.ndarray | None = None, temporary: Path | None = None):
        self.name = name
        self._file = file
        self._samples = samples
        self._temporary = temporary
        self._reading = threading.Lock()  # one seek-then-read at a time: the speech scan reads beside the model
        self.warnings: list[str] = []  # found while decoding (damage), for the run to report
        self.scan = None  # the scan of its speech, once one is started (vad.SpeechScan)
        self.n_samples = int(samples.size) if samples is not None else int(file.frames)

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
            with self._reading:
                self._file.seek(start)
                block = self._file.read(end - start, dtype="float32", always_2d=True)[:, 0]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{self.name}: decoding failed ({_first_line(exc)})") from None
        if block.size < end - start:
            raise AudioError(f"{self.name}: truncated or damaged: the audio stops at "
                             f"{(start + block.size) / SAMPLE_RATE:.1f} s of {self.duration:.1f} s")
        return _checked(block, self.name)

    def close(self) -> None:
        if self.scan is not None:
            self.scan.stop()
        if self._file is not None:
            with self._reading:
                self._file.close()
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Formats whose samples libsndfile decodes to the very floats FFmpeg gives (integer and float
# PCM, FLAC): read in place or converted from libsndfile. Everything else, lossy codecs included
# (MP3, Vorbis, Opus, AAC), goes through FFmpeg's own decoders, as the official front end
# (torchaudio over TorchCodec) decodes it, so the samples are the official ones.
EXACT_CONTAINERS = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "AU", "CAF", "FLAC"}
EXACT_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
# Lossy formats are left to FFmpeg without asking libsndfile first (its MP3 decoder prints
# warnings of its own on stderr).
FFMPEG_SUFFIXES = {".mp3", ".mp2", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv", ".wma"}
# Decoded audio this much shorter than its header claims is reported as damaged.
DAMAGE_TOLERANCE_SECONDS = 0.5


def open_audio(path: str | Path, workdir: str | Path | None = None) -> AudioSource:
    """Open an input; raises AudioError naming the file and the reason. The file is opened once and
    every reader reads that descriptor (handles.py)."""
    path = Path(path)
    with open_regular(path) as handle:
        info = None if path.suffix.lower() in FFMPEG_SUFFIXES else sndfile_open(handle)
        try:
            if info is not None and info.frames == 0:
                raise AudioError(f"{path}: no audio (0 samples)")
            exact = info is not None and info.format in EXACT_CONTAINERS and info.subtype in EXACT_SUBTYPES
            if exact:
                _check_rate(path, info.samplerate)
            if exact and info.samplerate == SAMPLE_RATE and info.channels == 1:
                warnings = _damage(info.frames / info.samplerate, _sndfile_claimed_seconds(info))
                source, info = AudioSource(str(path), info), None  # the source reads it from now on
                source.warnings = warnings
                return source
            return _converted(path, workdir, _sndfile_blocks(path, info) if exact else _pyav_blocks(path, handle))
        finally:
            if info is not None:
                info.close()


def _converted(path: Path, workdir, blocks) -> AudioSource:
    """The input decoded into a temporary 16 kHz mono float WAV of ours, read from there."""
    import soundfile as sf

    target = Path(tempfile.mkstemp(prefix="moss-", suffix=".wav", dir=workdir)[1])
    try:
        warnings = _convert(path, target, blocks)
        source = AudioSource(str(path), sf.SoundFile(os.fsencode(target)), temporary=target)
        source.warnings = warnings
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if source.n_samples == 0:
        source.close()
        raise AudioError(f"{path}: no audio (0 samples)")
    return source


def header_seconds(path: Path) -> float:
    """How long a file's header says it is, read without decoding (libsndfile, else the container's
    duration through PyAV); 0.0 when it cannot tell. For estimates (the overall progress bar) only."""
    try:
        handle = open_regular(path)
    except AudioError:
        return 0.0
    with handle:
        info = sndfile_open(handle)
        if info is not None:
            with info:
                return info.frames / info.samplerate if info.samplerate > 0 else 0.0
        try:
            with pyav_open(handle) as container:
                stream = next((s for s in container.streams if s.type == "audio"), None)
                return (_claimed_seconds(container, stream) or 0.0) if stream is not None else 0.0
        except Exception:  # anything unreadable (PyAV missing too): the file fails later with its own message
            return 0.0


# Sample rates outside this range are refused: no audio format in use goes below 8 kHz (telephone) or
# above 768 kHz (the highest DXD/PCM rate), while a damaged or hostile header's 1 Hz would turn 64 KB
# into 8.9 hours at 16 kHz (gigabytes of converted audio, hours of work).
# With 1000 Hz at least, converted audio is at most 16 times its input. The resampling filter's size
# depends on how the rate divides 16 kHz, not on its size: a rate whose filter passes this is refused.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
MAX_FILTER_BYTES = 256 << 20


def _check_rate(path: Path, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: sample rate {rate} Hz is outside what moss reads "
                         f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz): a damaged header?")
    if filter_bytes(rate, SAMPLE_RATE) > MAX_FILTER_BYTES:
        raise AudioError(f"{path}: sample rate {rate} Hz would need a {filter_bytes(rate, SAMPLE_RATE) >> 20} MB "
                         "resampling filter to reach 16 kHz; convert it to a common rate first")


def _convert(path: Path, target: Path, blocks) -> list[str]:
    """Mix down and resample the decoder's blocks into `target`; returns warnings (damage found).

    `blocks` yields (rate, (frames, channels) float32 block) and finally (None, claimed seconds).
    Small blocks (an MP3 frame is 1152 samples) are gathered into GATHER_SECONDS first: the
    resampler's per-call work does not pay for a few milliseconds of audio.
    """
    warnings: list[str] = []
    rate, resampler, gathered, decoded, flushed = None, None, [], 0, 0

    def flush() -> None:
        nonlocal flushed
        if gathered:
            mono = _checked(mix_down(np.concatenate(gathered)), str(path))
            out.write(resampler.push(mono) if resampler else mono)
            gathered.clear()
            flushed = decoded

    with _writer(target) as out:
        for block_rate, block in blocks:
            if block_rate is None:  # the decoder's last word: how long the file says it is
                warnings += _damage(decoded / rate if rate else 0.0, block)
                break
            if rate is None:
                _check_rate(path, block_rate)
                rate = block_rate
                resampler = Resampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
            if block_rate != rate:
                raise AudioError(f"{path}: the sample rate changes within the file ({rate} Hz, then {block_rate} Hz)")
            gathered.append(block)
            decoded += block.shape[0]
            if decoded - flushed >= rate * GATHER_SECONDS:
                flush()
        flush()
        if resampler is not None:
            out.write(resampler.finish())
    return warnings


def _damage(readable: float, claimed: float | None) -> list[str]:
    if claimed is not None and readable < claimed - DAMAGE_TOLERANCE_SECONDS:
        return [f"damaged: {readable:.1f} s of {claimed:.1f} s readable"]
    return []


def _sndfile_claimed_seconds(info) -> float:
    """The length the header claims: libsndfile trims a truncated WAV's length silently, but logs
    the data chunk's declared size ("data : 160000 (should be 79978)")."""
    declared = re.search(r"^data\s*:\s*(\d+)\s*\(should be \d+\)", info.extra_info, re.MULTILINE)
    align = re.search(r"Block Align\s*:\s*(\d+)", info.extra_info)
    if declared and align and int(align.group(1)) > 0:
        return int(declared.group(1)) / int(align.group(1)) / info.samplerate
    return info.frames / info.samplerate


def _sndfile_blocks(path: Path, file):
    """Native-rate blocks from libsndfile; a short read is the end of the audio, never stale data."""
    import soundfile as sf

    try:
        file.seek(0)
        while True:
            block = file.read(file.samplerate * BLOCK_SECONDS, dtype="float32", always_2d=True)
            if not len(block):
                break
            yield file.samplerate, block
        yield None, _sndfile_claimed_seconds(file)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: decoding failed ({_first_line(exc)})") from None


def _pyav_blocks(path: Path, handle):
    """Native-rate float blocks from FFmpeg's decoders (PyAV); damage after some audio is a warning."""
    try:
        import av
    except ImportError:
        raise AudioError(f"{path}: not a format libsndfile reads exactly, and PyAV is not installed") from None
    try:
        container = pyav_open(handle)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        if isinstance(exc, av.error.InvalidDataError):
            raise AudioError(f"{path}: not an audio or video file") from None
        raise AudioError(f"{path}: decoding failed ({_first_line(exc)})") from None
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioError(f"{path}: no audio track")
        to_float = av.AudioResampler(format="fltp")  # sample format only: same rate and channels
        decoded_any = False
        try:
            for frame in container.decode(stream):
                for piece in to_float.resample(frame):
                    decoded_any = True
                    yield piece.sample_rate, piece.to_ndarray().T
        except (av.error.FFmpegError, ValueError) as exc:
            if not decoded_any:
                raise AudioError(f"{path}: decoding failed ({_first_line(exc)})") from None
        yield None, _claimed_seconds(container, stream)


def _claimed_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


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
