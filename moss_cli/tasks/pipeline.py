"""The order of work, written down once: audio -> chunk plan -> prompts -> engine -> parse -> results.

The engine is anything that keeps the contract of engine/base.py: the local model, servers, or the
two shared by several files at once. Everything else is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio.chunking import Chunk, ChunkPlanner, ChunkPolicy, plan_chunks, plan_range, split_chunk
from ..audio.constants import SAMPLE_RATE
from ..audio.vad import SpeechScan, speech_regions, speech_scan
from ..engine.base import Answer, DecodingOptions, Engine, RepetitionGuard, Request
from ..errors import RequestTooLongError, ServerError
from ..progress import NoProgress, Progress
from ..results import ChunkResult, Result, Segment
from ..speakers.voices import SpeakerOptions
from ..text import printable
from ..timeref import TimeSpan, format_clock, shift_times
from .answers import (
    ONLY_REASONING,
    cut_short,
    events_from,
    finish_result,
    looped,
    only_reasoning,
    parse_json_answer,
    segments_from,
    span_text,
    warn_if_estimated,
    without_loop,
)
from .asking import asked_time, combine_prompt, relative_question, window_around
from .recording import Recording
from .specs import ASK, LONG_WINDOW_SECONDS, ONE_REQUEST_SECONDS, Task
from .translate import Translation, translate_result

MAX_CHUNK_SECONDS = 120.0  # no chunk is ever longer
MIN_SPLIT_SECONDS = 4.0  # a chunk this short that still overflows is kept, with a warning
MAX_SPLIT_DEPTH = 4
TIMED_OUTPUTS = ("sentences", "words", "events")  # the tasks answered chunk by chunk


@dataclass(frozen=True)
class PipelineOptions:
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    token_cap: int | None = None  # the user's --max-new-tokens; otherwise budgets scale with audio length
    guard: RepetitionGuard | None = field(default_factory=RepetitionGuard)
    speakers: SpeakerOptions | None = None  # label who speaks each segment and word (transcribe)
    max_request_seconds: float | None = None  # --max-request-seconds: the most audio in one request
    translation: Translation | None = None  # --translate: the texts translated once the result is whole


class Pipeline:
    def __init__(self, engine: Engine, options: PipelineOptions = PipelineOptions(), progress: Progress | None = None):
        self.engine = engine
        self.options = options
        self.progress = progress or NoProgress()

    # -- timed tasks: transcribe, events ------------------------------------------------------
    def timed(self, task: Task, recording: Recording) -> Result:
        """Chunks cut in silence, asked in batches, times mapped back to the file: `stream` collected."""
        result = Result(task.name, recording.name, recording.duration, self.engine.name)
        scan = speech_scan(recording.source)
        answered = 0
        for piece in self._stream(task, recording, scan):
            result.segments += piece.segments
            result.events += piece.events
            result.warnings += piece.warnings
            answered += 1
        if not answered and task.output != "events":  # events are asked over sounds too, never skipped
            # Nothing was asked: silent, music or noise only. An empty output alone looks like a failure.
            result.warnings.append("no speech found: the transcript is empty")
        warn_if_estimated(task, result, answered)
        if self.options.speakers is not None and task.output != "events":
            result.segments = self._label_speakers(result.segments, recording, scan.regions())
        result = finish_result(task, result)
        if self.options.speakers is not None and self.options.speakers.profiles and task.output != "events":
            report = self.voices(recording, result.segments)  # on the words as spoken, before any translation
            result.voices = report.to_dict()
            result.warnings += report.warnings
        if self.options.translation is None:
            return result
        with _about(recording):
            return translate_result(result, self.engine, self.options.translation, self.options.decoding,
                                    self.options.token_cap, self.options.guard, self.progress)

    def stream(self, task: Task, recording: Recording) -> Iterator[ChunkResult]:
        """Each chunk's result as soon as it is parsed, in time order (transcribe, events): live input,
        servers and writers that append take them as they come. Chunks are planned as the file's speech
        is found, so the first are asked while later blocks are still scanned. Segment ids and speaker
        labels come with the whole result (`timed`)."""
        return self._stream(task, recording, speech_scan(recording.source))

    def _stream(self, task: Task, recording: Recording, scan: SpeechScan) -> Iterator[ChunkResult]:
        if task.output not in TIMED_OUTPUTS:
            raise ValueError(f"{task.name} answers about the whole recording, not chunk by chunk")
        skip_silence = task.output != "events"  # sounds matter for events, not only speech
        longest = min(MAX_CHUNK_SECONDS, self._longest_request())
        policy = ChunkPolicy(min(task.chunk_seconds, longest), longest, skip_silence=skip_silence)
        with _about(recording):
            try:
                for speech, group in self._speaking_groups(recording, scan, policy):
                    warnings: list[str] = []  # the group's, in the order they arose: with its first chunk
                    for index, (chunk, answer) in enumerate(
                            self._rounds(task, recording, group, speech, skip_silence, warnings)):
                        yield self._chunk_result(task, chunk, answer, [] if index else warnings)
            except BaseException:  # also a consumer that stops early (GeneratorExit)
                scan.stop()  # nothing more to plan: the scan need not go on beside the next file's work
                raise

    def _speaking_groups(self, recording: Recording, scan: SpeechScan, policy: ChunkPolicy):
        """The chunks with speech, in groups of the engine's parallelism (memory stays bounded), each
        with the speech found so far (final within its chunks), as soon as the scan settles them. The
        groups are those of the whole file's plan, whenever the scan gets there."""
        planner = ChunkPlanner(recording.n_samples, policy)
        size = max(1, self.engine.parallelism)
        waiting: list[Chunk] = []
        known_until, covered = 0, 0
        while not planner.finished:
            speech, known_until = scan.found(beyond=known_until)
            chunks = planner.advance(speech, known_until)
            waiting += [chunk for chunk in chunks if chunk.speech]
            # Silence is done as soon as it is planned; speech as it is answered (_rounds).
            covered, before = planner.covered, covered
            self.progress.advance((covered - before) / SAMPLE_RATE - sum(c.duration for c in chunks if c.speech))
            while len(waiting) >= size or (planner.finished and waiting):
                yield speech, waiting[:size]
                waiting = waiting[size:]

    def _label_speakers(self, segments: list[Segment], recording: Recording, speech) -> list[Segment]:
        """Who says what: voices told apart in the segments' speech, on this machine (with --server too)."""
        from ..speakers.known import known_voices
        from ..speakers.labels import label_speakers, speech_spans
        from ..speakers.voices import load_diarizer

        options = self.options.speakers
        diarizer = load_diarizer(options.diarizer)
        known = known_voices(options.samples, diarizer)
        spans = speech_spans(segments, [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech])
        self.progress.begin(f"finding speakers in {Path(recording.name).name}", sum(b - a for a, b in spans))
        turns = diarizer.turns(recording.source, spans, options.count, self.progress, options.bounds, known)
        return label_speakers(segments, turns, options.names)

    def voices(self, recording: Recording, segments: list[Segment]):
        """--voices: each speaker's profile and each segment's emotion and tone, asked of the model (a
        VoiceReport): of a transcript just made, or one reused (summarize)."""
        from .voices import describe_voices

        with _about(recording):
            return describe_voices(recording, segments, self.engine, self.options.decoding, self.options.token_cap)

    def _rounds(self, task, recording, chunks, speech, skip_silence, warnings) -> list[tuple[Chunk, Answer]]:
        """Ask about all chunks together; output cut off by the token cap or stuck in a loop is asked
        again in halves, in the next round. Returns (chunk, answer) pairs in time order."""
        finished: list[tuple[Chunk, Answer]] = []
        pending = [(chunk, 0) for chunk in chunks]
        while pending:
            longest = self._longest_request()
            pending = [(part, depth) for chunk, depth in pending
                       for part in _fitted(chunk, task.chunk_seconds, longest, speech, skip_silence)]
            requests = [Request(recording.cut(chunk), task.prompt, self._options(task, chunk.duration),
                                self.options.guard) for chunk, _ in pending]
            try:
                answers = self.engine.ask_many(requests)
            except RequestTooLongError:  # a server said how much fits: cut the chunks to fit, ask again
                self._check_shorter(longest)
                continue
            retry = []
            for (chunk, depth), answer in zip(pending, answers):
                parts = self._split_for_retry(chunk, depth, answer, speech, skip_silence, warnings)
                if parts:
                    retry += [(part, depth + 1) for part in parts]
                else:
                    finished.append((chunk, without_loop(answer, chunk.duration)))
                    self.progress.advance(chunk.duration)
            pending = retry
        return sorted(finished, key=lambda pair: pair[0].start)

    def _split_for_retry(self, chunk, depth, answer, speech, skip_silence, warnings) -> list[Chunk]:
        reason = cut_short(answer, chunk.duration)
        if reason is None:
            return []
        parts = []
        if chunk.duration >= MIN_SPLIT_SECONDS and depth < MAX_SPLIT_DEPTH:
            parts = [p for p in split_chunk(chunk, speech, skip_silence) if p.speech]
        if len(parts) < 2:
            kept = "kept up to where the loop began" if looped(answer, chunk.duration) else "kept as it is"
            warnings.append(f"{span_text(chunk)}: model output {reason}; {kept}")
            return []
        return parts

    def _longest_request(self) -> float:
        """Seconds of audio one request may carry: 10 minutes, --max-request-seconds, or what a
        server said fits."""
        limits = (ONE_REQUEST_SECONDS, self.options.max_request_seconds, self.engine.max_request_seconds)
        return min(limit for limit in limits if limit)

    def _check_shorter(self, longest: float) -> None:
        """After a too-long refusal the limit must have come down, or asking again would loop."""
        if self._longest_request() >= longest:
            raise ServerError(f"a server refused {longest:.1f} s of audio as too long but said no shorter limit")

    def _fitting(self, attempt):
        """`attempt(longest)`, again with a shorter `longest` each time a server says the audio does not
        fit (at most once per limit: the engine sends no request over a limit it knows)."""
        while True:
            longest = self._longest_request()
            try:
                return attempt(longest)
            except RequestTooLongError:
                self._check_shorter(longest)

    def _budget(self, task: Task, seconds: float) -> int:
        return task.token_budget(seconds, self.options.token_cap, thinking=self.engine.thinking)

    def _options(self, task: Task, seconds: float) -> DecodingOptions:
        return replace(self.options.decoding, max_new_tokens=self._budget(task, seconds))

    def _chunk_result(self, task: Task, chunk: Chunk, answer: Answer, warnings: list[str]) -> ChunkResult:
        text = printable(answer.text)
        piece = ChunkResult(chunk.offset, chunk.end_time, warnings=warnings)
        if task.output == "events":
            piece.events = events_from(text, chunk)
        else:
            piece.segments = segments_from(text, chunk, words=task.output == "words")
        return piece

    # -- text tasks: caption, describe-music, ask ------------------------------------------------
    def described(self, task: Task, recording: Recording, combine_instruction: str) -> Result:
        """One request up to 10 minutes; longer audio in windows, combined by a text-only request."""
        def attempt(longest: float) -> Result:
            warnings: list[str] = []
            answer = self._over_windows(task, recording, task.prompt, combine_instruction, self.options.guard,
                                        warnings, longest)
            return self._answered(task, recording, answer, warnings=warnings)

        with _about(recording):
            result = self._fitting(attempt)
        if task.output == "json":
            parse_json_answer(result)
        return result

    def ask(self, recording: Recording, question: str) -> Result:
        """Up to 10 minutes: the whole file, decoded exactly as asked (the local engine without loop guard).

        Longer: the window around a time the question asks about, or every window, combined.
        A time past the end of the recording is an error, before anything is asked.
        """
        span = asked_time(question, recording)
        with _about(recording):
            return self._fitting(lambda longest: self._ask_once(recording, question, span, longest))

    def _ask_once(self, recording: Recording, question: str, span: TimeSpan | None, longest: float) -> Result:
        warnings: list[str] = []
        if span is None or recording.duration <= longest:
            instruction = f"Using these partial answers, answer this question about the whole recording: {question}"
            answer = self._over_windows(ASK, recording, question, instruction, None, warnings, longest)
            return self._answered(ASK, recording, answer, question, warnings)
        window = window_around(span, recording.n_samples, longest)
        answer = self._ask_window(recording, question, span, window)
        return self._answered(ASK, recording, answer, question, warnings, window)

    def ask_all(self, recording: Recording, questions: list[str]) -> list[Result]:
        """Several questions: up to 10 minutes, the audio is encoded and pre-filled once for all."""
        for question in questions:  # every question checked before any is asked
            asked_time(question, recording)
        if recording.duration > self._longest_request() or len(questions) < 2:
            return [self.ask(recording, question) for question in questions]
        options = self._options(ASK, recording.duration)
        with _about(recording):
            try:
                answers = self.engine.ask_questions(recording.source.read(), questions, options, None)
            except RequestTooLongError:  # the engine knows the limit now: each question asks in windows
                answers = None
        if answers is None:
            return [self.ask(recording, question) for question in questions]
        self.progress.advance(recording.duration)
        return [self._answered(ASK, recording, a, q) for q, a in zip(questions, answers)]

    def _answered(self, task: Task, recording: Recording, answer: Answer, question: str | None = None,
                  warnings: list[str] | None = None, window: Chunk | None = None) -> Result:
        """The result of a text task; times in an answer about a window are moved to file times."""
        warnings = list(warnings or [])
        seconds = recording.duration if window is None else window.duration
        if answer.finish_reason == "repetition":  # stopped by the guard: the loop is cut out
            answer = without_loop(answer, seconds)
            warnings.append("the answer looped on a repeated phrase; it was cut where the loop began")
        elif only_reasoning(answer):  # an empty answer must not pass for one that had nothing to say
            warnings.append(f"the answer {ONLY_REASONING}")
        elif reason := cut_short(answer, seconds):  # `ask` decoded locally without a guard stays exactly as decoded
            hint = " (--max-new-tokens raises the cap)" if answer.finish_reason == "length" else ""
            warnings.append(f"the answer {reason}{hint}; it may be incomplete")
        raw = printable(answer.text)
        text = raw if window is None else shift_times(raw, window.offset, window.duration)
        return Result(task.name, recording.name, recording.duration, self.engine.name, text=text,
                      question=question, reasoning=printable(answer.reasoning), finish_reason=answer.finish_reason,
                      warnings=warnings, raw_text=raw,
                      window=None if window is None else (window.offset, window.end_time))

    def _ask_window(self, recording: Recording, question: str, span: TimeSpan, window: Chunk) -> Answer:
        local = relative_question(question, span, window.offset)
        note = (f"(This audio is the part from {format_clock(window.offset)} to "
                f"{format_clock(window.end_time)} of a longer recording; "
                f"give times counted from the start of this part.)")
        answer = self._ask_audio(ASK, recording.cut(window), f"{local}\n{note}", window.duration, guard=None)
        self.progress.advance(recording.duration)
        return answer

    def _over_windows(self, task: Task, recording: Recording, prompt: str, instruction: str, guard,
                      warnings: list[str], longest: float) -> Answer:
        """One request when the recording fits in `longest` seconds, else windows and a combining request."""
        if recording.duration <= longest:
            answer = self._ask_audio(task, recording.source.read(), prompt, recording.duration, guard)
            self.progress.advance(recording.duration)
            return answer
        speech = speech_regions(recording.source)
        target = min(LONG_WINDOW_SECONDS, longest * LONG_WINDOW_SECONDS / ONE_REQUEST_SECONDS)
        windows = plan_chunks(recording.n_samples, speech, ChunkPolicy(target, longest))
        partials = []
        for window in windows:
            answer = self._ask_audio(task, recording.cut(window), prompt, window.duration, guard)
            if reason := cut_short(answer, window.duration):
                warnings.append(f"{span_text(window)}: the partial answer {reason}")
            partials.append((window, printable(without_loop(answer, window.duration).text)))
            self.progress.advance(window.duration)
        options = replace(self.options.decoding, max_new_tokens=self.options.token_cap or 1024)
        return self.engine.ask_text(combine_prompt(partials, instruction), options, guard)

    def listen(self, task: Task, recording: Recording, warnings: list[str]) -> list[tuple[Chunk, str]]:
        """The answer to the task's prompt about each window of the recording, in time order, its times
        moved to file times: one window up to 10 minutes, else windows of about 8 cut in silence (as
        `described` plans them), asked the engine's parallelism at a time."""
        with _about(recording):
            return self._fitting(lambda longest: self._listen(task, recording, warnings, longest))

    def _listen(self, task: Task, recording: Recording, warnings: list[str], longest: float):
        if recording.duration <= longest:
            windows = [Chunk(0, recording.n_samples)]
        else:
            target = min(LONG_WINDOW_SECONDS, longest * LONG_WINDOW_SECONDS / ONE_REQUEST_SECONDS)
            windows = plan_chunks(recording.n_samples, speech_regions(recording.source), ChunkPolicy(target, longest))
        heard, size = [], max(1, self.engine.parallelism)
        for first in range(0, len(windows), size):  # a group at a time: the audio held stays bounded
            group = windows[first : first + size]
            requests = [Request(recording.cut(window), task.prompt, self._options(task, window.duration),
                                self.options.guard) for window in group]
            for window, answer in zip(group, self.engine.ask_many(requests)):
                if reason := cut_short(answer, window.duration):
                    warnings.append(f"{span_text(window)}: the notes {reason}")
                text = printable(without_loop(answer, window.duration).text)
                heard.append((window, shift_times(text, window.offset, window.duration)))
                self.progress.advance(window.duration)
        return heard

    def _ask_audio(self, task: Task, samples: np.ndarray, prompt: str, seconds: float, guard) -> Answer:
        return self.engine.ask(samples, prompt, self._options(task, seconds), guard)


@contextmanager
def _about(recording: Recording):
    """A server error names the recording it was about (the server names itself)."""
    try:
        yield
    except ServerError as exc:
        raise ServerError(f"{recording.name}: {exc}") from None


def _fitted(chunk: Chunk, target: float, longest: float, speech, skip_silence: bool) -> list[Chunk]:
    """The chunk, or pieces of it cut in silence that each fit in `longest` seconds."""
    if chunk.duration <= longest:
        return [chunk]
    policy = ChunkPolicy(min(target, longest), longest, skip_silence=skip_silence)
    return [piece for piece in plan_range(chunk.start, chunk.end, speech, policy) if piece.speech]


