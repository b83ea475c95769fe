"""One uploaded (or allowed) file through a task, on the engine the server opened once.

The HTTP routes and the MCP tools both come here: a `Job` says what is asked, `Worker.run` opens the
audio in the request's private folder, runs the pipeline and returns the same `Result` the CLI
writes. A `Watch` stops the work between chunks when the request is abandoned (client gone,
timeout): the pipeline reports progress often, and the watch raises there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..engine.base import DecodingOptions
from ..engine.factory import EngineSpec, open_engine, validated
from ..errors import AudioError, MossError, UsageError

TASKS = ("transcribe", "events", "caption", "describe-music", "ask", "summarize")


class Cancelled(MossError):
    """The request was abandoned (the client went away or its time ran out): its work stopped."""


class TooLong(AudioError):
    """The audio is longer than the server takes (--max-audio-seconds)."""


@dataclass(frozen=True)
class Job:
    """What one request asks of one recording."""

    task: str  # one of TASKS
    path: Path  # the audio on this machine
    name: str  # how results and messages name it (the upload's file name, never our temporary path)
    words: bool = False  # transcribe: word-level times
    speakers: str | None = None  # transcribe: "auto" or a number of speakers
    speech: bool = False  # caption: describe the voice
    questions: tuple[str, ...] = ()  # ask
    language: str | None = None  # summarize: the digest's language
    context: str | None = None  # what the recording is about (OpenAI's `prompt`)
    temperature: float | None = None
    kind: str = "auto"  # summarize: meeting, podcast, lecture, interview or auto
    min_chapter_seconds: float | None = None  # summarize: shortest chapter; None: the CLI's default
    voices: bool = False  # transcribe, summarize: each speaker's voice profile and each segment's mood


@dataclass
class Watch:
    """The pipeline's progress sink for one request: raises Cancelled once the request is abandoned."""

    cancel: threading.Event = field(default_factory=threading.Event)

    def advance(self, seconds: float) -> None:
        self.check()

    def begin(self, label: str, total_seconds: float) -> None:
        self.check()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the request was abandoned")


class Worker:
    """The engine, opened once for every request, and the tasks run on it."""

    def __init__(self, spec: EngineSpec, decoding: DecodingOptions = DecodingOptions(), token_cap: int | None = None,
                 max_audio_seconds: float | None = None):
        self.spec = validated(spec)
        self.decoding = decoding
        self.token_cap = token_cap
        self.max_audio_seconds = max_audio_seconds
        self._engine = None
        self._lock = threading.Lock()

    def start(self):
        """Load the model (or connect to the servers) now, once; later calls return the same engine."""
        with self._lock:
            if self._engine is None:
                from ..engine.shared import SharedBatches

                self._engine = SharedBatches(open_engine(self.spec))  # requests at once fill one batch
            return self._engine

    @property
    def model(self) -> str:
        """The name clients see in /v1/models and in results."""
        return self._engine.name if self._engine is not None else self.spec.server_model or self.spec.model

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def run(self, job: Job, watch: Watch, workdir: Path, keep: Callable | None = None):
        """The job's Result (a list for `ask`); `keep(source)` is called while the audio is open
        (the report page reads its waveform there)."""
        from ..tasks.pipeline import Pipeline

        engine = self.start()
        recording = self.open(job, workdir)
        try:
            watch.check()
            with engine.member():
                results = _RUNS[job.task](Pipeline(engine, self.options(job), watch), recording, job)
            if keep is not None:
                keep(recording.source)
            return results
        finally:
            recording.source.close()

    def stream(self, job: Job, watch: Watch, workdir: Path, emit: Callable):
        """A transcript chunk by chunk: `emit(None)` once the audio is open, then `emit(chunk_result)`
        for each chunk, in time order; returns the whole Result (segment ids and text, as `run` gives)."""
        from ..results import Result
        from ..tasks.answers import finish_result
        from ..tasks.pipeline import Pipeline

        engine = self.start()
        recording = self.open(job, workdir)
        task = transcribe_task(job)
        result = Result(task.name, recording.name, recording.duration, engine.name)
        try:
            emit(None)
            with engine.member():
                for piece in Pipeline(engine, self.options(job), watch).stream(task, recording):
                    watch.check()
                    result.segments += piece.segments
                    result.warnings += piece.warnings
                    emit(piece)
        finally:
            recording.source.close()
        return finish_result(task, result)

    def open(self, job: Job, workdir: Path):
        """The job's audio decoded (into `workdir` when it must be converted), its length checked."""
        from ..audio.constants import MIN_SAMPLES, SAMPLE_RATE
        from ..audio.sources import open_audio
        from ..batch.runner import reading_errors, unreadable
        from ..tasks.recording import Recording

        try:
            source = open_audio(job.path, workdir)
        except AudioError as exc:
            raise AudioError(str(exc).replace(str(job.path), job.name)) from None
        except reading_errors() as exc:
            raise unreadable(job.name, exc) from None
        problem = None
        if source.n_samples < MIN_SAMPLES:
            problem = AudioError(f"{job.name}: too short ({source.n_samples / SAMPLE_RATE:.3f} s of audio)")
        elif self.max_audio_seconds and source.duration > self.max_audio_seconds:
            problem = TooLong(f"{job.name}: {source.duration:.1f} s of audio; this server takes at most "
                              f"{self.max_audio_seconds:g} s")
        if problem is not None:
            source.close()
            raise problem
        return Recording(job.name, source)

    def options(self, job: Job):
        from ..tasks.pipeline import PipelineOptions

        decoding = self.decoding if job.temperature is None else replace(self.decoding, temperature=job.temperature)
        return PipelineOptions(decoding=decoding, token_cap=self.token_cap, speakers=speaker_options(job),
                               max_request_seconds=self.spec.max_request_seconds)


