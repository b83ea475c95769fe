"""Questions about a time in long recordings: the time a question names, the window of audio around
it, the question moved into that window, and the prompt that combines partial answers."""

from __future__ import annotations

from dataclasses import replace

from ..audio.chunking import Chunk
from ..audio.constants import SAMPLE_RATE
from ..errors import QuestionError
from ..timeref import TimeSpan, find_time_span, format_clock, shift_times
from .recording import Recording
from .specs import ONE_REQUEST_SECONDS

ASK_MARGIN_SECONDS = 60.0  # audio kept on each side of the time a question names


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

