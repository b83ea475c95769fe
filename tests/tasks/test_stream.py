"""Pipeline.stream: each chunk's result as soon as it is parsed; timed() is the stream collected."""

import pytest
from support.fake_server import phrase_recording
from support.scripted import ScriptedEngine

from moss_cli.tasks.pipeline import Pipeline, Recording
from moss_cli.tasks.specs import CAPTION, EVENTS, TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS


@pytest.fixture(scope="module")
def five_minutes():
    audio, truth = phrase_recording(300.0, seed=11)
    return Recording.from_array("five.wav", audio), truth


def test_the_first_chunk_arrives_before_the_last_is_decoded(five_minutes):
    recording, _ = five_minutes
    engine = ScriptedEngine()
    engine.parallelism = 1  # one chunk a request: each answer can be handed on at once
    stream = Pipeline(engine).stream(TRANSCRIBE_SENTENCES, recording)
    first = next(stream)
    asked_then = len(engine.calls)
    rest = list(stream)
    assert asked_then == 1 and len(rest) >= 2 and len(engine.calls) == 1 + len(rest)
    assert first.segments and first.start <= first.segments[0].start


@pytest.mark.parametrize("task", [TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS, EVENTS])
def test_timed_is_the_stream_collected(five_minutes, task):
    recording, truth = five_minutes
    pieces = list(Pipeline(ScriptedEngine()).stream(task, recording))
    result = Pipeline(ScriptedEngine()).timed(task, recording)
    assert [p.start for p in pieces] == sorted(p.start for p in pieces)  # time order
    streamed = [(s.start, s.end, s.text) for p in pieces for s in p.segments]
    assert streamed == [(s.start, s.end, s.text) for s in result.segments]
    assert [(e.start, e.end, e.description) for p in pieces for e in p.events] == \
        [(e.start, e.end, e.description) for e in result.events]
    assert len(result.segments or result.events) >= len(truth) // 2


def test_a_consumer_that_stops_early_stops_the_asking(five_minutes):
    recording, _ = five_minutes
    engine = ScriptedEngine()
    engine.parallelism = 1
    stream = Pipeline(engine).stream(TRANSCRIBE_SENTENCES, recording)
    next(stream)
    stream.close()
    assert len(engine.calls) == 1


def test_a_whole_recording_task_is_not_streamed(five_minutes):
    with pytest.raises(ValueError):
        next(Pipeline(ScriptedEngine()).stream(CAPTION, five_minutes[0]))
