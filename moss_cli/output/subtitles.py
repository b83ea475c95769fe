"""Subtitle cues from results, laid out and timed by broadcast rules.

Defaults follow the common broadcast and streaming style guides: at most 42 columns x 2 lines,
a cue on screen for at most 7 s and at least 5/6 s, at most 20 characters per second, and at
least 2 frames (66 ms) between cues. A sentence too long for one cue is cut where a subtitler
would cut it (after punctuation, at a pause, before a conjunction) into cues that each respect the
limits; a cue too short or too fast to read is extended into the silence after it, or joined to a
neighbour when there is no silence to take. Cues never start before their speech does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..results import Event, Result, Segment, seconds_to_ms
from ..text import needs_space, split_text
from .linebreak import Atom, LineFill, Piece, balanced_lines, break_cost, join_pieces, lines_needed, make_atoms

CUE_COST = 2.0  # splitting a sentence into one more cue costs more than any one bad break
FILL_WEIGHT = 0.5  # cues of a sentence about equally full
LONE_WORD_PENALTY = 3.0  # a cue holding a single word of a longer sentence
SHORT_PENALTY = 3.0  # a cue that cannot stay on screen long enough to be read (worse than joining) ...
SHORT_SHARE_PENALTY = 10.0  # ... and more so the more of its reading time it lacks
MAX_PAUSE_BONUS = 0.3  # a pause in the speech is a good place to cut, up to this much better
JOIN_COST = 2.5  # parts of two sentences in one cue: worse than one more cue, better than an unreadable one
JOIN_PAUSE_COST = 2.0  # per second of silence inside a cue (its later words show early)


@dataclass(frozen=True)
class CueLayout:
    max_line_width: int = 42  # display columns per line (a CJK character takes 2)
    max_lines: int = 2
    max_seconds: float = 7.0  # longest a cue stays on screen
    min_seconds: float = 0.833  # shortest (5/6 s), when there is silence to extend into
    min_gap_seconds: float = 0.066  # two frames at 30 fps between cues; a shorter gap is closed up
    max_cps: float = 20.0  # reading speed, characters (spaces included) per second; 0: no limit
    words: bool = False  # cues carry their words' times: VTT inline timestamps, ASS karaoke
    highlight_words: bool = False  # SRT/VTT: one cue per word, the current word underlined

    def __post_init__(self):
        if self.max_line_width < 1 or self.max_lines < 1 or self.max_seconds <= 0:
            raise ValueError("cue layout limits must be positive")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise ValueError(f"the shortest cue ({self.min_seconds} s) must lie between 0 and the longest "
                             f"({self.max_seconds} s)")
        if self.min_gap_seconds < 0 or self.max_cps < 0:
            raise ValueError("the gap between cues and the reading speed cannot be negative")

    def seconds_to_read(self, chars: int) -> float:
        """How long a cue of `chars` characters should stay on screen."""
        reading = chars / self.max_cps if self.max_cps else 0.0
        return min(max(self.min_seconds, reading), self.max_seconds)


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    lines: tuple[tuple[Piece, ...], ...]
    speaker: str | None = None  # with --speakers: who says it (a cue never holds two speakers)
    translation: tuple[tuple[Piece, ...], ...] = ()  # --bilingual: lines shown under the original's

    @property
    def text(self) -> str:
        return "\n".join(join_pieces(line) for line in self.lines + self.translation)

    @property
    def pieces(self) -> list[Piece]:
        return [piece for line in self.lines for piece in line]

    @property
    def chars(self) -> int:
        """Characters as read, the line breaks counted as the spaces they replace; of a bilingual cue,
        those of the longer language (a viewer reads one of them)."""
        second = [piece for line in self.translation for piece in line]
        return max(len(join_pieces(self.pieces)), len(join_pieces(second)))


@dataclass
class _Run:
    """Sentences (or events) close enough in time that a cue may hold the end of one and the start
    of the next: their atoms in order, where each sentence starts, and how far the last cue may
    extend into the silence after them."""

    atoms: list[Atom]
    starts: frozenset[int] = frozenset()  # indices of atoms that start a sentence, besides 0
    room_end: float = 0.0
    speaker: str | None = None  # the run's one speaker: sentences of two speakers are never joined
    translation: str | None = None  # --bilingual: the run's one sentence, translated


def cues_for(result: Result, layout: CueLayout = CueLayout()) -> list[Cue]:
    """Cues in time order: laid out, split, joined and timed by the layout's rules.

    Bilingual (a translated result with `bilingual`): cues are laid out and timed on the original
    text, one sentence per run, and each sentence's translation is shared out over its cues."""
    events = result.task == "events"
    both = result.bilingual and result.translated_to is not None
    if events:
        units = [(_event_atoms(event, layout, _first(event.description, event.original, both)), None,
                  event.description if both else None) for event in result.events]
    else:
        units = [(_segment_atoms(segment, layout, _first(segment.text, segment.original, both)), segment.speaker,
                  segment.text if both else None) for segment in result.segments]
    units = sorted((u for u in units if u[0]), key=lambda unit: (unit[0][0].start, unit[0][-1].end))
    duration = max([result.duration] + [unit[0][-1].end for unit in units])
    # Events overlap by nature: each on its own; a bilingual sentence keeps its translation to itself.
    runs = _runs(units, duration, layout, joinable=not events and not both)
    drafts = [cue for run in runs for cue in _run_cues(run, layout)]
    return _retime(drafts, seconds_to_ms(duration), layout, overlaps_allowed=events)


