"""Who speaks when: pieces, clustering and counting (pure), then real voices (espeak-ng + Resemblyzer)."""

import numpy as np
import pytest
from support.conversations import VOICES, best_mapping_accuracy, conversation

from moss_cli.audio.sources import AudioSource
from moss_cli.errors import ModelUnavailableError
from moss_cli.speakers import voices as speakers
from moss_cli.speakers.voices import SpeakerOptions, Turn, cluster, merge_turns, plan_pieces, split_at_pauses

RATE = 16_000


class Seconds:
    """Progress that adds up what it is told."""

    def __init__(self):
        self.total = 0.0

    def advance(self, seconds):
        self.total += seconds


def bursts(pattern):
    """(seconds, loud?) pairs -> a tone where loud, digital silence elsewhere."""
    pieces = []
    for seconds, loud in pattern:
        t = np.arange(int(seconds * RATE)) / RATE
        pieces.append((0.3 * np.sin(2 * np.pi * 220 * t) if loud else 0 * t).astype(np.float32))
    return np.concatenate(pieces)


def voices_like(centres, per_voice, spread, seed=0):
    """Unit vectors scattered around given centres: stand-ins for embeddings of several voices."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for k, centre in enumerate(centres):
        for _ in range(per_voice):
            rows.append(centre + spread * rng.standard_normal(centre.size))
            truth.append(k)
    rows = np.array(rows)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), truth


def orthogonal_centres(n, dim=256, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, n)))
    return list(q.T)


# ---- pure: pauses, pieces, clusters -------------------------------------------------------------
def test_split_at_pauses_finds_pauses_and_ignores_short_dips():
    audio = bursts([(0.2, False), (1.0, True), (0.05, False), (1.0, True), (0.4, False), (0.7, True), (0.3, False)])
    stretches = split_at_pauses(audio)
    assert len(stretches) == 2  # the 50 ms dip is inside a stretch; the 400 ms pause splits
    assert stretches[0][0] == pytest.approx(0.2, abs=0.011) and stretches[0][1] == pytest.approx(2.25, abs=0.011)
    assert stretches[1][0] == pytest.approx(2.65, abs=0.011) and stretches[1][1] == pytest.approx(3.35, abs=0.011)


def test_pieces_are_cut_at_pauses_and_into_equal_parts_no_longer_than_the_cap():
    audio = bursts([(7.0, True), (0.5, False), (2.0, True)])
    pieces = plan_pieces(AudioSource.from_array("x", audio), [(0.0, audio.size / RATE)])
    lengths = [b - a for a, b in pieces]
    assert len(pieces) == 4 and max(lengths) <= speakers.MAX_PIECE_SECONDS
    assert lengths[:3] == pytest.approx([7 / 3] * 3, abs=0.01)  # 7 s: three equal parts, not 3 + 3 + 1
    assert pieces[3] == pytest.approx((7.5, 9.5), abs=0.011)


def test_a_known_number_of_speakers_is_found_exactly():
    vectors, truth = voices_like(orthogonal_centres(3), 6, spread=0.03)
    labels = cluster(vectors, np.full(len(vectors), 2.0), count=3)
    assert best_mapping_accuracy(list(labels), truth) == 1.0


def test_auto_counts_one_two_and_three_voices():
    for n in (1, 2, 3):
        vectors, truth = voices_like(orthogonal_centres(n), 8, spread=0.02, seed=n)
        labels = cluster(vectors, np.full(len(vectors), 2.0), count=None)
        assert labels.max() + 1 == n
        assert best_mapping_accuracy(list(labels), truth) == 1.0


def test_auto_gives_a_voice_heard_too_briefly_to_the_nearest_speaker():
    vectors, truth = voices_like(orthogonal_centres(3), 5, spread=0.02)
    durations = np.array([2.0] * 10 + [0.55] * 5)  # the third voice: 2.75 s in all, too little to count
    labels = cluster(vectors, durations, count=None)
    assert labels.max() + 1 == 2
    assert best_mapping_accuracy(list(labels[:10]), truth[:10]) == 1.0


def test_pieces_too_short_to_judge_join_the_nearest_speaker():
    vectors, truth = voices_like(orthogonal_centres(2), 4, spread=0.02)
    durations = np.array([2.0, 2.0, 2.0, 0.2, 2.0, 2.0, 2.0, 0.2])
    labels = cluster(vectors, durations, count=2)
    assert best_mapping_accuracy(list(labels), truth) == 1.0


def test_turns_merge_consecutive_pieces_of_one_speaker():
    pieces = [(0.0, 1.0), (1.2, 2.0), (2.5, 3.0), (3.1, 4.0)]
    assert merge_turns(pieces, np.array([0, 0, 1, 0])) == [Turn(0.0, 2.0, 0), Turn(2.5, 3.0, 1), Turn(3.1, 4.0, 0)]


def test_options_are_checked():
    with pytest.raises(ValueError, match="at least 1"):
        SpeakerOptions(count=0)
    with pytest.raises(ValueError, match="unknown diarizer"):
        SpeakerOptions(diarizer="magic")
    with pytest.raises(ValueError, match="empty"):
        SpeakerOptions(names=("Alice", " "))
    with pytest.raises(ValueError, match="3-2 does not"):
        SpeakerOptions(bounds=(3, 2))
    with pytest.raises(ValueError, match="resemblyzer diarizer only"):
        SpeakerOptions(diarizer="pyannote", samples=(("Ann", "ann.wav"),))
    with pytest.raises(ValueError, match="a name of its own"):
        SpeakerOptions(samples=(("Ann", "a.wav"), ("Ann", "b.wav")))
    with pytest.raises(ValueError, match="not one line"):
        SpeakerOptions(samples=(("A\nB", "a.wav"),))


def test_manifests_record_a_range_and_samples_only_when_set():
    assert SpeakerOptions(2, ("A",)).settings() == {"count": 2, "names": ("A",), "diarizer": "resemblyzer"}
    assert SpeakerOptions(None, bounds=(2, 4), samples=(("Ann", "a.wav"),)).settings()["samples"] == (("Ann", "a.wav"),)


def test_a_range_makes_at_least_its_fewest_and_at_most_its_most():
    vectors, truth = voices_like(orthogonal_centres(3), 8, spread=0.02, seed=4)
    durations = np.full(len(vectors), 2.0)
    assert cluster(vectors, durations, None, (1, 2)).max() + 1 == 2
    assert cluster(vectors, durations, None, (2, 5)).max() + 1 == 3
    one, _ = voices_like(orthogonal_centres(1), 20, spread=0.02, seed=5)
    assert cluster(one, np.full(20, 2.0), None, (2, 3)).max() + 1 == 2
    assert cluster(one, np.full(20, 2.0), None).max() + 1 == 1


def test_samples_name_the_nearest_speakers_one_to_one_within_reach():
    from moss_cli.speakers.known import MAX_KNOWN_DISTANCE, matched_names

    a, b, c = orthogonal_centres(3)
    voices = np.stack([a, b])
    near_b = b + 0.2 * c
    assert matched_names(voices, {"Ben": near_b / np.linalg.norm(near_b), "Ann": a}) == {0: "Ann", 1: "Ben"}
    assert matched_names(voices, {"Cleo": c}) == {}  # no speaker sounds like it
    both_a = {"Ann": a, "Ann2": a * 0.999 + 0.001 * b}  # two samples near one speaker: the nearest names it
    assert matched_names(voices, both_a) == {0: "Ann"}
    assert 0 < MAX_KNOWN_DISTANCE < 1


def test_pyannote_missing_is_a_one_line_model_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyannote.audio", None)  # not installed
    speakers.load_diarizer.cache_clear()
    with pytest.raises(ModelUnavailableError, match="needs pyannote.audio"):
        speakers.load_diarizer("pyannote")


# ---- real voices: espeak-ng conversations through the default diarizer ----------------------------
@pytest.fixture(scope="module")
def diarizer():
    return speakers.load_diarizer("resemblyzer")


@pytest.fixture(scope="module")
def talks():
    """One, two and three voices, with turns of one sentence each and short pauses between. Twenty
    sentences for several voices: a few sentences per voice are too few to count the voices, and
    one sentence in twenty may sound like another voice (a rising question, say)."""
    return {1: conversation(VOICES[:1], 8, seed=1), 2: conversation(VOICES[:2], 20, seed=2),
            3: conversation(VOICES, 21, seed=3)}


@pytest.fixture(scope="module")
def embedded(diarizer, talks):
    """Each conversation's pieces (one per sentence span) and their voice vectors, made once."""
    out = {}
    for voices, conv in talks.items():
        source = AudioSource.from_array("talk", conv.samples)
        pieces = plan_pieces(source, [(t.start, t.end) for t in conv.turns])
        progress = Seconds()
        vectors = diarizer.embed(source, pieces, progress)
        assert progress.total == pytest.approx(sum(b - a for a, b in pieces))  # every piece reported once
        out[voices] = (pieces, vectors)
    return out


