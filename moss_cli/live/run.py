"""A live run: the source read in a thread of its own and cut into utterances, each utterance asked as soon
as it ends, its result written where the run writes and told to an observer (the CLI prints it).

The backlog (utterances heard but not yet asked) is bounded in seconds of audio: past the bound the
oldest waiting utterances become marked gaps, so memory stays flat however far the model falls
behind, and no audio is lost without a mark. Ctrl-C (Interrupted in the main thread) stops the
source, lets the utterance in flight finish within `finish_seconds` (or marks it dropped), marks
what was still waiting, and ends the run normally.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..audio.constants import SAMPLE_RATE
from ..audio.utterances import Utterance, UtteranceCutter, energy_probability
from ..interrupts import WAIT_SLICE, Interrupted, deferred, signals_interrupt, started
from ..results import Result
from ..tasks.answers import finish_result
from ..tasks.pipeline import Pipeline
from ..tasks.recording import Recording
from ..timeref import format_clock, seconds_of
from .observer import LiveObserver

STALL_SECONDS = 2.0  # no audio for this long: the source is shown as stalled
READER_GRACE_SECONDS = 0.5  # after Ctrl-C, the least time the source's thread is given to end
FELL_BEHIND = "the model fell behind"
INTERRUPTED = "stopped before it was transcribed"


@dataclass(frozen=True)
class LiveOptions:
    max_utterance_seconds: float = 30.0
    max_backlog_seconds: float = 60.0
    finish_seconds: float = 10.0  # after Ctrl-C, how long the utterance in flight may still take
    concurrency: int = 1  # utterances asked at once when several wait (several servers); written in order
    clock: bool = False  # wall-clock times beside stream times


@dataclass
class Gap:
    """Stream seconds [start, end) not transcribed, and why."""

    start: float
    end: float
    reason: str


@dataclass
class LiveSummary:
    utterances: int = 0
    gaps: list[Gap] = field(default_factory=list)
    interrupted: bool = False
    stream_seconds: float = 0.0


class Backlog:
    """Utterances waiting for the model, bounded in seconds of audio (older ones become gaps)."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.items: deque[Utterance | Gap] = deque()
        self.seconds = 0.0
        self.ended = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()

    def add(self, utterance: Utterance) -> list[Gap]:
        """Queue an utterance; returns the gaps made to keep within the bound (for a warning)."""
        made = []
        with self.changed:
            self.items.append(utterance)
            self.seconds += utterance.seconds
            while self.seconds > self.max_seconds:
                made.append(self._drop_oldest())
            self.changed.notify_all()
        return made

    def _drop_oldest(self) -> Gap:
        index = next(i for i, item in enumerate(self.items) if isinstance(item, Utterance))
        dropped = self.items[index]
        self.seconds -= dropped.seconds
        gap = Gap(dropped.start / SAMPLE_RATE, dropped.end / SAMPLE_RATE, FELL_BEHIND)
        before = self.items[index - 1] if index else None
        if isinstance(before, Gap) and before.reason == gap.reason:  # one mark for a run of drops
            del self.items[index]
            before.end = gap.end
            return Gap(gap.start, gap.end, gap.reason)
        self.items[index] = gap
        return gap

    def end(self, error: BaseException | None = None) -> None:
        with self.changed:
            self.ended, self.error = True, error
            self.changed.notify_all()

    def take(self) -> Utterance | Gap | None:
        """The next item, waited for in short slices (a signal reaches the main thread); None: the
        source ended and everything is taken. Raises the source's error once the rest is taken."""
        with self.changed:
            while not self.items and not self.ended:
                self.changed.wait(WAIT_SLICE)
                if not self.items and not self.ended:
                    return _WAITING
            if self.items:
                item = self.items.popleft()
                if isinstance(item, Utterance):
                    self.seconds -= item.seconds
                return item
            if self.error is not None:
                raise self.error
            return None

    def take_ready(self, most: int) -> list[Utterance]:
        """Up to `most` utterances waiting at the head, without waiting (to ask several servers at once)."""
        taken: list[Utterance] = []
        with self.changed:
            while len(taken) < most and self.items and isinstance(self.items[0], Utterance):
                taken.append(self.items.popleft())
                self.seconds -= taken[-1].seconds
        return taken

    def drain(self) -> list[Utterance | Gap]:
        with self.changed:
            items, self.seconds = list(self.items), 0.0
            self.items.clear()
            return items