def _first(text: str, original: str | None, bilingual: bool) -> str:
    """The text a cue is laid out on: the original under --bilingual, else what the result says."""
    return original if bilingual and original is not None else text


def _run_cues(run: _Run, layout: CueLayout) -> list[Cue]:
    groups = split_into_cues(run.atoms, run.room_end, layout, run.starts)
    seconds = [()] * len(groups)
    if run.translation is not None:
        seconds = _shared_out(run.translation, [len(join_pieces([p for a in g for p in a.pieces])) for g in groups],
                              layout)
    return [Cue(seconds_to_ms(g[0].start), seconds_to_ms(g[-1].end), _lines(g, layout), run.speaker, second)
            for g, second in zip(groups, seconds)]


def _shared_out(text: str, weights: list[int], layout: CueLayout) -> list[tuple[tuple[Piece, ...], ...]]:
    """A translation cut into len(weights) parts, at word (or CJK character) boundaries, each about the
    share of the text its cue's original holds; each part laid out in balanced lines."""
    pieces = split_text(text)
    sizes = [len(piece) + int(spaced) for piece, spaced in pieces]
    total, whole = sum(sizes), sum(weights) or 1
    cuts, done, reached = [0], 0, 0
    for weight in weights[:-1]:
        done += weight
        target = total * done / whole
        while reached < len(pieces) and sum(sizes[:reached + 1]) <= target:
            reached += 1
        cuts.append(max(reached, cuts[-1]))
    cuts.append(len(pieces))
    parts = [pieces[a:b] for a, b in itertools.pairwise(cuts)]
    return [_lines(make_atoms(_spread(part, 0.0, 1.0), layout.max_line_width), layout) if part else ()
            for part in parts]


# ---- pieces with times ------------------------------------------------------------------------------
def _segment_atoms(segment: Segment, layout: CueLayout, text: str) -> list[Atom]:
    if segment.words:  # the model's words stay whole: they are the best places to break CJK text too
        pieces, previous = [], ""
        for word in segment.words:
            parts = word.word.split()  # a "word" with spaces in it is several
            texts = [(part, index > 0 or needs_space(previous, part)) for index, part in enumerate(parts)]
            pieces += _spread(texts, word.start, word.end, timed=True)
            previous = parts[-1] if parts else previous
    else:  # the segment's time shared out by length
        pieces = _spread(split_text(text), segment.start, segment.end)
    return make_atoms(pieces, layout.max_line_width)


def _event_atoms(event: Event, layout: CueLayout, description: str) -> list[Atom]:
    """An event's text is shown from its start: over its span, but no longer than its cues need."""
    texts = split_text(description)
    lines = lines_needed(make_atoms(_spread(texts, 0.0, 1.0), layout.max_line_width), layout.max_line_width)
    shown = min(event.end - event.start, math.ceil(lines / layout.max_lines) * layout.max_seconds)
    return make_atoms(_spread(texts, event.start, event.start + shown), layout.max_line_width)


