"""The order of work, written down once: audio -> chunk plan -> prompts -> engine -> parse -> results.

The engine is any backend that meets the contract in engine/base.py (`Engine`): the local model or
servers. Everything else is shared.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..audio.constants import SAMPLE_RATE
from ..audio.chunking import Chunk, ChunkPlanner, ChunkPolicy, plan_chunks, plan_range, split_chunk
from ..engine.base import Answer, DecodingOptions, Engine, RepetitionGuard, Request
from ..errors import QuestionError, RequestTooLongError, ServerError
from ..engine.loops import trim_loop
from .parsing import json_object, parse_bracketed, parse_events, strip_times
from ..audio.sources import AudioSource
from ..speakers.voices import SpeakerOptions
from ..results import Event, Result, Segment, Word
from ..text import join_words, printable
from .specs import ASK, LONG_WINDOW_SECONDS, ONE_REQUEST_SECONDS, Task
from ..timeref import TimeSpan, find_time_span, format_clock, shift_times
from ..audio.vad import SpeechScan, speech_regions, speech_scan

MAX_CHUNK_SECONDS = 120.0  # no chunk is ever longer
MIN_SPLIT_SECONDS = 4.0  # a chunk this short that still overflows is kept, with a warning
MAX_SPLIT_DEPTH = 4
ASK_MARGIN_SECONDS = 60.0  # audio kept on each side of the time a question names
WORD_GAP_SECONDS = 0.8  # a pause this long between words starts a new segment
LOOP_PHRASE_CHARS = (3, 120)  # a loop repeats a phrase this long ...
LOOP_REPEATS = 6  # ... at least this many times in a row, at the end of the output


class Progress(Protocol):
    def advance(self, seconds: float) -> None: ...

    def begin(self, label: str, total_seconds: float) -> None: ...  # a next stage over the same file


class _NoProgress:
    def advance(self, seconds: float) -> None:
        pass

    def begin(self, label: str, total_seconds: float) -> None:
        pass


@dataclass
class Recording:
    name: str  # how results and messages refer to it (usually the path)
    source: AudioSource  # 16 kHz mono, read by range

    @classmethod
    def from_array(cls, name: str, samples: np.ndarray) -> Recording:
        return cls(name, AudioSource.from_array(name, samples))

    @property
    def n_samples(self) -> int:
        return self.source.n_samples

    @property
    def duration(self) -> float:
        return self.source.duration

    def cut(self, chunk: Chunk) -> np.ndarray:
        return self.source.read(chunk.start, chunk.end)


@dataclass(frozen=True)
class PipelineOptions:
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    token_cap: int | None = None  # the user's --max-new-tokens; otherwise budgets scale with audio length
    guard: RepetitionGuard | None = field(default_factory=RepetitionGuard)
    speakers: SpeakerOptions | None = None  # label who speaks each segment and word (transcribe)
    max_request_seconds: float | None = None  # --max-request-seconds: the most audio in one request


class Pipeline:
    def __init__(self, engine: Engine, options: PipelineOptions = PipelineOptions(), progress: Progress | None = None):
        self.engine = engine
        self.options = options
        self.progress = progress or _NoProgress()

    # -- timed tasks: transcribe, events ------------------------------------------------------
    def timed(self, task: Task, recording: Recording) -> Result:
        """Chunks cut in silence, asked in batches, times mapped back to the file. Chunks are planned as
        the file's speech is found: the first are asked while later blocks are still scanned."""
        skip_silence = task.output != "events"  # sounds matter for events, not only speech
        longest = min(MAX_CHUNK_SECONDS, self._longest_request())
        policy = ChunkPolicy(min(task.chunk_seconds, longest), longest, skip_silence=skip_silence)
        result = Result(task.name, recording.name, recording.duration, self.engine.name)
        scan = speech_scan(recording.source)
        answered = 0
        with _about(recording):
            try:
                for speech, group in self._speaking_groups(recording, scan, policy):
                    for piece, answer in self._rounds(task, recording, group, speech, skip_silence, result.warnings):
                        self._collect(task, piece, answer, result)
                        answered += 1
            except BaseException:
                scan.stop()  # nothing more to plan: the scan need not go on beside the next file's work
                raise
        _warn_if_estimated(task, result, answered)
        if self.options.speakers is not None and task.output != "events":
            result.segments = self._label_speakers(result.segments, recording, scan.regions())
        return _finish(task, result)

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
        from ..speakers.labels import label_speakers, speech_spans
        from ..speakers.voices import load_diarizer

        options = self.options.speakers
        spans = speech_spans(segments, [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech])
        self.progress.begin(f"finding speakers in {Path(recording.name).name}", sum(b - a for a, b in spans))
        turns = load_diarizer(options.diarizer).turns(recording.source, spans, options.count, self.progress)
        return label_speakers(segments, turns, options.names)

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
                    finished.append((chunk, without_loop(answer)))
                    self.progress.advance(chunk.duration)
            pending = retry
        return sorted(finished, key=lambda pair: pair[0].start)

    def _split_for_retry(self, chunk, depth, answer, speech, skip_silence, warnings) -> list[Chunk]:
        reason = cut_short(answer)
        if reason is None:
            return []
        parts = []
        if chunk.duration >= MIN_SPLIT_SECONDS and depth < MAX_SPLIT_DEPTH:
            parts = [p for p in split_chunk(chunk, speech, skip_silence) if p.speech]
        if len(parts) < 2:
            kept = "kept up to where the loop began" if looped(answer) else "kept as it is"
            warnings.append(f"{_span(chunk)}: model output {reason}; {kept}")
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

    def _collect(self, task: Task, chunk: Chunk, answer: Answer, result: Result) -> None:
        text = printable(answer.text)
        if task.output == "events":
            result.events += events_from(text, chunk)
        else:
            result.segments += segments_from(text, chunk, words=task.output == "words")

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
            _parse_json_answer(result)
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
        if answer.finish_reason == "repetition":  # stopped by the guard: the loop is cut out
            answer = without_loop(answer)
            warnings.append("the answer looped on a repeated phrase; it was cut where the loop began")
        elif reason := cut_short(answer):  # `ask` decoded locally without a guard stays exactly as decoded
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
            if reason := cut_short(answer):
                warnings.append(f"{_span(window)}: the partial answer {reason}")
            partials.append((window, printable(without_loop(answer).text)))
            self.progress.advance(window.duration)
        options = replace(self.options.decoding, max_new_tokens=self.options.token_cap or 1024)
        return self.engine.ask_text(combine_prompt(partials, instruction), options, guard)

    def _ask_audio(self, task: Task, samples: np.ndarray, prompt: str, seconds: float, guard) -> Answer:
        return self.engine.ask(samples, prompt, self._options(task, seconds), guard)


