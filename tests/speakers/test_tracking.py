"""Speaker labels over a live run: the same voice keeps its label for the whole run."""

from __future__ import annotations

import numpy as np
from support.fake_server import phrase_recording
from support.live import ArraySource
from support.scripted import ScriptedEngine

from moss_cli.live.run import LiveRun
from moss_cli.results import Segment, Word
from moss_cli.speakers.tracking import SpeakerTracker
from moss_cli.speakers.voices import SpeakerOptions
from moss_cli.tasks.pipeline import Pipeline
from moss_cli.tasks.specs import TRANSCRIBE_SENTENCES

RNG = np.random.default_rng(0)
VOICES = np.linalg.qr(RNG.standard_normal((256, 3)))[0].T  # three orthogonal "voices"


def heard(voice: int) -> np.ndarray:
    """A unit embedding near `voice`'s, as one utterance of that speaker gives (a stand-in for GE2E)."""
    vector = VOICES[voice] + 0.15 * RNG.standard_normal(256) / 16
    return vector / np.linalg.norm(vector)


def labels(tracker: SpeakerTracker, voices: list[int | None]) -> list[str]:
    out = []
    for voice in voices:
        tracker.embed = lambda samples, v=voice: None if v is None else heard(v)
        segment = Segment(0.0, 1.0, "x", words=[Word("x", 0.0, 1.0)])
        labelled = tracker.label(np.zeros(10, np.float32), [segment])[0]
        assert labelled.words[0].speaker == labelled.speaker
        out.append(labelled.speaker)
    return out


def test_a_voice_keeps_its_label_for_the_whole_run():
    tracker = SpeakerTracker(None, SpeakerOptions(count=3))
    assert labels(tracker, [1, 0, 2, 1, 1, 0, 2, 0]) == ["S1", "S2", "S3", "S1", "S1", "S2", "S3", "S2"]


def test_before_there_is_enough_to_cluster_a_far_voice_is_a_new_speaker():
    assert labels(SpeakerTracker(None, SpeakerOptions()), [0, 1]) == ["S1", "S2"]
    assert labels(SpeakerTracker(None, SpeakerOptions()), [0, 0]) == ["S1", "S1"]


def test_a_known_count_and_names_are_kept():
    tracker = SpeakerTracker(None, SpeakerOptions(count=2, names=("Ann", "Ben")))
    said = labels(tracker, [0, 1, 2, 0, 1])
    assert said[:2] == ["Ann", "Ben"] and said[2] in ("Ann", "Ben") and said[3:] == ["Ann", "Ben"]  # no third
    assert set(tracker.labels) == {0, 1}


def test_too_little_voice_goes_to_the_speaker_heard_last():
    tracker = SpeakerTracker(None, SpeakerOptions(count=2))
    assert labels(tracker, [None, 0, 1, None, 0]) == ["S1", "S1", "S2", "S2", "S1"]


def test_the_live_run_labels_each_utterance():
    audio, truth = phrase_recording(30, seed=1)
    # the stand-in tells voices by loudness: phrase i peaks at (100 + i) / 1000 (fake_server.py)
    tracker = SpeakerTracker(lambda samples: heard(int(round(np.abs(samples).max() * 1000)) % 2),
                             SpeakerOptions(count=2))
    said = []

    class Told:
        def heard(self, result, record):
            said.extend((s.text, s.speaker) for s in result.segments)

        def gap(self, *args):
            pass

        def status(self, *args):
            pass

        def warning(self, text):
            pass

    LiveRun(ArraySource(audio), Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES, Told(), speakers=tracker).run()
    assert said == [(f"phrase {p.index}.", "S1" if p.index % 2 == 0 else "S2") for p in truth]
