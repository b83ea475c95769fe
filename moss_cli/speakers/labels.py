"""Speaker labels on a transcript: every word and segment gets the speaker of the turn it lies in.

A segment in which the speaker changes is split at the change: between words when there are
word times, else at the pause the turns leave between the speakers, with the text cut where the
time falls (at a sentence end when one is near).
"""

from __future__ import annotations

from dataclasses import replace

from ..results import Segment
from ..text import join_words, split_text
from .voices import Turn

MIN_TURN_SECONDS = 0.8  # a speaker heard for less inside a segment is a stray piece, not a turn
SENTENCE_END = (".", "!", "?", "。", "！", "？")


def speech_spans(segments: list[Segment], regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Where to listen for voices: each segment's time inside the detected speech (all of it when
    the detector heard nothing there), cut at segment boundaries so no span mixes two segments."""
    spans = []
    for segment in segments:
        inside = [(max(a, segment.start), min(b, segment.end)) for a, b in regions
                  if min(b, segment.end) > max(a, segment.start)]
        spans += inside or ([(segment.start, segment.end)] if segment.end > segment.start else [])
    spans.sort()
    cut: list[tuple[float, float]] = []
    for start, end in spans:  # overlapping segments: the later one starts where the earlier ends
        start = max(start, cut[-1][1]) if cut else start
        if end > start:
            cut.append((start, end))
    return cut


def label_speakers(segments: list[Segment], turns: list[Turn], names: tuple[str, ...] = ()) -> list[Segment]:
    """Segments with `speaker` set on them and their words, split where the speaker changes.

    A speaker whose turns carry a name (a known voice) is called by it; the others are called S1,
    S2, ... (or `names`) in order of first appearance.
    """
    if not segments:
        return []
    turns = turns or [Turn(segments[0].start, segments[-1].end, 0)]
    parts = [part for segment in segments for part in _split(segment, turns)]
    labels = {turn.speaker: turn.name for turn in turns if turn.name}
    unnamed = 0
    for segment, speaker, word_speakers in parts:
        for number in [*word_speakers, speaker]:  # a word may be heard before its segment's speaker
            if number not in labels:
                labels[number] = names[unnamed] if unnamed < len(names) else f"S{unnamed + 1}"
                unnamed += 1
    out = []
    for segment, speaker, word_speakers in parts:
        words = [replace(w, speaker=labels[s]) for w, s in zip(segment.words, word_speakers)]
        out.append(replace(segment, words=words, speaker=labels[speaker]))
    return out


def speaker_at(turns: list[Turn], start: float, end: float) -> int:
    """The speaker heard most in [start, end]; the nearest turn's when none overlaps."""
    heard: dict[int, float] = {}
    for turn in turns:
        overlap = min(turn.end, end) - max(turn.start, start)
        if overlap > 0:
            heard[turn.speaker] = heard.get(turn.speaker, 0.0) + overlap
    if heard:
        return max(heard, key=heard.get)
    middle = (start + end) / 2
    return min(turns, key=lambda t: max(t.start - middle, middle - t.end)).speaker


def _split(segment: Segment, turns: list[Turn]) -> list[tuple[Segment, int, list[int]]]:
    """(part, speaker, speaker of each word) for each part of a segment, in time order."""
    if segment.words:
        return _split_words(segment, turns)
    runs = _runs(turns, segment.start, segment.end)
    if len(runs) == 1:
        return [(segment, runs[0][2], [])]
    return _split_text(segment, runs)


def _split_words(segment: Segment, turns: list[Turn]) -> list[tuple[Segment, int, list[int]]]:
    speakers = _smoothed([(w.start, w.end, speaker_at(turns, w.start, w.end)) for w in segment.words])
    groups: list[list[int]] = []
    for index, speaker in enumerate(speakers):
        if groups and speakers[groups[-1][0]] == speaker:
            groups[-1].append(index)
        else:
            groups.append([index])
    if len(groups) == 1:
        return [(segment, speakers[0], speakers)]
    parts = []
    for group in groups:
        words = [segment.words[i] for i in group]
        part = replace(segment, start=words[0].start, end=words[-1].end, words=words,
                       text=join_words([w.word for w in words]))
        parts.append((part, speakers[group[0]], [speakers[i] for i in group]))
    return parts