@contextmanager
def _about(recording: Recording):
    """A server error names the recording it was about (the server names itself)."""
    try:
        yield
    except ServerError as exc:
        raise ServerError(f"{recording.name}: {exc}") from None


def asked_time(question: str, recording: Recording) -> TimeSpan | None:
    """The time a question asks about; QuestionError when it lies past the end of the recording."""
    span = find_time_span(question, recording.duration)
    if span is None:
        return None
    if span.start <= recording.duration:  # a range may run past the end ("between 15 and 99 minutes")
        return replace(span, end=min(span.end, recording.duration))
    words = span.text if len(span.text) <= 40 else span.text[:37] + "..."
    raise QuestionError(f"{recording.name}: the question asks about {words!r}, past the end: "
                        f"the recording is {format_clock(recording.duration)} long")


def looped(answer: Answer) -> bool:
    return answer.finish_reason == "repetition" or ends_in_loop(answer.raw_text or answer.text)


def without_loop(answer: Answer) -> Answer:
    """A looping answer cut after the first copy of the phrase it repeats: looping text never reaches
    an output. Any other answer as it is."""
    if not looped(answer):
        return answer
    return replace(answer, text=trim_loop(answer.text), raw_text=trim_loop(answer.raw_text))


def _fitted(chunk: Chunk, target: float, longest: float, speech, skip_silence: bool) -> list[Chunk]:
    """The chunk, or pieces of it cut in silence that each fit in `longest` seconds."""
    if chunk.duration <= longest:
        return [chunk]
    policy = ChunkPolicy(min(target, longest), longest, skip_silence=skip_silence)
    return [piece for piece in plan_range(chunk.start, chunk.end, speech, policy) if piece.speech]


def cut_short(answer: Answer) -> str | None:
    """Why an output cannot be trusted to be complete, or None."""
    if answer.finish_reason == "length":
        return "hit the token cap"
    if answer.finish_reason == "repetition" or ends_in_loop(answer.raw_text or answer.text):
        return "looped on a repeated phrase"
    return None


def ends_in_loop(text: str) -> bool:
    """Whether a text ends with one phrase of 3-120 characters said LOOP_REPEATS times or more in a
    row, whitespace aside. Slices of a bounded tail are compared: linear in the text's length."""
    shortest, longest = LOOP_PHRASE_CHARS
    tail = " ".join(text.split())[-(longest + 1) * LOOP_REPEATS:]
    for candidate in (tail, tail + " "):  # "la la la": the phrase is "la " once the last space is back
        for length in range(shortest, longest + 2):  # + 1: a phrase and the space between copies
            span = length * LOOP_REPEATS
            if span > len(candidate):
                break
            if candidate[-span:] == candidate[-length:] * LOOP_REPEATS:
                return True
    return False