def _spread(texts: list[tuple[str, bool]], start: float, end: float, timed: bool = False) -> list[Piece]:
    """Pieces over [start, end], each given a share of the time by its length."""
    weights = [len(text) + int(spaced) for text, spaced in texts]
    total = sum(weights) or 1
    pieces, elapsed = [], 0
    for (text, spaced), weight in zip(texts, weights):
        a = start + (end - start) * elapsed / total
        elapsed += weight
        pieces.append(Piece(text, a, start + (end - start) * elapsed / total, spaced, timed))
    return pieces


def _runs(units: list[tuple[list[Atom], str | None, str | None]], duration: float, layout: CueLayout,
          joinable: bool) -> list[_Run]:
    """Sentences of one speaker separated by less silence than a short cue needs go into one run;
    each run may extend into the silence before the next one starts (less the minimum gap)."""
    join_within = layout.min_seconds + layout.min_gap_seconds
    runs: list[_Run] = []
    for atoms, speaker, translation in units:
        last = runs[-1] if runs else None
        if (last is not None and joinable and speaker == last.speaker
                and atoms[0].start - last.atoms[-1].end < join_within):
            first = atoms[0]
            spaced = needs_space(last.atoms[-1].pieces[-1].text, first.pieces[0].text)
            atoms = [Atom((replace(first.pieces[0], space_before=spaced),) + first.pieces[1:])] + atoms[1:]
            last.starts = last.starts | {len(last.atoms)}
            last.atoms = last.atoms + atoms
        else:
            runs.append(_Run(list(atoms), speaker=speaker, translation=translation))
    for index, run in enumerate(runs):
        following = runs[index + 1].atoms[0].start - layout.min_gap_seconds if index + 1 < len(runs) else duration
        run.room_end = max(run.atoms[-1].end, following)
    return runs


# ---- cutting sentences into cues --------------------------------------------------------------------
def split_into_cues(atoms: list[Atom], room_end: float, layout: CueLayout,
                    starts: frozenset[int] = frozenset()) -> list[list[Atom]]:
    """The cheapest way to cut a run of sentences into cues that fit the lines and the longest cue.

    Dynamic programming over cut points; a single atom is always a possible cue, so there is
    always an answer. Costs: one per cue, the badness of each cut, cues too short or too fast to
    read given the silence after them, unequal cues, and a cue that holds parts of two sentences
    (only worth it when one alone could not be read).
    """
    n = len(atoms)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for i in range(n):
        fill, joins = LineFill(layout.max_line_width), 0.0
        for j in range(i + 1, n + 1):
            fill.add(atoms[j - 1])
            if j - i > 1 and (fill.lines > layout.max_lines or atoms[j - 1].end - atoms[i].start > layout.max_seconds):
                break
            if j - 1 in starts and j - 1 > i:
                joins += JOIN_COST + JOIN_PAUSE_COST * (atoms[j - 1].start - atoms[j - 2].end)
            cost = best[i] + joins + _cue_cost(atoms, i, j, fill, room_end, layout, starts)
            if cost < best[j]:
                best[j], back[j] = cost, i
    groups, j = [], n
    while j > 0:
        groups.append(atoms[back[j] : j])
        j = back[j]
    return groups[::-1]


def _cue_cost(atoms: list[Atom], i: int, j: int, fill: LineFill, room_end: float, layout: CueLayout,
              starts: frozenset[int]) -> float:
    capacity = layout.max_line_width * layout.max_lines
    cost = CUE_COST + FILL_WEIGHT * (fill.width / capacity) ** 2
    if j < len(atoms):
        pause = atoms[j].start - atoms[j - 1].end
        cost += break_cost(atoms[j - 1], atoms[j]) - min(MAX_PAUSE_BONUS, max(pause, 0.0))
    whole_sentence = (i == 0 or i in starts) and (j == len(atoms) or j in starts)
    if j - i == 1 and not whole_sentence:
        cost += LONE_WORD_PENALTY
    limit = atoms[j].start - layout.min_gap_seconds if j < len(atoms) else room_end
    available = min(layout.max_seconds, max(limit, atoms[j - 1].end) - atoms[i].start)
    needed = layout.seconds_to_read(fill.chars)
    if available < needed:
        cost += SHORT_PENALTY + SHORT_SHARE_PENALTY * (needed - available) / needed
    return cost


