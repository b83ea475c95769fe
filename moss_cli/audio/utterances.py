"""Live audio cut into utterances as it arrives: at a pause (the VAD's, as for files) or at a length limit.

Silero VAD runs frame by frame with its state carried from one block to the next (the way
`vad.SileroOnnx` runs over a file) and the same thresholds, pause length and padding as the file
path, so an utterance is what the file path would call a speech region. Only the utterance being
spoken and a little audio before it are held: memory does not grow with the length of the stream.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from .constants import SAMPLE_RATE
from .vad import MIN_SILENCE_MS, SILENCE_FLOOR, SPEECH_PAD_MS, SileroOnnx, _detector

log = logging.getLogger(__name__)
FRAME = SileroOnnx.FRAME
PAD_FRAMES = -(-SPEECH_PAD_MS * SAMPLE_RATE // 1000 // FRAME)  # frames of air kept before and after speech
PAUSE_FRAMES = -(-MIN_SILENCE_MS * SAMPLE_RATE // 1000 // FRAME)  # this much silence ends an utterance
MIN_SPEECH_FRAMES = SileroOnnx.MIN_SPEECH_MS * SAMPLE_RATE // 1000 // FRAME  # shorter speech is no utterance
ENERGY_THRESHOLD_DB = -45.0  # the fallback without Silero: a frame this loud is speech


@dataclass(frozen=True)
class Utterance:
    """Samples [start, end) of the stream, and why it was cut there: "pause", "length" or "end"."""

    start: int
    samples: np.ndarray
    cut: str = "pause"

    @property
    def end(self) -> int:
        return self.start + self.samples.size

    @property
    def seconds(self) -> float:
        return self.samples.size / SAMPLE_RATE


class SileroStream:
    """Silero's ONNX model over a stream: state and context carried across calls. Frames of digital
    silence are not run (a long quiet stream costs next to nothing): they count as no speech."""

    def __init__(self, model: SileroOnnx):
        self.session = model.session
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros(SileroOnnx.CONTEXT, np.float32)
        self.rate = np.array(SAMPLE_RATE, dtype=np.int64)

    def __call__(self, frame: np.ndarray) -> float:
        window = np.concatenate([self.context, frame])
        self.context = frame[-SileroOnnx.CONTEXT:]
        output, self.state = self.session.run(None, {"input": window[None], "state": self.state, "sr": self.rate})
        return float(output[0, 0])

    def silence(self, frame: np.ndarray) -> float:
        """A frame of digital silence: not run, it is only the next frame's context."""
        self.context = frame[-SileroOnnx.CONTEXT:]
        return 0.0


def energy_probability(frame: np.ndarray) -> float:
    """Without Silero: loud frames are speech (1.0), quiet ones not (0.0). A fallback, not a VAD."""
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
    return 1.0 if rms > 10 ** (ENERGY_THRESHOLD_DB / 20) else 0.0


def frame_detector():
    """Speech probability per FRAME-sample frame: Silero's ONNX model when it loads, else energy."""
    model = _detector()
    if isinstance(model, SileroOnnx):
        return SileroStream(model)
    log.info("live input: Silero's ONNX model is not available; speech is found by energy")
    return energy_probability


class UtteranceCutter:
    """Feed blocks of a stream; get back the utterances they complete, in order."""

    def __init__(self, max_seconds: float, detector=None):
        if max_seconds < 1:
            raise ValueError("an utterance may be no shorter than a second")
        self.max_frames = int(max_seconds * SAMPLE_RATE) // FRAME
        self.detector = detector or frame_detector()
        self.position = 0  # stream samples judged so far
        self._unjudged = np.empty(0, np.float32)  # less than a frame, waiting for the rest
        self._before: deque[np.ndarray] = deque(maxlen=PAD_FRAMES)  # air before the next utterance
        self._frames: list[np.ndarray] | None = None  # the utterance being spoken
        self._start = 0
        self._voiced = 0  # frames of speech in it
        self._quiet = 0  # frames since its speech last stopped

    @property
    def speaking(self) -> bool:
        return self._frames is not None and self._voiced > 0

    def heard_span(self) -> tuple[int, int] | None:
        """Stream samples [start, end) of the speech being heard now (not yet an utterance), or None."""
        return (self._start, self.position) if self.speaking else None

    def feed(self, block: np.ndarray) -> list[Utterance]:
        samples = np.concatenate([self._unjudged, np.asarray(block, np.float32)])
        whole = samples.size // FRAME * FRAME
        self._unjudged = samples[whole:]
        frames = samples[:whole].reshape(-1, FRAME)
        silent = np.abs(frames).max(axis=1) < SILENCE_FLOOR  # found for the whole block at once: hours of quiet are cheap
        done: list[Utterance] = []
        for frame, quiet in zip(frames, silent.tolist()):
            found = self._judge(frame, silent=quiet)
            if found is not None:
                done.append(found)
        return done

    def finish(self) -> list[Utterance]:
        """The stream ended: the utterance being spoken is cut where the audio stops."""
        found = None
        if self._unjudged.size:  # the last partial frame, judged padded with silence
            last, self._unjudged = self._unjudged, np.empty(0, np.float32)
            found = self._judge(np.concatenate([last, np.zeros(FRAME - last.size, np.float32)]), real=last.size)
        if found is not None:
            return [found]
        return [u for u in [self._close("end")] if u is not None]

    def _judge(self, frame: np.ndarray, real: int = FRAME, silent: bool = False) -> Utterance | None:
        quiet = getattr(self.detector, "silence", None) if silent else None
        probability = quiet(frame) if quiet is not None else self.detector(frame)
        frame = frame[:real]
        self.position += real
        if self._frames is None:
            if probability < SileroOnnx.THRESHOLD:
                self._before.append(frame)
                return None
            self._frames, self._voiced, self._quiet = list(self._before), 0, 0
            self._start = self.position - real - sum(f.size for f in self._before)
            self._before.clear()
        self._frames.append(frame)
        if probability >= SileroOnnx.THRESHOLD:
            self._voiced, self._quiet = self._voiced + 1, 0
        elif probability < SileroOnnx.NEG_THRESHOLD or self._quiet:
            self._quiet += 1
        if self._quiet >= PAUSE_FRAMES:
            return self._close("pause")
        if len(self._frames) >= self.max_frames:
            return self._cut_at_length()
        return None

    def _close(self, why: str) -> Utterance | None:
        """The utterance ends: its trailing silence beyond the padding goes to the air before the next."""
        if self._frames is None:
            return None
        frames, keep = self._frames, len(self._frames) - max(0, self._quiet - PAD_FRAMES)
        self._frames = None
        for frame in frames[keep:][-PAD_FRAMES:]:
            self._before.append(frame)
        if self._voiced < MIN_SPEECH_FRAMES:
            return None
        return Utterance(self._start, np.concatenate(frames[:keep]), why)

    def _cut_at_length(self) -> Utterance | None:
        """The longest utterance allowed: cut here, and the speech goes on in the next one."""
        frames, voiced = self._frames, self._voiced
        start = self._start
        self._frames, self._start, self._voiced, self._quiet = [], self.position, 0, 0
        if voiced < MIN_SPEECH_FRAMES:
            return None
        return Utterance(start, np.concatenate(frames), "length")
