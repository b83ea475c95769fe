"""The pipeline with a scripted engine standing in for the model: planning, retries, time mapping."""

import numpy as np
import pytest
from support.fake_server import phrase_recording
from support.scripted import ScriptedEngine

from moss_cli.engine.local.engine import Answer
from moss_cli.results import Word
from moss_cli.tasks.answers import cut_short, group_words
from moss_cli.tasks.pipeline import Pipeline, PipelineOptions, Recording
from moss_cli.tasks.specs import EVENTS, TRANSCRIBE_SENTENCES


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


@pytest.mark.parametrize("text,looping", [
    ("ok " + "la la " * 20, True),
    ("Intro. " + "thank you very much. " * 6, True),
    ("Intro. " + "thank you very much. " * 5, False),  # five copies are not a loop yet
    ("[0.00]la la la la" * 50, True),  # no space between copies
    ("hello world\n  hello   world\thello world hello world hello world hello world", True),  # whitespace aside
    ("a" * 18, True),
    ("no no no no no", False),  # a two-letter phrase needs its space to reach three characters: five is short
    ("ab " * 5 + "ab", True),
    ("The end of a normal sentence, with no repetition at all.", False),
    (" " * 200, False),  # whitespace alone is no phrase
    ("loop " * 10 + " " * 500, True),  # trailing whitespace does not hide a loop
    ("x" + " " * 64 + "x", False),
    ("la " * 10 + "but then it goes on normally", False),  # a loop must be at the end
    ("%s" % ("x" * 121) * 6, True), ("".join(f"phrase {i:03d} " for i in range(100)), False),
])
def test_loop_detector_on_real_loops_and_non_loops(text, looping):
    from moss_cli.tasks.answers import ends_in_loop

    assert ends_in_loop(text) is looping


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


class TextEngine(ScriptedEngine):
    """Answers text tasks with a fixed answer and finish reason."""

    def __init__(self, text, finish="stop"):
        super().__init__()
        self.text, self.finish = text, finish

    def ask(self, audio, question, options, guard=None):
        self.calls.append((audio.size / 16_000, options.max_new_tokens))
        return Answer(self.text, "", self.text, [], self.finish, 0)

    ask_text = lambda self, question, options, guard=None: self.ask(np.zeros(1), question, options, guard)


def test_text_answers_warn_when_cut_at_the_cap_or_looping(three_minutes):
    from moss_cli.tasks.specs import CAPTION

    recording, _ = three_minutes
    capped = Pipeline(TextEngine("A piano plays a slow", "length")).described(CAPTION, recording, "combine")
    assert capped.text == "A piano plays a slow" and any("token cap" in w for w in capped.warnings)
    looping = Pipeline(TextEngine("A piano. " + "la la la " * 10)).ask(recording, "What plays?")
    assert any("looped" in w for w in looping.warnings)
    fine = Pipeline(TextEngine("A piano plays.")).described(CAPTION, recording, "combine")
    assert fine.warnings == []


class ThinkingEngine(TextEngine):
    """A Thinking model's reply, reasoning split off as every engine splits it."""

    def ask(self, audio, question, options, guard=None):
        from moss_cli.engine.base import split_reasoning

        reasoning, text = split_reasoning(self.text)
        return Answer(text, reasoning, self.text, [], self.finish, 0)


@pytest.mark.parametrize("reply,finish", [("<think>The sound is a piano, or", "stop"),
                                          ("<think>The sound is a piano, or", "length"),
                                          ("<think>hm</think>A<think>more thought", "stop")])
def test_an_answer_that_is_only_unfinished_reasoning_is_warned_about(three_minutes, reply, finish):
    from moss_cli.tasks.answers import ONLY_REASONING, cut_short
    from moss_cli.tasks.specs import CAPTION

    recording, _ = three_minutes
    result = Pipeline(ThinkingEngine(reply, finish)).described(CAPTION, recording, "combine")
    if result.text:  # an answer before the unclosed block: it is the answer
        assert result.text == "A"
        return
    assert result.warnings == ["the answer is only unfinished reasoning; --max-new-tokens raises the cap"]
    assert cut_short(Answer("", "hm", "", [], "length", 0)) == ONLY_REASONING  # a server's reasoning field
    assert cut_short(Answer("", "hm", "<think>hm</think>", [], "stop", 0)) is None  # finished, said nothing


@pytest.fixture(scope="module")
def half_minute():
    audio, _ = phrase_recording(30.0, seed=6)
    return Recording.from_array("half.wav", audio)


def test_a_custom_prompt_without_timestamps_is_warned_about(half_minute):
    recording = half_minute
    task = TRANSCRIBE_SENTENCES.with_prompt("Write down what is said.")
    result = Pipeline(ScriptedEngine(timed=False)).timed(task, recording)
    assert all(s.estimated for s in result.segments)
    assert len(result.warnings) == 1 and "estimated" in result.warnings[0] and "--prompt" in result.warnings[0]
    assert not Pipeline(ScriptedEngine()).timed(task, recording).warnings  # times given: nothing to say


def test_a_question_about_a_time_past_the_end_is_an_error_before_any_request():
    from moss_cli.errors import QuestionError

    audio, _ = phrase_recording(900.0, seed=4)
    engine = TextEngine("anything")
    with pytest.raises(QuestionError, match=r"'at 20:00', past the end: the recording is 15:00 long"):
        Pipeline(engine).ask_all(Recording.from_array("long.wav", audio), ["Who speaks?", "What is said at 20:00?"])
    assert engine.calls == []


def test_server_errors_name_the_recording(half_minute):
    from moss_cli.errors import ServerError

    class Failing(ScriptedEngine):
        def ask(self, *args, **kwargs):
            raise ServerError("server http://x/v1: HTTP 500 boom")

    with pytest.raises(ServerError, match=r"^half.wav: server http://x/v1: HTTP 500 boom$"):
        Pipeline(Failing()).timed(TRANSCRIBE_SENTENCES, half_minute)