def _smoothed(timed: list[tuple[float, float, int]]) -> list[int]:
    """Speaker per item; a run of items shorter than MIN_TURN_SECONDS takes its longer neighbour's."""
    speakers = [s for _, _, s in timed]
    while True:
        runs = _group_runs(timed, speakers)
        short = [r for r in runs if r[1] - r[0] < MIN_TURN_SECONDS]
        if len(runs) == 1 or not short:
            return speakers
        _, _, _, i, j = min(short, key=lambda r: r[1] - r[0])
        before = next((r for r in runs if r[4] == i - 1), None)
        after = next((r for r in runs if r[3] == j + 1), None)
        neighbour = max((r for r in (before, after) if r), key=lambda r: r[1] - r[0])
        speakers[i : j + 1] = [neighbour[2]] * (j + 1 - i)


def _group_runs(timed, speakers) -> list[tuple[float, float, int, int, int]]:
    """(start, end, speaker, first index, last index) of each run of one speaker."""
    runs = []
    for index, ((start, end, _), speaker) in enumerate(zip(timed, speakers)):
        if runs and runs[-1][2] == speaker:
            runs[-1] = (runs[-1][0], end, speaker, runs[-1][3], index)
        else:
            runs.append((start, end, speaker, index, index))
    return runs


def _runs(turns: list[Turn], start: float, end: float) -> list[tuple[float, float, int]]:
    """The turns inside [start, end] as runs of one speaker, stray short ones absorbed."""
    inside = [(max(t.start, start), min(t.end, end), t.speaker) for t in turns if min(t.end, end) > max(t.start, start)]
    if not inside:
        return [(start, end, speaker_at(turns, start, end))]
    speakers = _smoothed(inside)
    runs = [(a, b, s) for a, b, s, _, _ in _group_runs(inside, speakers)]
    return [(start if i == 0 else a, end if i == len(runs) - 1 else b, s) for i, (a, b, s) in enumerate(runs)]


def _split_text(segment: Segment, runs: list[tuple[float, float, int]]) -> list[tuple[Segment, int, list[int]]]:
    """No word times: cut at the middle of the pause between two speakers' turns; the text is cut
    where that time falls when the segment's time is shared out by characters."""
    pieces = split_text(segment.text)  # words, or characters of scripts written without spaces
    tokens = [text for text, _ in pieces]
    changes = [(a[1] + b[0]) / 2 for a, b in zip(runs, runs[1:])]
    cuts = _text_cuts(tokens, segment.start, segment.end, changes)
    edges = [0, *cuts, len(tokens)]
    if any(a >= b for a, b in zip(edges, edges[1:])):  # too few words to give each speaker some
        heard: dict[int, float] = {}
        for a, b, speaker in runs:
            heard[speaker] = heard.get(speaker, 0.0) + b - a
        return [(segment, max(heard, key=heard.get), [])]
    bounds = [segment.start, *changes, segment.end]
    parts = []
    for k, (_, _, speaker) in enumerate(runs):
        text = "".join((" " if spaced and i > edges[k] else "") + piece
                       for i, (piece, spaced) in enumerate(pieces[edges[k] : edges[k + 1]], start=edges[k]))
        parts.append((replace(segment, start=bounds[k], end=bounds[k + 1], text=text), speaker, []))
    return parts


def _text_cuts(tokens: list[str], start: float, end: float, changes: list[float]) -> list[int]:
    """Token index where each change falls (increasing), preferring a sentence end nearby."""
    weights = [len(t) + 1 for t in tokens]
    total, elapsed, times = sum(weights) or 1, 0, []
    for weight in weights[:-1]:  # the time at which each boundary between tokens is reached
        elapsed += weight
        times.append(start + (end - start) * elapsed / total)
    tolerance = max(1.0, 0.15 * (end - start))
    cuts, lowest = [], 1
    for change in changes:
        candidates = range(lowest, len(tokens))
        if not candidates:
            cuts.append(len(tokens))
            continue
        nearest = min(candidates, key=lambda i: abs(times[i - 1] - change))
        ends = [i for i in candidates if tokens[i - 1].endswith(SENTENCE_END) and abs(times[i - 1] - change) <= tolerance]
        cut = min(ends, key=lambda i: abs(times[i - 1] - change)) if ends else nearest
        cuts.append(cut)
        lowest = cut + 1
    return cuts