def _lines(group: list[Atom], layout: CueLayout) -> tuple[tuple[Piece, ...], ...]:
    return tuple(tuple(p for atom in line for p in atom.pieces)
                 for line in balanced_lines(group, layout.max_line_width))


# ---- timing rules -----------------------------------------------------------------------------------
def _retime(cues: list[Cue], duration_ms: int, layout: CueLayout, overlaps_allowed: bool) -> list[Cue]:
    """Longest and shortest time on screen, reading speed and the gap between cues, cue by cue.

    Events keep their start times (sounds can overlap, so can their cues); speech cues never
    overlap: a cue that cannot end early enough pushes the next one later.
    """
    cues.sort(key=lambda c: (c.start_ms, c.end_ms))
    gap, longest = seconds_to_ms(layout.min_gap_seconds), seconds_to_ms(layout.max_seconds)
    for index, cue in enumerate(cues):
        if index and not overlaps_allowed:  # moves only when the previous cue could not end earlier
            cue.start_ms = max(cue.start_ms, cues[index - 1].end_ms + gap)
        following = cues[index + 1] if index + 1 < len(cues) else None
        cue.end_ms = max(min(cue.end_ms, cue.start_ms + longest), cue.start_ms + 1)
        overlapping = following is not None and following.start_ms < cue.end_ms
        if following is None:
            limit = duration_ms
        else:
            limit = cue.end_ms if overlapping else following.start_ms - gap
        wanted = cue.start_ms + seconds_to_ms(layout.seconds_to_read(cue.chars))
        cue.end_ms = max(cue.end_ms, min(wanted, limit))
        if following is not None and not (overlapping and overlaps_allowed):
            _end_before(cue, following.start_ms - gap)
    return cues


def _end_before(cue: Cue, latest: int) -> None:
    """Close up a gap shorter than the minimum: the cue ends by `latest`, but not before its last
    word has started (so every word keeps its time inside the cue), nor before it starts; the next
    cue then waits for it."""
    if cue.end_ms <= latest:
        return
    last_word = max((seconds_to_ms(p.start) for p in cue.pieces[1:] if p.timed), default=cue.start_ms)
    cue.end_ms = max(cue.start_ms + 1, min(last_word + 1, cue.end_ms), latest)


# ---- word times inside cues -------------------------------------------------------------------------
def word_marks(cue: Cue) -> list[int | None]:
    """Per piece, the millisecond its word starts (for VTT inline timestamps, ASS karaoke,
    highlighting), strictly inside the cue and increasing; None for the first piece (it starts
    with the cue) and for pieces without a time of their own."""
    marks: list[int | None] = []
    last = cue.start_ms
    for index, piece in enumerate(cue.pieces):
        at = seconds_to_ms(piece.start)
        if index and piece.timed and last < at < cue.end_ms:
            marks.append(at)
            last = at
        else:
            marks.append(None)
    return marks


def word_steps(cue: Cue) -> list[tuple[int, int, range]]:
    """The cue cut at its word marks: (start_ms, end_ms, pieces spoken then), covering the cue."""
    marks = word_marks(cue)
    starts = [0] + [index for index, mark in enumerate(marks) if mark is not None]
    times = [cue.start_ms] + [mark for mark in marks if mark is not None] + [cue.end_ms]
    ends = starts[1:] + [len(marks)]
    return [(times[k], times[k + 1], range(starts[k], ends[k])) for k in range(len(starts))]


def render(cue: Cue, piece_text: Callable[[int | None, Piece], str], newline: str = "\n") -> str:
    """The cue's text with each piece written by `piece_text(index, piece)` (escaping, tags); a
    bilingual cue's translation lines follow, their pieces given index None (they have no times)."""
    lines, index = [], 0
    for line in cue.lines:
        lines.append(_rendered(line, range(index, index + len(line)), piece_text))
        index += len(line)
    for line in cue.translation:
        lines.append(_rendered(line, [None] * len(line), piece_text))
    return newline.join(lines)


def _rendered(line: tuple[Piece, ...], indices, piece_text: Callable[[int | None, Piece], str]) -> str:
    return "".join((" " if position and piece.space_before else "") + piece_text(index, piece)
                   for position, (index, piece) in enumerate(zip(indices, line)))


def format_timestamp(ms: int, decimal: str = ",") -> str:
    """Integer milliseconds -> HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (VTT, with decimal='.')."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal}{millis:03d}"
