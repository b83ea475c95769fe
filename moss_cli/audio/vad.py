"""Voice activity: where speech is, in samples. Silero VAD (ONNX), else its TorchScript twin, else energy.

The ONNX model runs on onnxruntime directly: the remote engine finds speech without importing torch.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .constants import SAMPLE_RATE

log = logging.getLogger(__name__)
SPEECH_PAD_MS = 200  # keep a little air around each region so no onset or tail is clipped
MIN_SILENCE_MS = 300  # gaps shorter than this are pauses inside speech, not places to cut
ENERGY_FRAME = 480  # 30 ms frames for the fallback detector


SILENCE_FLOOR = 1e-4  # -80 dBFS: a block quieter than this is digital silence, not worth a VAD pass


BLOCK_SECONDS = 60
OVERLAP_SECONDS = 5  # each block is scanned with this much context on both sides
MERGE_GAP = MIN_SILENCE_MS * SAMPLE_RATE // 1000  # regions closer than this are one


def speech_regions(source) -> list[tuple[int, int]]:
    """Speech in an AudioSource, scanned in overlapping blocks so memory stays bounded (or what the
    scan under way for it finds, once it ends).

    The overlap lets speech that straddles a block border be seen whole from one side.
    """
    if getattr(source, "scan", None) is not None:
        return source.scan.regions()
    regions: list[tuple[int, int]] = []
    for found, _ in _scanned_blocks(source):
        regions += found
    return _merge(regions, MERGE_GAP)


def scan_ahead(source) -> None:
    """Start finding a source's speech in the background (see SpeechScan); the batch runner calls this
    for each input as it opens it, so the scan runs beside the model's work."""
    speech_scan(source)


def speech_scan(source) -> SpeechScan:
    """The scan of a source's speech, started now if none is under way."""
    if getattr(source, "scan", None) is None:
        source.scan = SpeechScan(source)
    return source.scan


class SpeechScan:
    """Speech in a source, found block by block in a background thread (onnxruntime and libsndfile
    release the GIL: it runs beside inference). After each block the speech found so far is exact
    before some sample, so chunks can be planned and asked while later blocks are scanned
    (chunking.ChunkPlanner). Its regions end as `speech_regions` gives them."""

    def __init__(self, source):
        from ..interrupts import started  # stoppable: the exit stops and waits for it (see there)

        self.n_samples = source.n_samples
        self._changed = threading.Condition()
        self._found: list[tuple[int, int]] = []
        self._known_until = 0
        self._error: BaseException | None = None
        # Set by stop() or by the interpreter's exit. A thread still inside onnxruntime when the process
        # exits aborts it ("terminate called without an active exception", exit 134), so the scan
        # looks at this between VAD frames, not only between blocks, and the exit waits for it.
        self._stop = threading.Event()
        self._done = started(self._run, source, name="moss-speech-scan", stop=self._stop)

    def _run(self, source) -> None:
        regions: list[tuple[int, int]] = []
        try:
            for found, known_until in _scanned_blocks(source, self._stop):
                regions += found
                merged = _merge(regions, MERGE_GAP)
                with self._changed:
                    self._found, self._known_until = merged, known_until
                    self._changed.notify_all()
        except ScanStopped:
            return
        except BaseException as exc:  # the input's own error (damage, NaN): raised to whoever waits
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def found(self, beyond: int = 0) -> tuple[list[tuple[int, int]], int]:
        """The speech found so far and the sample before which it is final (n_samples at the end), once
        that is past `beyond` or the scan is over. Raises the scan's error."""
        from ..interrupts import WAIT_SLICE  # waits in slices: a signal taken by another thread is seen

        with self._changed:
            while self._known_until <= beyond and self._known_until < self.n_samples and self._error is None:
                if self._done.done():
                    raise RuntimeError("the speech scan was stopped before it ended")
                self._changed.wait(WAIT_SLICE)
            if self._error is not None:
                raise self._error
            return self._found, self._known_until

    def regions(self) -> list[tuple[int, int]]:
        """All the speech, once the scan is over."""
        return self.found(self.n_samples - 1)[0]

    def stop(self, wait: float | None = None) -> None:
        """No more blocks (the source is closed, or its work failed); `wait`: seconds to wait for the
        thread to give up (it does within one VAD frame, or one TorchScript block)."""
        self._stop.set()
        if wait is not None:
            try:
                self._done.exception(timeout=wait)
            except TimeoutError:
                pass


