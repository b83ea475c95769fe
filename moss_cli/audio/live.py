"""Live inputs as 16 kHz mono float32 blocks, as they arrive: a microphone, a stream on stdin, a URL,
a file still being written.

Each source is read by `blocks()`, a generator the live run drives from a thread of its own (a read
may block for as long as the source stalls). Containers and codecs are FFmpeg's (PyAV), told by the
stream's first bytes; bare PCM needs its rate and channel count; the microphone is PortAudio's, through
the optional `sounddevice` package. Resampling is the file path's (`resample.Resampler`), so a live
utterance holds the very samples a file run over the same audio reads.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError, UsageError
from .constants import SAMPLE_RATE
from .resample import Resampler, mix_down

BLOCK_SECONDS = 0.1  # bare PCM and the microphone come in blocks this long: latency, not throughput
POLL_SECONDS = 0.1  # how often a followed file is looked at again once its end is reached
SIGNATURE_BYTES = 12
INSTALL_LIVE = "pip install 'moss-cli[live]'"


def container_of(head: bytes) -> str | None:
    """The container a stream's first bytes announce (WAV, OGG, MP3, FLAC, AAC in ADTS, WebM/Matroska),
    or None: bare PCM."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: what browsers and OBS record
        return "matroska"
    if head.startswith(b"ID3"):
        return "mp3"
    if _mpeg_audio_frame(head):
        return "mp3"
    if _adts_frame(head):
        return "aac"
    return None


# A frame sync is eleven or twelve 1 bits: bare PCM starting with the sample -1 (bytes FF FF) has them too,
# so the header's other fields must hold values a real frame has before a stream is taken for MP3 or AAC.
def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: sync, a version that exists, layer III or II (layer I, long out of
    use, is what the bytes FF FF of the PCM sample -1 say), a bitrate other than "free" or "bad", a
    sample rate that exists."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0x3, (head[1] >> 1) & 0x3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    return version != 0b01 and layer in (0b01, 0b10) and bitrate not in (0, 15) and rate != 0b11


def _adts_frame(head: bytes) -> bool:
    """An ADTS (AAC) frame header: twelve sync bits, layer 00, a sample rate that exists, a frame
    at least as long as its header."""
    if len(head) < 7 or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return False
    rate = (head[2] >> 2) & 0xF
    length = ((head[3] & 0x3) << 11) | (head[4] << 3) | (head[5] >> 5)
    header = 7 if head[1] & 0x1 else 9  # protection absent: no CRC
    return rate <= 12 and length >= header


@dataclass(frozen=True)
class PcmFormat:
    """Bare 16-bit little-endian PCM: what --rate and --channels say it is."""

    rate: int = SAMPLE_RATE
    channels: int = 1

    def __post_init__(self):
        if not 1000 <= self.rate <= 768_000:
            raise UsageError(f"--rate {self.rate}: give the stream's sample rate in Hz (1000 to 768000)")
        if not 1 <= self.channels <= 64:
            raise UsageError(f"--channels {self.channels}: give the stream's channel count (1 to 64)")


