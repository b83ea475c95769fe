"""Utterances cut from a live stream: at the file path's pauses, at the length limit, with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from support.fake_server import phrase_recording

from moss_cli.audio.utterances import FRAME, UtteranceCutter, energy_probability
from moss_cli.audio.vad import speech_regions_in

RATE = 16_000


def cut(audio: np.ndarray, cutter: UtteranceCutter, block: int = 1600):
    found = []
    for start in range(0, audio.size, block):
        found += cutter.feed(audio[start : start + block])
    return found + cutter.finish()


def test_each_phrase_is_one_utterance_cut_in_the_pause_after_it():
    audio, truth = phrase_recording(40, seed=1)
    utterances = cut(audio, UtteranceCutter(30))
    assert [u.cut for u in utterances] == ["pause"] * len(truth)
    for utterance, phrase in zip(utterances, truth):
        assert utterance.start / RATE < phrase.start < phrase.end < utterance.end / RATE
        np.testing.assert_array_equal(utterance.samples, audio[utterance.start : utterance.end])
    # where the file path's VAD finds the same speech, give or take a few frames (its state starts afresh per block)
    regions = speech_regions_in(audio)
    assert len(regions) == len(utterances)
    for (start, end), utterance in zip(regions, utterances):
        assert abs(start - utterance.start) < 6 * FRAME and abs(end - utterance.end) < 8 * FRAME


def test_the_cut_does_not_depend_on_how_the_stream_arrives():
    audio, _ = phrase_recording(20, seed=2)
    by_block = [(u.start, u.end) for u in cut(audio, UtteranceCutter(30), block=1600)]
    assert by_block == [(u.start, u.end) for u in cut(audio, UtteranceCutter(30), block=777)]


def test_speech_without_a_pause_is_cut_at_the_longest_utterance():
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(7.5 * RATE)) / RATE)).astype(np.float32)
    audio = np.concatenate([np.zeros(RATE, np.float32), tone, np.zeros(RATE, np.float32)])
    utterances = cut(audio, UtteranceCutter(3, detector=energy_probability))
    assert [u.cut for u in utterances] == ["length", "length", "pause"]
    assert all(u.seconds <= 3 for u in utterances)
    for before, after in zip(utterances, utterances[1:]):
        assert before.end == after.start  # nothing lost between the pieces of one long stretch


def test_a_stream_that_ends_mid_speech_ends_its_utterance():
    audio, truth = phrase_recording(6, seed=5, gaps=(1.0, 1.5))
    stop = int(truth[-1].start * RATE) + RATE // 2
    utterances = cut(audio[:stop], UtteranceCutter(30))
    assert utterances[-1].cut == "end" and utterances[-1].end == stop


def test_memory_holds_only_the_utterance_being_spoken():
    cutter = UtteranceCutter(5, detector=energy_probability)
    loud = (0.3 * np.sin(np.arange(RATE) / 3)).astype(np.float32)
    held = []
    for _ in range(30):  # 30 s of sound without a pause
        cutter.feed(loud)
        held.append(sum(f.size for f in cutter._frames or []) + sum(f.size for f in cutter._before))
    assert max(held) <= 5 * RATE + FRAME


def test_too_short_a_limit_is_refused():
    with pytest.raises(ValueError):
        UtteranceCutter(0.5)