def sentence_speakers(embedded, conv, voices, count):
    """The speaker heard most during each sentence (the clustering step of the diarizer's turns())."""
    from moss_cli.speakers.labels import speaker_at

    pieces, vectors = embedded[voices]
    turns = merge_turns(pieces, cluster(vectors, np.array([b - a for a, b in pieces]), count))
    return [speaker_at(turns, t.start, t.end) for t in conv.turns]


@pytest.mark.parametrize("voices", [1, 2, 3])
def test_known_number_of_voices_labels_sentences_right(embedded, talks, voices):
    labels = sentence_speakers(embedded, talks[voices], voices, count=voices)
    assert best_mapping_accuracy(labels, [t.voice for t in talks[voices].turns]) >= 0.95


@pytest.mark.parametrize("voices", [1, 2, 3])
def test_auto_finds_the_number_of_voices(embedded, talks, voices):
    labels = sentence_speakers(embedded, talks[voices], voices, count=None)
    assert len(set(labels)) == voices
    assert best_mapping_accuracy(labels, [t.voice for t in talks[voices].turns]) >= 0.90


def test_a_change_without_a_segment_boundary_is_found_at_the_pause(diarizer, talks):
    conv = talks[2]
    first, second = conv.turns[0], conv.turns[1]
    assert first.voice != second.voice
    source = AudioSource.from_array("talk", conv.samples)
    # one span over two sentences of two voices: the pause between them is where the turn changes
    turns = diarizer.turns(source, [(first.start, second.end)] + [(t.start, t.end) for t in conv.turns[2:]], 2, Seconds())
    inside = [t for t in turns if t.start < second.end]
    assert len(inside) == 2 and first.end - 0.05 <= inside[0].end <= second.start + 0.05