class LiveSource:
    """A live input: `blocks()` yields 16 kHz mono float32 arrays until the input ends (or `stop()`)."""

    realtime = True  # audio arrives no faster than it plays (a file followed, stdin: as fast as it is written)

    def __init__(self, name: str):
        self.name = name
        self.stopping = threading.Event()

    def blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask `blocks()` to end at its next chance (a blocked read of a pipe may still wait for data)."""
        self.stopping.set()


class ByteStreamSource(LiveSource):
    """Bytes that arrive over time (stdin, a followed file): a container told by its signature and
    decoded by FFmpeg, else bare PCM as `pcm` says."""

    def __init__(self, name: str, reader, pcm: PcmFormat):
        super().__init__(name)
        self.reader, self.pcm = reader, pcm

    def blocks(self) -> Iterator[np.ndarray]:
        head = _read_exactly(self.reader, SIGNATURE_BYTES)
        container = container_of(head)
        stream = _Prefixed(head, self.reader)
        if container is None:
            return _pcm_blocks(stream, self.pcm, self.name, self.stopping)
        return _decoded(_open_container(stream, container, self.name), self.name, self.stopping)


class UrlSource(LiveSource):
    """Anything FFmpeg opens by URL: http(s) radio streams, HLS playlists, rtsp cameras."""

    def blocks(self) -> Iterator[np.ndarray]:
        av = _pyav(self.name)
        try:
            container = av.open(self.name, mode="r")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise AudioError(f"{self.name}: cannot open the stream ({_first_line(exc)})") from None
        return _decoded(container, self.name, self.stopping)


class MicrophoneSource(LiveSource):
    """The default microphone or the one named, through PortAudio (the `sounddevice` package)."""

    def __init__(self, device_name: str | None = None, backend=None):
        super().__init__(f"microphone {device_name}" if device_name else "the microphone")
        self.device_name = device_name
        # the sounddevice module (looked for now: a missing one is said before a model loads), or a stand-in
        self._backend = backend or sounddevice_module()

    def open(self):
        """The input stream, opened: a missing package, PortAudio or microphone is a one-line UsageError."""
        backend = self._backend
        self.arrived: queue.Queue = queue.Queue()
        try:
            stream = backend.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=self.device_name,
                                         blocksize=int(SAMPLE_RATE * BLOCK_SECONDS), callback=self._arrived)
            stream.start()
        except Exception as exc:  # PortAudioError, or ValueError for a device name that matches none
            raise UsageError(f"{self.name}: cannot be opened ({_first_line(exc)})") from None
        return stream

    def _arrived(self, block, frames, moment, status) -> None:
        self.arrived.put(np.array(block[:, 0], dtype=np.float32))  # PortAudio reuses its buffer: copied

    def blocks(self) -> Iterator[np.ndarray]:
        stream = self.open()
        try:
            while not self.stopping.is_set():
                try:
                    yield self.arrived.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
        finally:
            stream.stop()
            stream.close()


def sounddevice_module():
    """`sounddevice`, or a one-line UsageError naming what to install."""
    try:
        import sounddevice
    except ImportError:
        raise UsageError(f"the microphone needs the sounddevice package: {INSTALL_LIVE}") from None
    except OSError:  # the package is there, the PortAudio library it loads is not
        raise UsageError("the microphone needs the PortAudio library (Debian/Ubuntu: apt install libportaudio2; "
                         "macOS: brew install portaudio)") from None
    return sounddevice


def open_live(source: str | None, pcm: PcmFormat = PcmFormat(), follow: bool = False,
              device_name: str | None = None) -> LiveSource:
    """The live input a command line names: none (the microphone), `-` (stdin), a URL, or a file (--follow)."""
    if source is None:
        return MicrophoneSource(device_name)
    if device_name is not None:
        raise UsageError("--device-name picks a microphone: give no SOURCE with it")
    if source == "-":
        if follow:
            raise UsageError("--follow is for a file being written, not stdin")
        if sys.stdin.isatty():  # keystrokes are no audio: a forgotten pipe would wait without a word
            raise UsageError("-: stdin is a terminal; pipe a stream into it (e.g. ffmpeg ... -f wav - | moss listen -)")
        return ByteStreamSource("stdin", sys.stdin.buffer, pcm)
    if "://" in source:
        if follow:
            raise UsageError("--follow is for a file being written, not a URL")
        return UrlSource(source)
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"{source}: no such file (give -, a URL, or no SOURCE for the microphone)")
    if not follow:
        raise UsageError(f"{source}: a finished file is for `moss transcribe`; --follow reads one still being written")
    return FollowedFile(path, pcm)


class FollowedFile(ByteStreamSource):
    """A file still being written (a recorder's output): read as it grows, from its start, until stopped."""

    def __init__(self, path: Path, pcm: PcmFormat):
        super().__init__(str(path), None, pcm)
        self.path = path

    def blocks(self) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as file:
            self.reader = _Tail(file, self.stopping, self.path)
            yield from super().blocks()


class _Tail:
    """A growing file as a stream: a read at its end waits for more (or for the stop).

    At its end the path is looked at too: a file deleted (or replaced by another) can grow no more,
    so its stream ends; a file shorter than what was read was truncated (a recorder started over),
    and what it holds now is another recording, not more of this one: an AudioError."""

    def __init__(self, file, stopping: threading.Event, path: Path):
        self.file, self.stopping, self.path = file, stopping, path
        self.identity = _identity(os.fstat(file.fileno()))

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 16
        while True:
            data = self.file.read(size)
            if data or self.stopping.is_set() or not self._may_grow():
                return data
            time.sleep(POLL_SECONDS)

    def _may_grow(self) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        if _identity(now) != self.identity:
            return False
        if now.st_size < self.file.tell():
            raise AudioError(f"{self.path}: truncated while followed (now {now.st_size} bytes, "
                             f"{self.file.tell()} were read); the run ends with what came before")
        return True


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class _Prefixed:
    """A stream with its first bytes (read to tell its container) put back in front. It has no seek:
    FFmpeg reads it as the pipe it is."""

    def __init__(self, head: bytes, reader):
        self.head, self.reader = head, reader

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 16
        if self.head:
            data, self.head = self.head[:size], self.head[size:]
            return data
        return _read_some(self.reader, size)


def _read_some(reader, size: int) -> bytes:
    """What is there now, up to `size` bytes, waiting only until something is (read1 on a pipe)."""
    read1 = getattr(reader, "read1", None)
    return read1(size) if read1 is not None else reader.read(size)


def _read_exactly(reader, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = _read_some(reader, size - len(data))
        if not more:
            break
        data += more
    return data


def _pcm_blocks(stream, pcm: PcmFormat, name: str, stopping: threading.Event) -> Iterator[np.ndarray]:
    """Bare 16-bit PCM, BLOCK_SECONDS at a time (a partial frame waits for its other bytes)."""
    frame = 2 * pcm.channels
    want = int(pcm.rate * BLOCK_SECONDS) * frame
    resampler = Resampler(pcm.rate, SAMPLE_RATE) if pcm.rate != SAMPLE_RATE else None
    pending = b""
    while not stopping.is_set():
        data = stream.read(want - len(pending))
        if not data:
            break
        pending += data
        whole = len(pending) // frame * frame
        if whole == 0:
            continue
        samples = np.frombuffer(pending[:whole], dtype="<i2").reshape(-1, pcm.channels).astype(np.float32) / 32768
        pending = pending[whole:]
        mono = mix_down(samples)
        yield resampler.push(mono) if resampler else mono
    if resampler is not None:
        yield resampler.finish()


def _open_container(stream, container: str, name: str):
    av = _pyav(name)
    # A WAV header written before its recording knows its length says 0 or 4 GB: read to the end instead.
    options = {"ignore_length": "1"} if container == "wav" else {}
    try:
        return av.open(stream, mode="r", format=container, options=options)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{name}: not a readable {container.upper()} stream ({_first_line(exc)})") from None


def _decoded(container, name: str, stopping: threading.Event) -> Iterator[np.ndarray]:
    """The first audio track's samples, 16 kHz mono, in blocks of at least BLOCK_SECONDS (a resampler
    call on one 1152-sample MP3 frame costs more than it does)."""
    av = _pyav(name)
    with container:
        track = next((s for s in container.streams if s.type == "audio"), None)
        if track is None:
            raise AudioError(f"{name}: no audio track")
        to_float, resampler, gathered, rate = av.AudioResampler(format="fltp"), None, [], None
        failure = None
        try:
            for frame in container.decode(track):
                for piece in to_float.resample(frame):
                    if rate is None:
                        rate = piece.sample_rate
                        resampler = Resampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
                    gathered.append(mix_down(piece.to_ndarray().T))
                    if sum(g.size for g in gathered) >= rate * BLOCK_SECONDS:
                        yield _resampled(gathered, resampler)
                if stopping.is_set():
                    return
        except (av.error.FFmpegError, ValueError) as exc:
            if rate is None:
                raise AudioError(f"{name}: decoding failed ({_first_line(exc)})") from None
            # damage or a dropped connection after some audio: the stream ends there, what came is kept
        except AudioError as exc:  # the source itself gave out (a followed file truncated): what came is kept
            failure = exc
        if gathered:
            yield _resampled(gathered, resampler)
        if resampler is not None:
            yield resampler.finish()
        if failure is not None:
            raise failure


def _resampled(gathered: list[np.ndarray], resampler: Resampler | None) -> np.ndarray:
    mono = np.concatenate(gathered)
    gathered.clear()
    if not np.all(np.isfinite(mono)):
        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)  # a live stream goes on past a bad frame
    return resampler.push(mono) if resampler else mono


def _pyav(name: str):
    try:
        import av
    except ImportError:
        raise AudioError(f"{name}: reading this stream needs PyAV (pip install av)") from None
    return av


def _first_line(exc: BaseException) -> str:
    # FFmpeg's and the OS's own words ("Server returned 404 Not Found"), without "[Errno N]" and the
    # file name that str() adds: the message names the source already
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or type(exc).__name__
    return text.splitlines()[0]

