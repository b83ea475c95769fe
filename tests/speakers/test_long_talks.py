"""Speakers over recordings of ten minutes: one voice reading stays one speaker, two or three voices
are told apart, and a range of speakers bounds what auto finds. Voices, seeds and the prosody and
channel of each paragraph are not those the thresholds were tuned on (tests/support/long_talks.py)."""

import time

import numpy as np
import pytest
from support.conversations import best_mapping_accuracy
from support.long_talks import long_talk

from moss_cli.audio.sources import AudioSource
from moss_cli.speakers import voices as speakers
from moss_cli.speakers.labels import speaker_at

MINUTES = 10
TALKS = {  # name: (voices, seed)
    "monologue, a voice auto was tuned on": (("en-us+m3",), 21),
    "monologue, another voice": (("en-us",), 22),
    "monologue, a third voice": (("en+linda",), 23),
    "two voices": (("en-gb+f3", "en+f5"), 24),
    "three voices": (("en+Andy", "en-us+m1", "en+f4"), 25),
}


class Seconds:
    def __init__(self):
        self.total = 0.0

    def advance(self, seconds):
        self.total += seconds


@pytest.fixture(scope="module")
def embedded():
    """Each talk (made once per machine, then cached) with its pieces and their voice vectors."""
    diarizer = speakers.load_diarizer("resemblyzer")
    out = {}
    for name, (voices, seed) in TALKS.items():
        talk = long_talk(voices, MINUTES, seed)
        source = AudioSource.from_array(name, talk.samples)
        pieces = speakers.plan_pieces(source, [(t.start, t.end) for t in talk.turns])
        started, progress = time.perf_counter(), Seconds()
        vectors = diarizer.embed(source, pieces, progress)
        out[name] = (talk, pieces, vectors, time.perf_counter() - started)
        assert progress.total == pytest.approx(sum(b - a for a, b in pieces))
    return out


def paragraph_speakers(embedded, name, count=None, bounds=None):
    talk, pieces, vectors, _ = embedded[name]
    labels = speakers.cluster(vectors, np.array([b - a for a, b in pieces]), count, bounds)
    turns = speakers.merge_turns(pieces, labels)
    return [speaker_at(turns, t.start, t.end) for t in talk.turns], [t.voice for t in talk.turns]


@pytest.mark.parametrize("name", list(TALKS))
def test_auto_finds_how_many_voices_speak_for_ten_minutes(embedded, name):
    talk = embedded[name][0]
    assert talk.samples.size >= MINUTES * 60 * 16_000
    found, truth = paragraph_speakers(embedded, name)
    assert len(set(found)) == len(set(truth)), f"{name}: {np.bincount(found)} paragraphs per speaker"
    assert best_mapping_accuracy(found, truth) >= 0.95


def test_a_range_bounds_what_auto_finds(embedded):
    found, _ = paragraph_speakers(embedded, "three voices", bounds=(1, 2))
    assert len(set(found)) == 2  # three voices, at most two speakers
    found, truth = paragraph_speakers(embedded, "three voices", bounds=(2, 4))
    assert len(set(found)) == 3 and best_mapping_accuracy(found, truth) >= 0.95  # within the range: as auto
    found, _ = paragraph_speakers(embedded, "monologue, another voice", bounds=(2, 4))
    assert len(set(found)) == 2  # at least two, even where one voice speaks


def test_embedding_ten_minutes_takes_a_small_share_of_their_length(embedded):
    """On a busy shared CPU too: well under a tenth of real time (about 1% on an idle core)."""
    for name, (talk, _, _, seconds) in embedded.items():
        assert seconds < 0.1 * talk.samples.size / 16_000, f"{name}: {seconds:.1f} s"
