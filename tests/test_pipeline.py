"""The pipeline with a scripted engine standing in for the model: planning, retries, time mapping."""

import numpy as np
import pytest

from fake_server import phrase_recording, phrases_in
from moss_cli.engine import Answer
from moss_cli.pipeline import Pipeline, PipelineOptions, Recording, cut_short, group_words
from moss_cli.results import Word
from moss_cli.tasks import EVENTS, TRANSCRIBE_SENTENCES


class ScriptedEngine:
    """Answers like the model would, from the phrases it hears; overflows on audio longer than `fits`."""

    name = "scripted"
    parallelism = 4

    def ask_many(self, requests):
        self.rounds.append(len(requests))
        return [self.ask(r.audio, r.question, r.options, r.guard) for r in requests]

    def __init__(self, fits=1e9, timed=True):
        self.rounds = []
        self.fits = fits
        self.timed = timed
        self.calls = []

    def ask(self, audio, question, options, guard=None):
        seconds = audio.size / 16_000
        self.calls.append((seconds, options.max_new_tokens))
        heard = phrases_in(audio)
        if seconds > self.fits:
            return Answer("[0.00]la la la la" * 50, "", "", [], "length", 0)
        if not self.timed:
            return Answer(" ".join(f"phrase {p.index}." for p in heard), "", "", [], "stop", 0)
        text = "".join(f"[{p.start:.2f}]phrase {p.index}.[{p.end:.2f}]" for p in heard)
        if "sound events" in question:
            text = "\n".join(f"{p.start:.2f} - {p.end:.2f}: p{p.index}" for p in heard)
        return Answer(text, "", text, [], "stop", 0)

    def ask_text(self, question, options, guard=None):
        return Answer("combined", "", "combined", [], "stop", 0)


@pytest.fixture(scope="module")
def three_minutes():
    audio, truth = phrase_recording(180.0, seed=5)
    return Recording.from_array("three.wav", audio), truth


def test_overflowing_chunks_are_split_and_retried(three_minutes):
    recording, truth = three_minutes
    engine = ScriptedEngine(fits=20.0)
    result = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, recording)
    assert [s.text for s in result.segments] == [f"phrase {p.index}." for p in truth]
    for segment, phrase in zip(result.segments, truth):
        assert abs(segment.start - phrase.start) <= 0.006
    assert any(seconds > 20 for seconds, _ in engine.calls)  # tried whole chunks first
    assert not result.warnings


def test_a_chunk_that_cannot_shrink_is_kept_with_a_warning(three_minutes):
    recording, _ = three_minutes
    result = Pipeline(ScriptedEngine(fits=0.5)).timed(TRANSCRIBE_SENTENCES, recording)
    assert result.warnings and all("token cap" in w for w in result.warnings)


def test_untimed_output_becomes_estimated_segments(three_minutes):
    recording, truth = three_minutes
    result = Pipeline(ScriptedEngine(timed=False)).timed(TRANSCRIBE_SENTENCES, recording)
    assert result.segments and all(s.estimated for s in result.segments)
    assert " ".join(s.text for s in result.segments) == " ".join(f"phrase {p.index}." for p in truth)
    ends = [s.end for s in result.segments]
    assert ends == sorted(ends) and ends[-1] <= recording.duration


def test_token_budget_scales_with_chunk_length(three_minutes):
    recording, _ = three_minutes
    engine = ScriptedEngine()
    Pipeline(engine).timed(TRANSCRIBE_SENTENCES, recording)
    budgets = {round(s): t for s, t in engine.calls}
    assert all(t == int(96 + 12 * s) for s, t in engine.calls)
    engine = ScriptedEngine()
    Pipeline(engine, PipelineOptions(token_cap=77)).timed(TRANSCRIBE_SENTENCES, recording)
    assert {t for _, t in engine.calls} == {77}
    assert budgets


def test_silence_is_not_sent_for_transcription():
    audio = np.zeros(16_000 * 90, dtype=np.float32)
    engine = ScriptedEngine()
    result = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, Recording.from_array("silence.wav", audio))
    assert engine.calls == [] and result.segments == []


def test_events_cover_silence_too(three_minutes):
    recording, truth = three_minutes
    engine = ScriptedEngine()
    result = Pipeline(engine).timed(EVENTS, recording)
    assert abs(sum(seconds for seconds, _ in engine.calls) - recording.duration) < 1e-6
    assert [e.description for e in result.events] == [f"p{p.index}" for p in truth]


def test_loops_are_detected():
    assert cut_short(Answer("a", "", "ok " + "la la " * 20, [], "stop", 0)) == "looped on a repeated phrase"
    assert cut_short(Answer("fine", "", "fine", [], "stop", 0)) is None
    assert cut_short(Answer("x", "", "x", [], "length", 0)) == "hit the token cap"


def test_group_words_into_sentences():
    words = [Word("Hello", 0, 0.4), Word("there.", 0.4, 0.8), Word("New", 0.9, 1.1), Word("one", 1.1, 1.3),
             Word("after", 3.0, 3.4), Word("a", 3.4, 3.5), Word("pause", 3.5, 3.9)]
    segments = group_words(words)
    assert [s.text for s in segments] == ["Hello there.", "New one", "after a pause"]
    assert [(s.start, s.end) for s in segments] == [(0, 0.8), (0.9, 1.3), (3.0, 3.9)]


def test_chunks_are_asked_in_batches(three_minutes):
    recording, truth = three_minutes
    engine = ScriptedEngine(fits=20.0)
    result = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, recording)
    assert 1 < engine.rounds[0] <= engine.parallelism  # several chunks per request round
    assert engine.rounds[1] == 2 * engine.rounds[0]  # too long for the engine: all halves asked together
    assert len(result.segments) == len(truth)


def test_thinking_models_get_room_to_reason(three_minutes):
    recording, _ = three_minutes
    engine = ScriptedEngine()
    engine.thinking = True
    Pipeline(engine).timed(TRANSCRIBE_SENTENCES, recording)
    assert all(t == int(96 + 12 * s + 1024) for s, t in engine.calls)