# ---- request-size limits and kept loops ---------------------------------------------------------------
class LimitedEngine(ScriptedEngine):
    """Refuses audio longer than `limit` seconds once, as a vLLM server does, and knows the limit after."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.max_request_seconds, self.refused = limit, None, 0

    def ask(self, audio, question, options, guard=None):
        from moss_cli.errors import RequestTooLongError

        if audio.size / 16_000 > self.limit:
            assert self.max_request_seconds is None  # never sent again once the limit is known
            self.refused += 1
            self.max_request_seconds = self.limit - 1
            raise RequestTooLongError("too long", self.max_request_seconds)
        return super().ask(audio, question, options, guard)


def test_chunks_are_cut_to_a_limit_learnt_mid_run(three_minutes):
    recording, truth = three_minutes
    engine = LimitedEngine(limit=25.0)
    result = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, recording)
    assert engine.refused == 1 and all(seconds <= 24 for seconds, _ in engine.calls)
    assert [s.text for s in result.segments] == [f"phrase {p.index}." for p in truth]


@pytest.mark.parametrize("ask", [False, True])
def test_descriptions_and_answers_use_windows_that_fit(three_minutes, ask):
    from moss_cli.tasks.specs import CAPTION

    recording, truth = three_minutes
    engine = LimitedEngine(limit=50.0)
    pipeline = Pipeline(engine)
    result = pipeline.ask(recording, "Who speaks?") if ask else pipeline.described(CAPTION, recording, "combine")
    assert engine.refused == 1 and len(engine.calls) >= 4 and all(seconds <= 49 for seconds, _ in engine.calls)
    assert abs(sum(seconds for seconds, _ in engine.calls) - recording.duration) < 1e-6  # all of it heard
    assert result.text == "combined"


def test_max_request_seconds_is_a_limit_from_the_start(three_minutes):
    recording, truth = three_minutes
    engine = ScriptedEngine()
    result = Pipeline(engine, PipelineOptions(max_request_seconds=20.0)).timed(TRANSCRIBE_SENTENCES, recording)
    assert all(seconds <= 20 for seconds, _ in engine.calls)
    assert [s.text for s in result.segments] == [f"phrase {p.index}." for p in truth]


class LoopingEngine(ScriptedEngine):
    """Every answer starts right, then loops until the guard stops it."""

    def ask(self, audio, question, options, guard=None):
        answer = super().ask(audio, question, options, guard)
        looping = answer.text[:40] + " and so on" * 12
        return Answer(looping, "", looping, [], "repetition", 0)


def test_a_loop_kept_at_the_smallest_size_is_cut_after_its_first_copy(three_minutes):
    recording, _ = three_minutes
    result = Pipeline(LoopingEngine()).timed(TRANSCRIBE_SENTENCES, recording)
    copies = sum(s.text.count("so on") for s in result.segments)
    assert result.segments and copies == len(result.warnings)  # one copy per kept chunk, not five
    assert result.warnings and all("looped on a repeated phrase; kept up to where the loop began" in w
                                   for w in result.warnings)


def test_chunks_are_asked_while_later_blocks_are_scanned_with_the_same_results(monkeypatch):
    """A file's first chunks go to the model while later blocks are still scanned for speech; the
    chunks, their batches and the results are those of a scan finished beforehand."""
    from moss_cli.audio import vad

    monkeypatch.setattr(vad, "BLOCK_SECONDS", 20)  # many blocks in a few minutes of audio
    audio, _ = phrase_recording(240.0, seed=3)
    finished = Recording.from_array("before.wav", audio)
    vad.speech_regions(finished.source)  # scanned whole, as an input scanned ahead is
    vad.speech_scan(finished.source).regions()
    engine = ScriptedEngine()
    engine.parallelism = 2
    expected = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, finished)
    expected_rounds = list(engine.rounds)

    real_regions = vad.speech_regions_in

    def slow_regions(samples, stop=None):  # a slow machine's scan: each block takes a while
        import time

        time.sleep(0.1)
        return real_regions(samples, stop)

    monkeypatch.setattr(vad, "speech_regions_in", slow_regions)
    streamed = Recording.from_array("streamed.wav", audio)
    engine, seen = ScriptedEngine(), []
    engine.parallelism = 2
    asked = engine.ask_many
    engine.ask_many = lambda requests: seen.append(streamed.source.scan.found(beyond=-1)[1]) or asked(requests)
    got = Pipeline(engine).timed(TRANSCRIBE_SENTENCES, streamed)
    assert seen[0] < streamed.n_samples  # the first batch was asked before the scan had reached the end
    assert engine.rounds == expected_rounds and len(expected_rounds) >= 2
    assert [(s.start, s.end, s.text) for s in got.segments] == [(s.start, s.end, s.text) for s in expected.segments]
    assert got.segments


def test_a_failing_scan_fails_the_file_with_its_error(monkeypatch):
    from moss_cli.audio import vad
    from moss_cli.errors import AudioError

    monkeypatch.setattr(vad, "BLOCK_SECONDS", 20)
    audio, _ = phrase_recording(120.0, seed=4)
    recording = Recording.from_array("damaged.wav", audio)
    real_read = recording.source.read

    def read(start=0, end=None):
        if start > 60 * 16_000:
            raise AudioError("damaged.wav: truncated or damaged: the audio stops at 60.0 s of 120.0 s")
        return real_read(start, end)

    recording.source.read = read
    with pytest.raises(AudioError, match="damaged.wav: truncated"):
        Pipeline(ScriptedEngine()).timed(TRANSCRIBE_SENTENCES, recording)
