"""Subtitle cues from results: lines of at most 42 characters, 2 lines and ~7 s per cue by default."""

from __future__ import annotations

from dataclasses import dataclass

from .results import Result, Segment, seconds_to_ms
from .text import split_tokens, wrap_lines


@dataclass(frozen=True)
class CueLayout:
    max_line_chars: int = 42  # the usual broadcast line length
    max_lines: int = 2
    max_seconds: float = 7.0
    word_cues: bool = False  # one cue per word (needs word times)

    def __post_init__(self):
        if self.max_line_chars < 1 or self.max_lines < 1 or self.max_seconds <= 0:
            raise ValueError("cue layout limits must be positive")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


def cues_for(result: Result, layout: CueLayout = CueLayout()) -> list[Cue]:
    """Cues in time order; every cue lasts at least 1 ms. Events become one cue each."""
    if result.task == "events":
        cues = [_cue(e.start, e.end, "\n".join(wrap_lines(split_tokens(e.description, layout.max_line_chars),
                                                             layout.max_line_chars))) for e in result.events]
    else:
        cues = [cue for segment in result.segments for cue in segment_cues(segment, layout)]
    return sorted((c for c in cues if c.text), key=lambda c: (c.start_ms, c.end_ms))


def segment_cues(segment: Segment, layout: CueLayout) -> list[Cue]:
    if layout.word_cues and segment.words:
        return [_cue(w.start, w.end, w.word) for w in segment.words]
    if segment.words:
        timed = [(w.word, w.start, w.end) for w in segment.words]
        return [_cue(group[0][1], group[-1][2], _lines(group, layout)) for group in _pack(timed, layout)]
    # No word times: share the span out by characters. Unspaced runs (CJK) are cut small enough
    # that a piece fits in max_seconds; a lone long-lasting word is shown for max_seconds at most.
    duration = max(segment.end - segment.start, 1e-3)
    chars_in_time = max(1, int(layout.max_seconds * max(len(segment.text), 1) / duration))
    tokens = split_tokens(segment.text, min(layout.max_line_chars, chars_in_time))
    timed = _spread(tokens, segment.start, segment.end)
    return [_cue(group[0][1], min(group[-1][2], group[0][1] + layout.max_seconds), _lines(group, layout))
            for group in _pack(timed, layout)]


def _pack(timed: list[tuple[str, float, float]], layout: CueLayout) -> list[list[tuple[str, float, float]]]:
    """Greedy: add words to a cue while its lines fit and it stays under max_seconds."""
    groups: list[list[tuple[str, float, float]]] = []
    for item in timed:
        if groups:
            candidate = groups[-1] + [item]
            fits = len(wrap_lines([w for w, _, _ in candidate], layout.max_line_chars)) <= layout.max_lines
            if fits and candidate[-1][2] - candidate[0][1] <= layout.max_seconds:
                groups[-1] = candidate
                continue
        groups.append([item])
    return groups


def _spread(tokens: list[str], start: float, end: float) -> list[tuple[str, float, float]]:
    """Times for words we have no times for: the segment's span shared out by character count."""
    weights = [len(t) + 1 for t in tokens]
    total = sum(weights) or 1
    timed, elapsed = [], 0
    for token, weight in zip(tokens, weights):
        a = start + (end - start) * elapsed / total
        elapsed += weight
        timed.append((token, a, start + (end - start) * elapsed / total))
    return timed


def _lines(group, layout: CueLayout) -> str:
    return "\n".join(wrap_lines([w for w, _, _ in group], layout.max_line_chars))


def _cue(start: float, end: float, text: str) -> Cue:
    start_ms = seconds_to_ms(start)
    return Cue(start_ms, max(seconds_to_ms(end), start_ms + 1), text.strip())


def format_timestamp(ms: int, decimal: str = ",") -> str:
    """Integer milliseconds -> HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (VTT, with decimal='.')."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal}{millis:03d}"