def test_features_are_resemblyzers_own():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer.audio import wav_to_mel_spectrogram  # librosa's melspectrogram

    samples = conversation(VOICES[1:2], 1).samples
    ours, theirs = speakers.mel_frames(samples), wav_to_mel_spectrogram(samples)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


class FakeSegment:
    def __init__(self, start, end):
        self.start, self.end = start, end


class FakeAnnotation:
    def itertracks(self, yield_label=False):
        yield FakeSegment(3.0, 4.0), "A", "SPEAKER_01"
        yield FakeSegment(0.0, 2.0), "B", "SPEAKER_00"
        yield FakeSegment(2.5, 2.9), "C", "SPEAKER_01"


def fake_pyannote(monkeypatch, cached: bool):
    """pyannote.audio's Pipeline API, standing in for the library (not installed here)."""
    import sys
    import types

    calls = []

    class Pipeline:
        @classmethod
        def from_pretrained(cls, repo):
            calls.append(("load", repo))
            return cls()

        def __call__(self, audio, **kwargs):
            calls.append(("run", audio["waveform"].shape, audio["sample_rate"], kwargs))
            return types.SimpleNamespace(speaker_diarization=FakeAnnotation())  # pyannote 4's output

    monkeypatch.setitem(sys.modules, "pyannote.audio", types.SimpleNamespace(Pipeline=Pipeline))
    monkeypatch.setattr(speakers, "_in_hub_cache", lambda repo: cached and repo.endswith("3.1"))
    speakers.load_diarizer.cache_clear()
    return calls


def test_pyannote_pipeline_not_in_the_cache_is_a_one_line_model_error(monkeypatch):
    fake_pyannote(monkeypatch, cached=False)
    with pytest.raises(ModelUnavailableError, match="not in the Hugging Face cache"):
        speakers.load_diarizer("pyannote")


def test_pyannote_turns_come_from_its_annotation(monkeypatch):
    calls = fake_pyannote(monkeypatch, cached=True)
    diarizer = speakers.load_diarizer("pyannote")
    source = AudioSource.from_array("x", np.zeros(5 * RATE, np.float32))
    progress = Seconds()
    turns = diarizer.turns(source, [], 2, progress)
    assert calls == [("load", "pyannote/speaker-diarization-3.1"), ("run", (1, 5 * RATE), RATE, {"num_speakers": 2})]
    assert turns == [Turn(0.0, 2.0, 1), Turn(2.5, 2.9, 0), Turn(3.0, 4.0, 0)]
    assert progress.total == 5.0
    diarizer.turns(source, [], None, progress)  # auto: pyannote finds the number itself
    assert calls[-1][3] == {}
    diarizer.turns(source, [], None, progress, bounds=(2, 4))  # a range: its own min and max
    assert calls[-1][3] == {"min_speakers": 2, "max_speakers": 4}
    speakers.load_diarizer.cache_clear()


def test_auto_dissolves_a_small_group_close_to_a_voice_but_keeps_a_small_distinct_voice():
    centres = orthogonal_centres(4)
    near = centres[1] + 0.5 * centres[3]  # 0.11 from voice 1: sentences alike in words, not in voice
    near /= np.linalg.norm(near)
    vectors, truth = voices_like([centres[0], centres[1], centres[2], near], 12, spread=0.01)
    vectors, truth = vectors[:-6], truth[:-6]  # a small group: 6 pieces, 6% of the speech
    labels = cluster(vectors, np.full(len(vectors), 2.0), count=None)
    assert labels.max() + 1 == 3 and len(set(labels[-6:])) == 1 and labels[-1] == labels[12]
    distinct, truth = voices_like([centres[0], centres[1], centres[3]], 12, spread=0.01)
    distinct = distinct[:-8]  # a third voice heard for 8 s (4 pieces), far from the others: kept
    assert cluster(distinct, np.full(len(distinct), 2.0), count=None).max() + 1 == 3