class ScanStopped(Exception):
    """A speech scan asked to stop gives up mid-block with this."""


def _scanned_blocks(source, stop: threading.Event | None = None):
    """Each block's speech regions, and the sample before which the regions found up to then are final:
    the next block's speech starts at its first sample or later, and can only join a region that ends
    within MERGE_GAP of it."""
    size, overlap = BLOCK_SECONDS * SAMPLE_RATE, OVERLAP_SECONDS * SAMPLE_RATE
    for start in range(0, source.n_samples, size):
        if stop is not None and stop.is_set():
            raise ScanStopped
        first = max(0, start - overlap)
        block = source.read(first, start + size + overlap)
        found = []
        if block.size and np.abs(block).max() >= SILENCE_FLOOR:
            found = [(first + a, first + b) for a, b in speech_regions_in(block, stop)]
        following = start + size
        yield found, source.n_samples if following >= source.n_samples else max(0, following - overlap - MERGE_GAP)


def speech_regions_in(samples: np.ndarray, stop: threading.Event | None = None) -> list[tuple[int, int]]:
    """Sorted, non-overlapping [start, end) sample ranges that contain speech; `stop` set: ScanStopped."""
    if samples.size == 0:
        return []
    detector = _detector()
    if detector is None:
        return energy_regions(samples)
    if isinstance(detector, SileroOnnx):
        found = detector(samples, stop)
    else:
        found = detector(samples)  # TorchScript's get_speech_timestamps: one call, stopped between blocks
    return _merge([(start, min(end, samples.size)) for start, end in found])


@lru_cache(maxsize=1)
def _detector():
    """Silero VAD: its ONNX model on onnxruntime (no torch), else its TorchScript twin, else None."""
    model_file = _silero_onnx_file()
    if model_file is not None:
        try:
            return SileroOnnx(model_file)
        except Exception as exc:  # onnxruntime missing or broken: the TorchScript model needs only torch
            log.info("Silero's ONNX model does not load (%s): trying its TorchScript model", exc)
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError:
        log.warning("silero-vad is not installed: finding speech by energy instead")
        return None
    import torch

    model = load_silero_vad(onnx=False)
    one_at_a_time = threading.Lock()  # the model keeps its state between calls; look-ahead scans run in threads

    def regions(samples: np.ndarray) -> list[tuple[int, int]]:
        with one_at_a_time:
            found = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), model, sampling_rate=SAMPLE_RATE,
                min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=SPEECH_PAD_MS)
        return [(int(r["start"]), int(r["end"])) for r in found]

    return regions