def segments_from(output: str, chunk: Chunk, words: bool) -> list[Segment]:
    spans = parse_bracketed(output, chunk.duration)
    if not spans:  # no usable times: one segment over the chunk, flagged as estimated
        text = strip_times(output)
        return [Segment(chunk.offset, chunk.end_time, text, estimated=True)] if text else []
    if words:
        return group_words([Word(s.text, chunk.to_file_time(s.start), chunk.to_file_time(s.end)) for s in spans])
    return [Segment(chunk.to_file_time(s.start), chunk.to_file_time(s.end), s.text) for s in spans]


def events_from(output: str, chunk: Chunk) -> list[Event]:
    spans = parse_events(output, chunk.duration)
    if not spans:
        text = strip_times(output)
        return [Event(chunk.offset, chunk.end_time, text, estimated=True)] if text else []
    return [Event(chunk.to_file_time(s.start), chunk.to_file_time(s.end), s.text) for s in spans]


def group_words(words: list[Word]) -> list[Segment]:
    """Words into sentence-like segments: split after end punctuation or at a pause."""
    segments: list[Segment] = []
    for word in words:
        current = segments[-1] if segments else None
        if current is None or _ends_sentence(current.words[-1].word) or word.start - current.end >= WORD_GAP_SECONDS:
            segments.append(Segment(word.start, word.end, word.word, [word]))
            continue
        current.words.append(word)
        current.end = word.end
    for segment in segments:  # joined once each: a long run of words stays linear
        segment.text = join_words([w.word for w in segment.words])
    return segments


def window_around(span: TimeSpan, n_samples: int, longest: float = ONE_REQUEST_SECONDS) -> Chunk:
    """At most `longest` seconds (10 minutes) around the named time, with a margin on each side, inside the file."""
    margin = min(ASK_MARGIN_SECONDS, longest / 2)
    start = max(0.0, span.start - margin)
    end = max(span.end + margin, start + 2 * margin)  # near the start: same context
    end = min(end, start + longest, n_samples / SAMPLE_RATE)
    start = max(0.0, min(start, end - 2 * margin))
    return Chunk(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))


def relative_question(question: str, span: TimeSpan, offset: float) -> str:
    """The question with its time moved into the window: "at 7:30" -> "at 1:00" for a window at 6:30."""
    if span.start == span.end:
        words = span.text.split()
        lead = words[0] + " " if len(words) > 1 and words[0].isalpha() else ""
        return question.replace(span.text, f"{lead}{format_clock(span.start - offset)}", 1)
    if span.text.lower().startswith(("between", "from")):
        word = span.text.split()[0]
        return question.replace(
            span.text, f"{word} {format_clock(span.start - offset)} and {format_clock(span.end - offset)}", 1
        )
    return question


def combine_prompt(partials: list[tuple[Chunk, str]], instruction: str) -> str:
    parts = "\n\n".join(
        f"Part {i} ({format_clock(chunk.offset)} to {format_clock(chunk.end_time)}):\n"
        f"{shift_times(text, chunk.offset, chunk.duration)}"
        for i, (chunk, text) in enumerate(partials, start=1)
    )
    return (f"A long recording was analysed in {len(partials)} consecutive parts. Here is the result for each "
            f"part, with times counted from the start of the recording.\n\n{parts}\n\n{instruction}")


def _finish(task: Task, result: Result) -> Result:
    for index, segment in enumerate(result.segments):
        segment.id = index
    if task.output == "events":
        result.text = "\n".join(f"{e.start:.2f} - {e.end:.2f}: {e.description}" for e in result.events)
    else:
        result.text = join_words([s.text for s in result.segments])
    return result


def _warn_if_estimated(task: Task, result: Result, answered: int) -> None:
    estimated = sum(1 for item in [*result.segments, *result.events] if item.estimated)
    if not estimated:
        return
    hint = "; does the custom --prompt ask for the official timestamp format?" if task.custom_prompt else ""
    result.warnings.append(f"{estimated} of {answered} chunks came back without timestamps: their times are "
                           f"estimated (each spans its chunk){hint}")


def _parse_json_answer(result: Result) -> None:
    """A JSON answer (`caption --speech`) becomes an object in `voice`; other text is kept as it is."""
    parsed, body = json_object(result.text)
    if parsed is None:
        result.warnings.append("the answer is not a JSON object; kept as text")
        return
    result.voice, result.text = parsed, body


def _ends_sentence(word: str) -> bool:
    return word.rstrip("\"')]}»”’").endswith((".", "!", "?", "。", "！", "？"))


def _span(chunk: Chunk) -> str:
    return f"{format_clock(chunk.offset)}-{format_clock(chunk.end_time)}"
