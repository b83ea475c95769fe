"""Resampling to 16 kHz exactly as the official front end does it, whole or block by block.

The official code resamples with torchaudio's `functional.resample` defaults: band-limited sinc
interpolation, Hann window, 6 zero crossings, roll-off 0.99, the filter built in the signal's
dtype (float32) and applied as one strided conv1d. The model was trained and is evaluated on
those samples, so `moss` computes the same filter and the same convolution (no torchaudio needed).

Each output frame (one conv step) reads a finite stretch of input, so a long file can be
resampled in blocks that overlap by the filter's reach, with results equal to resampling the
whole file at once.
"""

from __future__ import annotations

import math

import numpy as np

ZERO_CROSSINGS = 6  # lowpass_filter_width
ROLLOFF = 0.99
# Calls into the convolution are cut so that every output sample is rounded as in the reference's
# single call over the whole file. PyTorch runs a batch-1 conv1d on the CPU through oneDNN when its
# input holds more than 20480 samples, else through im2col and a matrix product (another summation
# order); oneDNN's kernel in turn rounds a step the same way wherever the call starts on a tile
# boundary. So every call but a last one covering the whole file starts on a multiple of
# STEP_ALIGNMENT steps and reads more than ONEDNN_MIN_INPUT samples; the last call backs up over
# steps already given out when it would otherwise be short.
STEP_ALIGNMENT = 1024
ONEDNN_MIN_INPUT = 20480


class Resampler:
    """Streaming sinc resampler from `source_rate` to `target_rate` for mono float32 blocks."""

    def __init__(self, source_rate: int, target_rate: int):
        common = math.gcd(int(source_rate), int(target_rate))
        self.step = int(source_rate) // common  # input samples per conv step
        self.phases = int(target_rate) // common  # output samples per conv step
        self.reach, self.kernel = _sinc_kernel(self.step, self.phases)
        # The signal as the official code pads it: `reach` zeros before, `reach + step` after.
        self._pending = np.zeros(self.reach, dtype=np.float32)
        self._next_step = 0  # global index of the next conv step to compute
        self._consumed = 0  # index of _pending[0] in the padded signal
        self._input_length = 0
        self._emitted = 0
        # Steps of input kept behind the last call, so that a final call can back up far enough.
        self._history_steps = STEP_ALIGNMENT * math.ceil((ONEDNN_MIN_INPUT // self.step + 1) / STEP_ALIGNMENT)

    @property
    def taps(self) -> int:
        return self.kernel.shape[-1]

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed the next samples; returns every output sample that no later input can change."""
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._input_length += block.size
        self._pending = np.concatenate([self._pending, block])
        return self._run(final=False)

    def finish(self) -> np.ndarray:
        """The remaining output, with the end padding; the total length is the official one."""
        self._pending = np.concatenate([self._pending, np.zeros(self.reach + self.step, dtype=np.float32)])
        return self._run(final=True)

    def _run(self, *, final: bool) -> np.ndarray:
        first = self._next_step
        if final and first > 0:
            # Back up to an earlier tile so the last call is as long as the reference's was.
            first = max(0, first - self._history_steps)
        start = first * self.step - self._consumed  # where that step's window starts in _pending
        available = self._pending.size - start
        steps = 0 if available < self.taps else (available - self.taps) // self.step + 1
        if final:  # the reference has floor(length / step) + 1 steps in all
            steps = min(steps, self._input_length // self.step + 1 - first)
        else:
            steps -= steps % STEP_ALIGNMENT
            if self._call_length(steps) <= ONEDNN_MIN_INPUT:
                steps = 0  # wait for more input: a short call would take another conv algorithm
        out = np.zeros(0, dtype=np.float32)
        if steps > 0:
            import torch  # here, not at the top: 16 kHz mono input never needs it

            window = torch.from_numpy(self._pending[start : start + self._call_length(steps)])
            conv = torch.nn.functional.conv1d(window[None, None], self.kernel, stride=self.step)
            out = conv[0].transpose(0, 1).reshape(-1).numpy()  # step-major, phase-minor, as the reference
            out = out[(self._next_step - first) * self.phases :]  # drop what an earlier call gave
            self._next_step = first + steps
        keep_from = max(0, (self._next_step - self._history_steps) * self.step - self._consumed)
        self._pending = self._pending[keep_from:].copy()
        self._consumed += keep_from
        if final:
            out = out[: max(0, official_length(self._input_length, self.step, self.phases) - self._emitted)]
        self._emitted += out.size
        return out

    def _call_length(self, steps: int) -> int:
        """Input samples one conv call over `steps` steps reads."""
        return (steps - 1) * self.step + self.taps if steps > 0 else 0


def filter_bytes(source_rate: int, target_rate: int) -> int:
    """Memory of the sinc filters (float32) for a pair of rates: phases x (2 * reach + step). Small for
    the rates in use (44.1 kHz: 160 x 455), but a rate prime to 16 kHz (767999 Hz) needs gigabytes."""
    common = math.gcd(int(source_rate), int(target_rate))
    step, phases = int(source_rate) // common, int(target_rate) // common
    reach = math.ceil(ZERO_CROSSINGS * step / (min(step, phases) * ROLLOFF))
    return 4 * phases * (2 * reach + step)


def official_length(length: int, step: int, phases: int) -> int:
    """ceil(phases * length / step), with the quotient rounded to float32 first as the reference does."""
    return math.ceil(float(np.float32(phases * length / step)))


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """A whole mono signal at once (the same samples as block by block)."""
    if source_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    resampler = Resampler(source_rate, target_rate)
    return np.concatenate([resampler.push(samples), resampler.finish()])


def mix_down(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono, averaged in float32 over channels as the reference does."""
    if block.ndim == 1 or block.shape[1] == 1:
        return np.ascontiguousarray(block.reshape(-1), dtype=np.float32)
    import torch

    channels_first = torch.from_numpy(np.ascontiguousarray(block.T, dtype=np.float32))
    return channels_first.mean(dim=0).numpy()


def _sinc_kernel(step: int, phases: int):
    """Hann-windowed sinc filters, one per output phase: (phases, 1, 2 * reach + step), float32.

    Computed in float32 with the reference's operation order, so the taps are the same bits.
    """
    import torch

    cutoff = min(step, phases) * ROLLOFF
    reach = math.ceil(ZERO_CROSSINGS * step / cutoff)
    offsets = torch.arange(-reach, reach + step, dtype=torch.float32)[None, None] / step
    t = torch.arange(0, -phases, -1, dtype=torch.float32)[:, None, None] / phases + offsets
    t *= cutoff
    t = t.clamp_(-ZERO_CROSSINGS, ZERO_CROSSINGS)
    window = torch.cos(t * math.pi / ZERO_CROSSINGS / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * (cutoff / step)
    return reach, kernel
