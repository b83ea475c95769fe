"""Answers into results: the model's timed text parsed into segments, words and events at file times,
loops found and cut out, and why an answer may be incomplete."""

from __future__ import annotations

from dataclasses import replace

from ..audio.chunking import Chunk
from ..engine.base import Answer, reasoning_unfinished
from ..engine.loops import rising_loop, trim_loop
from ..results import Event, Result, Segment, Word
from ..text import join_words
from ..timeref import format_clock
from .parsing import json_object, parse_bracketed, parse_events, strip_times
from .specs import Task

WORD_GAP_SECONDS = 0.8  # a pause this long between words starts a new segment
LOOP_PHRASE_CHARS = (3, 120)  # a loop repeats a phrase this long ...
LOOP_REPEATS = 6  # ... at least this many times in a row, at the end of the output
ONLY_REASONING = "is only unfinished reasoning; --max-new-tokens raises the cap"


def looped(answer: Answer, seconds: float | None = None) -> bool:
    """Whether an answer loops: the guard stopped it, or it ends in a loop (`ends_in_loop`)."""
    return answer.finish_reason == "repetition" or ends_in_loop(answer.raw_text or answer.text, seconds)


def without_loop(answer: Answer, seconds: float | None = None) -> Answer:
    """A looping answer cut after the first copy of the phrase it repeats: looping text never reaches
    an output. Any other answer as it is. `seconds`: of audio the answer is about."""
    if not looped(answer, seconds):
        return answer
    return replace(answer, text=trim_loop(answer.text, seconds), raw_text=trim_loop(answer.raw_text, seconds))


def only_reasoning(answer: Answer) -> bool:
    """An answer that is reasoning cut off before the answer began: its text is empty because a
    <think> was never closed, or a server's reasoning field ran into the token cap. Said, as an empty
    answer alone looks like silence."""
    unfinished = answer.finish_reason == "length" or reasoning_unfinished(answer.raw_text)
    return not answer.text.strip() and bool(answer.reasoning) and unfinished


def cut_short(answer: Answer, seconds: float | None = None) -> str | None:
    """Why an output cannot be trusted to be complete, or None. `seconds`: of audio it is about."""
    if only_reasoning(answer):
        return ONLY_REASONING
    if answer.finish_reason == "length":
        return "hit the token cap"
    if looped(answer, seconds):
        return "looped on a repeated phrase"
    return None


def ends_in_loop(text: str, seconds: float | None = None) -> bool:
    """Whether a text ends with one phrase of 3-120 characters said LOOP_REPEATS times or more in a
    row, whitespace aside; or, given the `seconds` of audio it is about, in a phrase repeated with
    rising times that run past the audio's end (the rule a server's stream is stopped by, so a local
    and a remote engine's same answer make the same result). Slices of a bounded tail are compared:
    linear in the text's length."""
    if seconds is not None and rising_loop(text, seconds):
        return True
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


def finish_result(task: Task, result: Result) -> Result:
    for index, segment in enumerate(result.segments):
        segment.id = index
    result.text = joined_text(result)
    return result


def joined_text(result: Result) -> str:
    """A timed result's whole text: the transcript's sentences joined, or events one a line."""
    if result.task == "events":
        return "\n".join(f"{e.start:.2f} - {e.end:.2f}: {e.description}" for e in result.events)
    return join_words([s.text for s in result.segments])


def warn_if_estimated(task: Task, result: Result, answered: int) -> None:
    estimated = sum(1 for item in [*result.segments, *result.events] if item.estimated)
    if not estimated:
        return
    hint = "; does the custom --prompt ask for the official timestamp format?" if task.custom_prompt else ""
    result.warnings.append(f"{estimated} of {answered} chunks came back without timestamps: their times are "
                           f"estimated (each spans its chunk){hint}")


def parse_json_answer(result: Result) -> None:
    """A JSON answer (`caption --speech`) becomes an object in `voice`; other text is kept as it is."""
    parsed, body = json_object(result.text)
    if parsed is None:
        result.warnings.append("the answer is not a JSON object; kept as text")
        return
    result.voice, result.text = parsed, body


def _ends_sentence(word: str) -> bool:
    return word.rstrip("\"')]}»”’").endswith((".", "!", "?", "。", "！", "？"))


def span_text(chunk: Chunk) -> str:
    return f"{format_clock(chunk.offset)}-{format_clock(chunk.end_time)}"