def transcribe_task(job: Job):
    from ..tasks.specs import TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS

    return hinted(TRANSCRIBE_WORDS if job.words else TRANSCRIBE_SENTENCES, job)


def hinted(task, job: Job):
    """The task's official prompt with the request's language and context after it, as --language and
    --context add them."""
    from ..tasks.hints import hints_from_options

    try:
        return task.with_hints(hints_from_options(job.language, job.context, None).sentences())
    except (MossError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def speaker_options(job: Job):
    """The job's speakers: a count or auto; voices alone find them (auto), as --voices does."""
    if job.speakers is None and not job.voices:
        return None
    from ..speakers.voices import SpeakerOptions

    count = (job.speakers or "auto").strip().lower()
    if count != "auto" and not (count.isdigit() and int(count) >= 1):
        raise UsageError(f"speakers takes a number of speakers (1 or more) or auto, not {job.speakers!r}")
    return SpeakerOptions(None if count == "auto" else int(count), (), "resemblyzer", profiles=job.voices)


def _transcribe(pipeline, recording, job: Job):
    return pipeline.timed(transcribe_task(job), recording)


def _events(pipeline, recording, job: Job):
    from ..tasks.specs import EVENTS

    return pipeline.timed(hinted(EVENTS, replace(job, language=None)), recording)


def _described(pipeline, recording, job: Job):
    from ..tasks.specs import CAPTION, MUSIC, SPEECH_CAPTION

    task = MUSIC if job.task == "describe-music" else SPEECH_CAPTION if job.speech else CAPTION
    task = hinted(task, replace(job, language=None))
    return pipeline.described(task, recording, task.combine_instruction)


def _ask(pipeline, recording, job: Job):
    if not job.questions or not all(q.strip() for q in job.questions):
        raise UsageError("ask needs a question")
    return pipeline.ask_all(recording, list(job.questions))


def _summarize(pipeline, recording, job: Job):
    from ..tasks.digest import summarize

    return summarize(pipeline, recording, digest_settings(job))


def digest_settings(job: Job):
    """`moss summarize`'s settings from the request: its kind, language, context and shortest chapter."""
    import math

    from ..tasks.digest import DigestSettings
    from ..tasks.digest_prompts import KINDS
    from ..tasks.hints import hints_from_options

    if job.kind not in ("auto", *KINDS):
        raise UsageError(f"kind {job.kind!r}: one of auto, {', '.join(KINDS)}")
    shortest = DigestSettings.min_chapter_seconds if job.min_chapter_seconds is None else job.min_chapter_seconds
    if not (math.isfinite(shortest) and shortest >= 0):
        raise UsageError(f"min_chapter_seconds must be 0 or more, not {shortest:g}")
    try:
        hints = hints_from_options(job.language, job.context, None)
    except (MossError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return DigestSettings(job.kind, hints.language, hints.context, shortest)


_RUNS = {"transcribe": _transcribe, "events": _events, "caption": _described, "describe-music": _described,
         "ask": _ask, "summarize": _summarize}