def _silero_onnx_file() -> Path | None:
    """silero-vad's ONNX model file, found without importing the package (its __init__ imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class SileroOnnx:
    """Silero VAD's streaming ONNX model, run frame by frame exactly as silero-vad's own OnnxWrapper and
    get_speech_timestamps run it (same frames, context, state and thresholds), but without torch."""

    FRAME = 512  # samples per frame at 16 kHz
    CONTEXT = 64  # samples of the previous frame the model sees before each frame
    THRESHOLD = 0.5  # speech starts at this probability ...
    NEG_THRESHOLD = THRESHOLD - 0.15  # ... and ends below this one
    MIN_SPEECH_MS = 250  # shorter speech is dropped

    def __init__(self, model_file: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model_file), sess_options=options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, samples: np.ndarray, stop: threading.Event | None = None) -> list[tuple[int, int]]:
        return speech_from_probabilities(self.probabilities(samples, stop), samples.size)

    def probabilities(self, samples: np.ndarray, stop: threading.Event | None = None) -> np.ndarray:
        """Speech probability of each 512-sample frame (the last one zero-padded)."""
        n_frames = -(-samples.size // self.FRAME)
        padded = np.zeros(self.CONTEXT + n_frames * self.FRAME, np.float32)  # zero context before frame 0
        padded[self.CONTEXT : self.CONTEXT + samples.size] = samples
        state, rate = np.zeros((2, 1, 128), np.float32), np.array(SAMPLE_RATE, dtype=np.int64)
        probabilities = np.empty(n_frames, np.float32)
        for i in range(n_frames):
            if stop is not None and stop.is_set():  # ~0.1 ms a frame: the exit waits no longer than that
                raise ScanStopped
            window = padded[None, i * self.FRAME : (i + 1) * self.FRAME + self.CONTEXT]
            output, state = self.session.run(None, {"input": window, "state": state, "sr": rate})
            probabilities[i] = output[0, 0]
        return probabilities


def speech_from_probabilities(probabilities: np.ndarray, n_samples: int) -> list[tuple[int, int]]:
    """silero-vad's get_speech_timestamps_from_probs for our settings (no longest-speech cut):
    hysteresis between the two thresholds, silences under MIN_SILENCE_MS bridged, short speech
    dropped, then SPEECH_PAD_MS of padding (half the gap where two regions nearly touch)."""
    frame, min_silence = SileroOnnx.FRAME, SAMPLE_RATE * MIN_SILENCE_MS / 1000
    min_speech = SAMPLE_RATE * SileroOnnx.MIN_SPEECH_MS / 1000
    speeches: list[list[int]] = []
    start, silence_from = None, 0
    for i, probability in enumerate(probabilities.tolist()):
        position = frame * i
        if probability >= SileroOnnx.THRESHOLD:
            silence_from = 0
            start = position if start is None else start
        elif probability < SileroOnnx.NEG_THRESHOLD and start is not None:
            silence_from = silence_from or position
            if position - silence_from >= min_silence:
                if silence_from - start > min_speech:
                    speeches.append([start, silence_from])
                start, silence_from = None, 0
    if start is not None and n_samples - start > min_speech:
        speeches.append([start, n_samples])
    return _padded(speeches, n_samples)


def _padded(speeches: list[list[int]], n_samples: int) -> list[tuple[int, int]]:
    pad = SAMPLE_RATE * SPEECH_PAD_MS / 1000
    for i, speech in enumerate(speeches):
        if i == 0:
            speech[0] = int(max(0, speech[0] - pad))
        if i == len(speeches) - 1:
            speech[1] = int(min(n_samples, speech[1] + pad))
            continue
        following = speeches[i + 1]
        gap = following[0] - speech[1]
        if gap < 2 * pad:
            speech[1] += int(gap // 2)
            following[0] = int(max(0, following[0] - gap // 2))
        else:
            speech[1] = int(min(n_samples, speech[1] + pad))
            following[0] = int(max(0, following[0] - pad))
    return [(start, end) for start, end in speeches]


def energy_regions(samples: np.ndarray, threshold_db: float = -40.0) -> list[tuple[int, int]]:
    """Frames within `threshold_db` of the loudest frame count as speech. A fallback, not a VAD."""
    n = samples.size // ENERGY_FRAME
    if n == 0:
        return []
    frames = samples[: n * ENERGY_FRAME].reshape(n, ENERGY_FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10
    level = 20 * np.log10(rms / rms.max())
    active = (level > threshold_db) & (rms > 1e-4)
    pad = SPEECH_PAD_MS * SAMPLE_RATE // 1000
    regions = []
    for i in np.flatnonzero(active):
        start, end = i * ENERGY_FRAME, (i + 1) * ENERGY_FRAME
        regions.append((max(0, start - pad), min(samples.size, end + pad)))
    return _merge(regions, MERGE_GAP)


def _merge(regions: list[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