_WAITING = Gap(0.0, 0.0, "waiting")  # take(): nothing yet, look again


class LiveRun:
    """One live run: `run()` until the source ends or Ctrl-C; returns what happened."""

    def __init__(self, source, pipeline: Pipeline, task, observer: LiveObserver, outputs=None,
                 options: LiveOptions = LiveOptions(), cutter: UtteranceCutter | None = None, speakers=None):
        self.source, self.pipeline, self.task = source, pipeline, task
        self.speakers = speakers  # a speakers.tracking.SpeakerTracker: labels that hold for the whole run
        self.observer, self.outputs, self.options = observer, outputs, options
        # Events are any sound, not only speech: cut where the audio goes quiet, not where Silero hears a pause.
        self.cutter = cutter or UtteranceCutter(options.max_utterance_seconds,
                                                energy_probability if task.output == "events" else None)
        self.backlog = Backlog(options.max_backlog_seconds)
        self.summary = LiveSummary()
        self.started_at: float | None = None  # wall time of the stream's first sample
        self.last_audio = time.monotonic()
        self._segments = 0  # ids run on across utterances
        self._flying: list = []  # (utterance, its answer to come) asked and not yet written, in order
        self._reader: threading.Thread | None = None

    def run(self) -> LiveSummary:
        self._reader = reader = threading.Thread(target=self._read, name="moss-live-source", daemon=True)
        with signals_interrupt():
            reader.start()
            try:
                self._answer_all()
            except Interrupted:
                self.summary.interrupted = True
                self._wind_down()
        return self.summary

    def reading(self) -> bool:
        """Whether the source's thread is still in the source (a read that has not returned)."""
        return self._reader is not None and self._reader.is_alive()

    # -- the source's thread ----------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for block in self.source.blocks():
                if self.started_at is None:
                    self.started_at = time.time()
                self.last_audio = time.monotonic()
                self.summary.stream_seconds += block.size / SAMPLE_RATE
                self._queue(self.cutter.feed(block))
            self._queue(self.cutter.finish())
            self.backlog.end()
        except BaseException as exc:  # the source's error ends the run once what came is answered
            self.backlog.end(exc)

    def _queue(self, utterances: list[Utterance]) -> None:
        for utterance in utterances:
            for gap in self.backlog.add(utterance):
                self.observer.warning(f"{_span(gap)}: skipped, {gap.reason} "
                                      f"(backlog over {self.options.max_backlog_seconds:g} s)")

    # -- the main thread ------------------------------------------------------------------------
    def _answer_all(self) -> None:
        while True:
            self._show_status()
            item = self.backlog.take()
            if item is None:
                return
            if item is _WAITING:
                continue
            if isinstance(item, Gap):
                self._mark(item)
                continue
            batch = [item, *self.backlog.take_ready(self.options.concurrency - 1)]
            self._flying = [(u, started(self._ask, u, name="moss-live-ask")) for u in batch]
            self.observer.status("waiting for the model", self.backlog.seconds)
            while self._flying:
                utterance, future = self._flying[0]
                result = self._wait(future)
                self._flying.pop(0)
                with deferred():  # a signal now waits until the utterance's cues are written whole
                    self._write(utterance, result)

    def _wait(self, future, limit: float | None = None):
        """The future's result, waited for in slices so that Ctrl-C is taken at once."""
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            try:
                return future.result(timeout=WAIT_SLICE)
            except TimeoutError:
                if future.done():
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                self.observer.status("waiting for the model", self.backlog.seconds)

    def _wind_down(self) -> None:
        """After Ctrl-C: the utterance in flight finished (bounded) or marked dropped; the rest marked."""
        self.source.stop()
        if self._flying:
            self.observer.status(f"finishing the utterance in flight (at most {self.options.finish_seconds:g} s)", 0.0)
        deadline = time.monotonic() + self.options.finish_seconds
        for index, (utterance, future) in enumerate(self._flying):
            try:
                result = self._wait(future, max(0.0, deadline - time.monotonic()))
                self._write(utterance, result)
            except (Exception, Interrupted):  # too slow, a second Ctrl-C, or the request failed
                for dropped, _ in self._flying[index:]:
                    self.observer.warning(f"{_span(dropped)}: dropped, the model did not finish it in time")
                    self._mark(Gap(dropped.start / SAMPLE_RATE, dropped.end / SAMPLE_RATE, INTERRUPTED))
                break
        self._flying = []
        self._stop_reading()
        for item in self.backlog.drain():
            gap = item if isinstance(item, Gap) else Gap(item.start / SAMPLE_RATE, item.end / SAMPLE_RATE, INTERRUPTED)
            self._mark(gap)

    def _stop_reading(self) -> None:
        """After Ctrl-C: the source's thread given a moment to end (a flowing source ends at its next
        block), so the speech being heard is cut and queued, to be marked with the rest. A source
        stalled in a read is not waited on: the speech heard so far is marked from the cutter."""
        self._reader.join(READER_GRACE_SECONDS)
        if not self._reader.is_alive():
            return
        span = self.cutter.heard_span()
        if span is not None:
            self._mark(Gap(span[0] / SAMPLE_RATE, span[1] / SAMPLE_RATE, INTERRUPTED))

    def _ask(self, utterance: Utterance) -> Result:
        recording = Recording.from_array(self.source.name, utterance.samples)
        return self.pipeline.timed(self.task, recording)

    def _write(self, utterance: Utterance, result: Result) -> None:
        if self.speakers is not None and self.task.output != "events":  # here: in stream order, one at a time
            result.segments = self.speakers.label(utterance.samples, result.segments)
        result = self._at_stream_time(result, utterance.start / SAMPLE_RATE)
        record = self._record(utterance.start / SAMPLE_RATE, utterance.end / SAMPLE_RATE)
        if self.outputs is not None:
            self.outputs.add(result, record)
        self.summary.utterances += 1
        self.observer.heard(result, record)
        for warning in result.warnings:
            self.observer.warning(_warning_at_stream_time(warning, utterance.start / SAMPLE_RATE))

    def _mark(self, gap: Gap) -> None:
        self.summary.gaps.append(gap)
        if self.outputs is not None:
            self.outputs.skipped(gap.start, gap.end, gap.reason, self._record(gap.start, gap.end, times=False))
        self.observer.gap(gap.start, gap.end, gap.reason)

    def _record(self, start: float, end: float, times: bool = True) -> dict:
        record = {"start": round(start, 3), "end": round(end, 3)} if times else {}
        if self.options.clock and self.started_at is not None:
            record["clock"] = datetime.fromtimestamp(self.started_at + start, timezone.utc).astimezone().isoformat(
                timespec="milliseconds")
        return record

    def _at_stream_time(self, result: Result, offset: float) -> Result:
        """An utterance's result moved to where it lies in the stream; segment ids run on."""
        for segment in result.segments:
            segment.start, segment.end = segment.start + offset, segment.end + offset
            for word in segment.words:
                word.start, word.end = word.start + offset, word.end + offset
        for event in result.events:
            event.start, event.end = event.start + offset, event.end + offset
        result = finish_result(self.task, result)  # the events' text, at stream times
        for segment in result.segments:
            segment.id = self._segments
            self._segments += 1
        result.duration = offset + result.duration
        return result

    def _show_status(self) -> None:
        quiet_for = time.monotonic() - self.last_audio
        if quiet_for > STALL_SECONDS and not self.backlog.ended:
            state = f"waiting for the source ({quiet_for:.0f} s without audio)"
        else:
            state = "speech" if self.cutter.speaking else "listening"
        self.observer.status(state, self.backlog.seconds)


_LEADING_SPAN = re.compile(r"^(\d+(?::\d\d)+)-(\d+(?::\d\d)+): ")  # a request's "m:ss-m:ss: " (answers.span_text)


def _warning_at_stream_time(warning: str, offset: float) -> str:
    """A warning that starts with the span of the request it is about, that span moved from the
    utterance's own times to the stream's (as the utterance's cues are)."""
    match = _LEADING_SPAN.match(warning)
    if match is None:
        return warning
    start, end = (seconds_of(match.group(i)) for i in (1, 2))
    return f"{format_clock(start + offset)}-{format_clock(end + offset)}: {warning[match.end():]}"


def _span(item: Utterance | Gap) -> str:
    """Where an utterance (in samples) or a gap (in seconds) lies in the stream, for a message."""
    scale = SAMPLE_RATE if isinstance(item, Utterance) else 1
    return f"{item.start / scale:.1f}-{item.end / scale:.1f} s"
