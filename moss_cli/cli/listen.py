"""`moss listen`: the command line checked, the engine opened, the live run on the terminal.

Finished lines go to stdout (flushed one by one: a pipe reader sees each at once); a one-line status
(listening / speech / waiting for the model, the backlog) is redrawn on stderr when it is a terminal.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine.factory import EngineSpec, validated
from ..errors import EXIT_OK, MossError, UsageError
from ..live.observer import LiveObserver
from .console import report, say, stderr
from .engine import LazyEngine, use_threads
from .run import check_finite, pipeline_options


@dataclass(frozen=True)
class ListenRequest:
    """What `moss listen` was asked: the source and how it is read, cut and written."""

    source: str | None
    rate: int = 16_000
    channels: int = 1
    follow: bool = False
    device_name: str | None = None
    output_dir: Path | None = None
    quiet: bool = False


def run_listen(request: ListenRequest, task, spec: EngineSpec, sampling, layout, options, speakers=None) -> int:
    """The whole live run; its exit code (0 at the end of the stream and after Ctrl-C)."""
    from ..audio.live import PcmFormat, open_live
    from ..live.run import LiveRun

    outputs = live = None
    try:
        check_finite()
        source = open_live(request.source, PcmFormat(request.rate, request.channels), request.follow,
                           request.device_name)
        if options.max_backlog_seconds < options.max_utterance_seconds:
            raise UsageError("--max-backlog-seconds must hold at least one utterance (--max-utterance-seconds)")
        tracker = _speaker_tracker(speakers, task)  # a missing voice encoder fails before the model loads
        spec = validated(spec, [task.prompt])
        # several servers: as many waiting utterances asked at once (written in order); one model: one at a time
        options = replace(options, concurrency=max(1, len(spec.servers or ())))
        use_threads(spec.threads)
        engine = LazyEngine(spec, request.quiet)
        engine.check()
        pipeline = _pipeline(engine.get(), sampling, spec)  # loaded before listening: no latency spent on it
        outputs = _outputs(request, task, source, layout)
        observer = TerminalObserver(request.quiet, options.clock)
        if not request.quiet:
            say(f"listening to {source.name}" + (f", writing {', '.join(str(p) for p in outputs.paths)}"
                                                  if outputs else "") + "; Ctrl-C ends")
        live = LiveRun(source, pipeline, task, observer, outputs, options, speakers=tracker)
        summary = live.run()
        observer.done(summary)
        code = EXIT_OK
    except (MossError, Exception, KeyboardInterrupt) as exc:
        code = report(exc)
    finally:
        if outputs is not None:
            outputs.close()
    from .. import interrupts

    if interrupts.received is not None:  # after Ctrl-C a dropped utterance may still be inside the model:
        interrupts.exit_now(code)  # leave without waiting for it (the files are closed)
    if live is not None and live.reading():  # a failed run's source thread blocked in a read of stdin:
        interrupts.exit_now(code)  # Python's shutdown would abort on the lock that read holds
    return code


def _speaker_tracker(speakers, task):
    """--speakers: labels that hold for the whole run (speakers/tracking.py); None when off."""
    try:
        chosen = speakers.chosen() if speakers is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if chosen is None:
        return None
    if task.output == "events":
        raise UsageError("--speakers labels speech: not with --events")
    from ..speakers.tracking import SpeakerTracker, voice_embedder

    return SpeakerTracker(voice_embedder(chosen), chosen)


def _pipeline(engine, sampling, spec: EngineSpec):
    from ..tasks.pipeline import Pipeline

    return Pipeline(engine, pipeline_options(sampling, spec.max_request_seconds))


def _outputs(request: ListenRequest, task, source, layout):
    if request.output_dir is None:
        return None
    from ..output.appending import AppendingOutputs

    stem = "microphone" if request.source is None else Path(source.name.split("?")[0].rstrip("/")).stem or "stream"
    return AppendingOutputs(request.output_dir, f"{stem}.{'events' if task.output == 'events' else 'live'}", layout)


def stream_time(seconds: float) -> str:
    """12.345 -> 00:00:12.35: hours always shown, a live stream gets long."""
    hundredths = int(round(seconds * 100))
    hours, rest = divmod(hundredths, 360_000)
    minutes, rest = divmod(rest, 6_000)
    return f"{hours:02d}:{minutes:02d}:{rest / 100:05.2f}"


class TerminalObserver(LiveObserver):
    """Lines on stdout as they are heard; the status line and warnings on stderr."""

    def __init__(self, quiet: bool, clock: bool, status_shown: bool | None = None):
        self.quiet, self.clock = quiet, clock
        self.status_shown = (not quiet and sys.stderr.isatty()) if status_shown is None else status_shown
        self._status = ""
        self._drawn = 0.0

    def heard(self, result, record: dict) -> None:
        self._clear()
        prefix = f"{record['clock'][11:19]} " if "clock" in record else ""
        if result.task == "events":
            lines = [f"{prefix}[{stream_time(e.start)} -> {stream_time(e.end)}] {e.description}" for e in result.events]
        else:
            lines = [f"{prefix}[{stream_time(s.start)} -> {stream_time(s.end)}] {_speaker(s)}{s.text}"
                     for s in result.segments]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    def gap(self, start: float, end: float, reason: str) -> None:
        self._clear()
        sys.stdout.write(f"[{stream_time(start)} -> {stream_time(end)}] [skipped: {reason}]\n")
        sys.stdout.flush()

    def status(self, state: str, backlog_seconds: float) -> None:
        if not self.status_shown:
            return
        line = f"moss: {state}" + (f", backlog {backlog_seconds:.0f} s" if backlog_seconds >= 1 else "")
        now = time.monotonic()
        if line == self._status and now - self._drawn < 1:
            return
        self._status, self._drawn = line, now
        stderr.file.write("\r\x1b[K" + line[: max(20, stderr.width - 1)])
        stderr.file.flush()

    def warning(self, text: str) -> None:
        if not self.quiet:
            self._clear()
            stderr.print(f"moss: warning: {text}", markup=False)

    def done(self, summary) -> None:
        self._clear()
        if self.quiet:
            return
        skipped = sum(g.end - g.start for g in summary.gaps)
        ending = "stopped" if summary.interrupted else "the stream ended"
        say(f"{ending}: {summary.utterances} utterances in {stream_time(summary.stream_seconds)} of audio"
            + (f"; {len(summary.gaps)} gaps ({skipped:.1f} s) not transcribed" if summary.gaps else ""))

    def _clear(self) -> None:
        if self.status_shown and self._status:
            stderr.file.write("\r\x1b[K")
            stderr.file.flush()
            self._status = ""


def _speaker(segment) -> str:
    return f"[{segment.speaker}] " if segment.speaker else ""


def live_options(max_utterance_seconds: float, max_backlog_seconds: float, clock: bool):
    from ..live.run import LiveOptions

    return LiveOptions(max_utterance_seconds, max_backlog_seconds, clock=clock)

