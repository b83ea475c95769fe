"""Chunk planning for long audio: pure functions over sample positions, cutting in silence."""

from __future__ import annotations

from dataclasses import dataclass

from .constants import SAMPLE_RATE


@dataclass(frozen=True)
class ChunkPolicy:
    target_seconds: float  # aim for chunks about this long
    max_seconds: float = 120.0  # never longer
    min_tail_seconds: float = 5.0  # a shorter last chunk joins the previous one if that fits
    skip_silence: bool = False  # trim chunks to their speech; chunks without speech are not sent

    def __post_init__(self):
        if not 0 < self.target_seconds <= self.max_seconds:
            raise ValueError(f"need 0 < target ({self.target_seconds}) <= max ({self.max_seconds})")


@dataclass(frozen=True)
class Chunk:
    """Samples [start, end) of a file; maps times the model gives inside it back to file times."""

    start: int
    end: int
    speech: bool = True

    @property
    def offset(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE

    @property
    def end_time(self) -> float:
        return self.end / SAMPLE_RATE

    def to_file_time(self, seconds: float) -> float:
        """A chunk-relative time as a file time, kept inside the chunk."""
        return self.offset + min(max(seconds, 0.0), self.duration)


def plan_chunks(n_samples: int, speech: list[tuple[int, int]], policy: ChunkPolicy) -> list[Chunk]:
    """Cover [0, n_samples) with chunks cut in the middle of silences near the target length."""
    return plan_range(0, n_samples, speech, policy)


def plan_range(begin: int, end: int, speech: list[tuple[int, int]], policy: ChunkPolicy) -> list[Chunk]:
    bounds = _cut_points(begin, end, _silence_midpoints(begin, end, speech), policy)
    chunks = [Chunk(a, b) for a, b in zip(bounds, bounds[1:])]
    if policy.skip_silence:
        chunks = [_trim_to_speech(chunk, speech) for chunk in chunks]
    return chunks


def split_chunk(chunk: Chunk, speech: list[tuple[int, int]], skip_silence: bool) -> list[Chunk]:
    """Two (or so) shorter chunks, cut in silence if there is any, for a retry."""
    half = chunk.duration / 2
    policy = ChunkPolicy(target_seconds=half, max_seconds=max(half * 1.5, half + 0.5),
                         min_tail_seconds=min(5.0, half / 2), skip_silence=skip_silence)
    return [c for c in plan_range(chunk.start, chunk.end, speech, policy) if c.end > c.start]


def _cut_points(begin: int, end: int, cuts: list[tuple[int, int]], policy: ChunkPolicy) -> list[int]:
    bounds = [begin]
    _decide_cuts(bounds, end, cuts, policy, settled=end)
    return _closed(bounds, end, policy)


def _decide_cuts(bounds: list[int], end: int, cuts: list[tuple[int, int]], policy: ChunkPolicy, settled: int) -> None:
    """Append cuts after bounds[-1], each in the silence nearest the target length, while what is left
    is too long for one chunk. Stops before a cut whose search window reaches `settled` (a silence
    there may not be known yet)."""
    target = int(policy.target_seconds * SAMPLE_RATE)
    longest = int(policy.max_seconds * SAMPLE_RATE)
    while end - bounds[-1] > min(longest, target * 5 // 4):
        pos = bounds[-1]
        reach = min(pos + longest, end - 1)
        if reach >= settled:
            return
        window = [(mid, width) for mid, width in cuts if pos + target // 2 <= mid <= reach]
        if window:  # the silence nearest the target; longer silences win ties
            cut = min(window, key=lambda c: (abs(c[0] - (pos + target)), -c[1]))[0]
        else:  # continuous sound: a hard cut
            cut = pos + target
        bounds.append(cut)


def _closed(bounds: list[int], end: int, policy: ChunkPolicy) -> list[int]:
    """The cuts with `end` appended; a too-short last chunk joins the previous one if that fits."""
    bounds = [*bounds, end]
    tail, longest = bounds[-1] - bounds[-2], int(policy.max_seconds * SAMPLE_RATE)
    if len(bounds) > 2 and tail < policy.min_tail_seconds * SAMPLE_RATE and bounds[-1] - bounds[-3] <= longest:
        del bounds[-2]
    return bounds


class ChunkPlanner:
    """`plan_chunks` for speech found a block at a time: each call gives the next chunks of the very plan
    `plan_chunks` makes from the whole file's speech, as soon as no speech found later can change them.

    A cut is chosen among the silences within reach of the previous one, so it is settled once every
    silence that could be in reach is known. A short last chunk joins the one before only where the
    cut before that one had the end of the file within reach: such a cut settles at the end of the scan.
    """

    def __init__(self, n_samples: int, policy: ChunkPolicy):
        self.n_samples, self.policy = n_samples, policy
        self.bounds = [0]
        self.given = 0  # chunks returned so far
        self.covered = 0  # the samples before this are in them (before trimming to speech)
        self.finished = False

    def advance(self, speech: list[tuple[int, int]], known_until: int) -> list[Chunk]:
        """The chunks newly settled, given `speech` as found so far: exact before sample `known_until`
        (whatever it says after that is ignored); `known_until >= n_samples` once the scan is over."""
        if self.finished:
            return []
        end = self.n_samples
        done = known_until >= end
        known = speech if done else _clipped(speech, known_until)
        _decide_cuts(self.bounds, end, _silence_midpoints(0, end, known), self.policy,
                     end if done else _settled(known, known_until))
        bounds = self.bounds
        if done:
            bounds, self.finished = _closed(self.bounds, end, self.policy), True
        chunks = [Chunk(a, b) for a, b in zip(bounds[self.given :], bounds[self.given + 1 :])]
        self.given += len(chunks)
        self.covered = bounds[self.given]
        if self.policy.skip_silence:
            chunks = [_trim_to_speech(chunk, known) for chunk in chunks]
        return chunks


def _clipped(speech: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    return [(start, min(stop, limit)) for start, stop in speech if start < limit]


def _settled(known: list[tuple[int, int]], known_until: int) -> int:
    """A sample below which every silence's midpoint is final. A silence not yet known whole starts
    where the last known speech ends (or at 0) and ends at `known_until` or later, so its midpoint
    is at least halfway between the two."""
    last_end = max((stop for _, stop in known), default=0)
    return (last_end + known_until) // 2


def _silence_midpoints(begin: int, end: int, speech: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(midpoint, width) of each gap between speech regions inside (begin, end)."""
    gaps, previous_end = [], begin
    for start, stop in speech:
        if start > previous_end:
            gaps.append((previous_end, min(start, end)))
        previous_end = max(previous_end, stop)
    if previous_end < end:
        gaps.append((previous_end, end))
    return [((a + b) // 2, b - a) for a, b in gaps if begin < (a + b) // 2 < end]


def _trim_to_speech(chunk: Chunk, speech: list[tuple[int, int]]) -> Chunk:
    inside = [(max(s, chunk.start), min(e, chunk.end)) for s, e in speech if s < chunk.end and e > chunk.start]
    if not inside:
        return Chunk(chunk.start, chunk.end, speech=False)
    return Chunk(inside[0][0], inside[-1][1], speech=True)
