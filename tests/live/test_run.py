"""The live run: utterances asked as they end, a bounded backlog with marked gaps, flat memory over hours,
and cues equal to a file run's over the same audio cut at the same utterances."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import srt
from support.fake_server import phrase_recording, sample_phrases
from support.live import ArraySource
from support.scripted import ScriptedEngine

from moss_cli.audio.sources import open_audio
from moss_cli.live.observer import LiveObserver
from moss_cli.live.run import FELL_BEHIND, LiveOptions, LiveRun
from moss_cli.output.appending import AppendingOutputs
from moss_cli.output.writers import SrtWriter
from moss_cli.tasks.pipeline import Pipeline, PipelineOptions
from moss_cli.tasks.recording import Recording
from moss_cli.tasks.specs import EVENTS, TRANSCRIBE_SENTENCES

RATE = 16_000


class Told(LiveObserver):
    def __init__(self):
        self.lines, self.gaps, self.warnings, self.backlogs = [], [], [], []

    def heard(self, result, record):
        self.lines += [s.text for s in result.segments] + [e.description for e in result.events]

    def gap(self, start, end, reason):
        self.gaps.append((start, end, reason))

    def status(self, state, backlog_seconds):
        self.backlogs.append(backlog_seconds)

    def warning(self, text):
        self.warnings.append(text)


class SlowEngine(ScriptedEngine):
    """Slower than real time: each request takes `seconds`."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def ask_many(self, requests):
        time.sleep(self.seconds)
        return super().ask_many(requests)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_utterance_is_answered_and_written_at_stream_times(tmp_path):
    audio, truth = phrase_recording(30, seed=1)
    outputs = AppendingOutputs(tmp_path, "s.live")
    told = Told()
    summary = LiveRun(ArraySource(audio), Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES, told, outputs).run()
    outputs.close()
    assert summary.utterances == len(truth) and not summary.gaps and not summary.interrupted
    assert told.lines == [f"phrase {p.index}." for p in truth]
    records = read_jsonl(tmp_path / "s.live.jsonl")
    for record, phrase in zip(records, truth):
        segment = record["segments"][0]
        assert record["start"] < phrase.start and phrase.end < record["end"]
        assert abs(segment["start"] - phrase.start) < 0.02 and abs(segment["end"] - phrase.end) < 0.02
    assert [r["segments"][0]["id"] for r in records] == list(range(len(truth)))  # ids run on


def test_events_are_cut_where_the_sound_stops(tmp_path):
    audio, truth = phrase_recording(20, seed=2)
    told = Told()
    LiveRun(ArraySource(audio), Pipeline(ScriptedEngine()), EVENTS, told).run()
    assert told.lines == [f"p{p.index}" for p in truth]


def test_an_engine_slower_than_real_time_skips_with_marked_gaps_never_silently(tmp_path):
    audio, truth = phrase_recording(60, seed=3, gaps=(1.0, 2.0))
    outputs = AppendingOutputs(tmp_path, "s.live")
    told = Told()
    options = LiveOptions(max_utterance_seconds=5, max_backlog_seconds=5)
    summary = LiveRun(ArraySource(audio), Pipeline(SlowEngine(0.3)), TRANSCRIBE_SENTENCES, told, outputs, options).run()
    outputs.close()
    assert summary.gaps and told.warnings and all(g[2] == FELL_BEHIND for g in told.gaps)
    assert max(told.backlogs) <= 5
    records = read_jsonl(tmp_path / "s.live.jsonl")
    skipped = [r["skipped"] for r in records if "skipped" in r]
    assert skipped == [[round(g.start, 3), round(g.end, 3)] for g in summary.gaps]
    spans = [(r["start"], r["end"], r["text"]) for r in records if "skipped" not in r]
    for phrase in truth:  # every phrase transcribed, or inside a marked gap
        answered = any(start < phrase.start < end and text == f"phrase {phrase.index}." for start, end, text in spans)
        marked = any(start < phrase.start < end for start, end in skipped)
        assert answered != marked, phrase
    cues = [c.content for c in srt.parse((tmp_path / "s.live.srt").read_text())]
    assert cues.count("[skipped: the model fell behind]") == len(skipped)


def test_with_several_servers_waiting_utterances_are_asked_at_once_and_written_in_order(tmp_path):
    audio, truth = phrase_recording(40, seed=3, gaps=(1.0, 2.0))

    class Concurrent(SlowEngine):
        def __init__(self):
            super().__init__(0.3)
            self.now = self.most = 0
            self.lock = threading.Lock()

        def ask_many(self, requests):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return super().ask_many(requests)
            finally:
                with self.lock:
                    self.now -= 1

    engine, told = Concurrent(), Told()
    options = LiveOptions(max_backlog_seconds=600, concurrency=3)
    summary = LiveRun(ArraySource(audio), Pipeline(engine), TRANSCRIBE_SENTENCES, told, None, options).run()
    assert engine.most == 3 and not summary.gaps
    assert told.lines == [f"phrase {p.index}." for p in truth]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_two_hours_fed_faster_than_real_time_keep_memory_flat(tmp_path):
    """A two-hour stream (silence, a tone each half minute, a phrase each minute) through the whole live path
    as fast as it can go; resident memory after 20 minutes of stream and at the end stay close."""
    phrases = sample_phrases()
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(RATE // 2) / RATE)).astype(np.float32)
    rss = {}

    def stream():
        for half_minute in range(240):  # 2 hours
            block = np.zeros(30 * RATE, np.float32)
            block[RATE : RATE + tone.size] = tone
            if half_minute % 2:
                phrase = phrases[half_minute // 2 % len(phrases)]
                block[10 * RATE : 10 * RATE + phrase.size] = phrase
            for start in range(0, block.size, RATE):
                yield block[start : start + RATE]
            if half_minute in (40, 239):
                rss[half_minute] = rss_bytes()

    outputs = AppendingOutputs(tmp_path, "long.live")
    started = time.monotonic()
    summary = LiveRun(ArraySource(stream), Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES, Told(), outputs,
                      LiveOptions(max_backlog_seconds=600)).run()
    outputs.close()
    assert summary.stream_seconds == 7200 and summary.utterances >= 120
    assert rss[239] - rss[40] < 30 * 2**20, (rss, time.monotonic() - started)
    assert len(read_jsonl(tmp_path / "long.live.jsonl")) == summary.utterances + len(summary.gaps)


def test_a_live_runs_cues_equal_a_file_run_over_the_same_utterances(tmp_path, tiny_engine):
    """The tiny random checkpoint: its text depends on every sample, so equal cues mean equal audio,
    prompts and decoding. Each utterance the live run cut is written as a WAV file and transcribed
    as a file; its cues, moved to the utterance's place in the stream, are the live run's."""
    audio, _ = phrase_recording(9, seed=4, gaps=(1.5, 2.5))
    options = PipelineOptions(token_cap=24)  # random weights ramble to the budget: a short one keeps it quick
    outputs = AppendingOutputs(tmp_path / "live", "s.live")
    LiveRun(ArraySource(audio), Pipeline(tiny_engine, options), TRANSCRIBE_SENTENCES, Told(), outputs).run()
    outputs.close()
    live_cues = list(srt.parse((tmp_path / "live" / "s.live.srt").read_text()))
    expected = []
    records = read_jsonl(tmp_path / "live" / "s.live.jsonl")
    assert len(records) >= 2
    for index, record in enumerate(records):
        start, end = round(record["start"] * RATE), round(record["end"] * RATE)
        path = tmp_path / f"utterance{index}.wav"
        sf.write(path, audio[start:end], RATE, subtype="FLOAT")
        with open_audio(path) as source:
            result = Pipeline(tiny_engine, options).timed(TRANSCRIBE_SENTENCES, Recording(str(path), source))
        with open(tmp_path / f"utterance{index}.srt", "w") as file:
            SrtWriter().write(result, file)
        for cue in srt.parse((tmp_path / f"utterance{index}.srt").read_text()):
            expected.append((cue.content, (cue.start.total_seconds() + record["start"]),
                             cue.end.total_seconds() + record["start"]))
    assert [c.content for c in live_cues] == [text for text, _, _ in expected]
    for cue, (_, start, end) in zip(live_cues, expected):
        assert abs(cue.start.total_seconds() - start) <= 0.0015 and abs(cue.end.total_seconds() - end) <= 0.0015


def test_the_microphone_through_a_stand_in_input_stream():
    from support.live import StandInMicrophone

    from moss_cli.audio.live import MicrophoneSource

    audio, truth = phrase_recording(3.5, seed=9, gaps=(0.3, 0.6))
    source = MicrophoneSource(backend=StandInMicrophone(audio))

    class StopWhenHeard(Told):
        def heard(self, result, record):
            super().heard(result, record)
            if len(self.lines) == len(truth):
                source.stop()  # as Ctrl-C would: a microphone never ends by itself

    told = StopWhenHeard()
    summary = LiveRun(source, Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES, told).run()
    assert told.lines == [f"phrase {p.index}." for p in truth] and not summary.gaps


def test_ctrl_c_drops_an_utterance_the_model_cannot_finish_in_time_and_says_so(tmp_path):
    import signal

    audio, truth = phrase_recording(20, seed=5, gaps=(1.0, 2.0))
    engine = SlowEngine(5.0)
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # Ctrl-C while it works
    outputs = AppendingOutputs(tmp_path, "s.live")
    told = Told()
    started = time.monotonic()
    summary = LiveRun(ArraySource(audio), Pipeline(engine), TRANSCRIBE_SENTENCES, told, outputs,
                      LiveOptions(finish_seconds=0.5)).run()
    outputs.close()
    assert summary.interrupted and time.monotonic() - started < 3
    assert any("dropped" in warning for warning in told.warnings)
    records = read_jsonl(tmp_path / "s.live.jsonl")
    assert records and all(r.get("reason") == "stopped before it was transcribed" for r in records)


def test_a_stalled_source_is_waited_on_and_shown(monkeypatch):
    import moss_cli.live.run as live_run

    monkeypatch.setattr(live_run, "STALL_SECONDS", 0.3)
    audio, truth = phrase_recording(6, seed=6, gaps=(1.0, 1.5))

    def stalling():
        yield audio[: audio.size // 2]
        time.sleep(1.0)  # the stream stops for a while, then goes on
        yield audio[audio.size // 2 :]

    states = []

    class Watching(Told):
        def status(self, state, backlog_seconds):
            states.append(state)

    told = Watching()
    LiveRun(ArraySource(stalling), Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES, told).run()
    assert any(state.startswith("waiting for the source") for state in states)
    assert told.lines == [f"phrase {p.index}." for p in truth]


class CtrlCInSpeech(ArraySource):
    """Plays `audio` until the middle of its second phrase, where Ctrl-C is pressed; then the source
    either goes on (as a live stream does, until stopped) or stalls (a read that does not return)."""

    def __init__(self, audio, at: float, stalls: bool):
        super().__init__(audio)
        self.at, self.stalls = int(at * RATE), stalls

    def blocks(self):
        import signal

        for start in range(0, self.at, self.block):
            yield self.samples[start : min(start + self.block, self.at)]
        time.sleep(0.3)  # the first phrase is answered: nothing in flight when Ctrl-C comes
        os.kill(os.getpid(), signal.SIGINT)
        if self.stalls:
            time.sleep(6)
            return
        for start in range(self.at, self.samples.size, self.block):
            if self.stopping.is_set():
                return
            time.sleep(0.01)
            yield self.samples[start : start + self.block]


@pytest.mark.parametrize("stalls", [False, True], ids=["flowing", "stalled"])
def test_ctrl_c_in_the_middle_of_speech_marks_what_was_heard_of_it(tmp_path, stalls):
    audio, truth = phrase_recording(10, seed=5, gaps=(1.0, 2.0))
    middle = (truth[1].start + truth[1].end) / 2
    outputs = AppendingOutputs(tmp_path, "s.live")
    told = Told()
    started = time.monotonic()
    summary = LiveRun(CtrlCInSpeech(audio, middle, stalls), Pipeline(ScriptedEngine()), TRANSCRIBE_SENTENCES,
                      told, outputs, LiveOptions(finish_seconds=10.0)).run()
    outputs.close()
    # a stalled source is not waited on: nothing in flight, so the run ends at once (it stalls 6 s)
    assert summary.interrupted and time.monotonic() - started < 4
    assert told.lines == ["phrase 0."]
    records = read_jsonl(tmp_path / "s.live.jsonl")
    assert records[0]["text"] == "phrase 0."
    skipped = [r["skipped"] for r in records[1:]]
    # the speech heard when Ctrl-C came is not lost without a mark: a gap from its start to the stop
    assert len(skipped) == 1 and skipped[0][0] <= truth[1].start and skipped[0][1] >= middle - 0.1, skipped
    assert told.gaps and told.gaps[0][2] == "stopped before it was transcribed"


def test_warnings_about_an_utterance_name_its_times_in_the_stream():
    from moss_cli.timeref import seconds_of

    audio, truth = phrase_recording(16, seed=7, gaps=(2.0, 3.0))
    told = Told()
    LiveRun(ArraySource(audio), Pipeline(ScriptedEngine(fits=0.1)), TRANSCRIBE_SENTENCES, told).run()
    spans = [w.split(": ", 1)[0].split("-") for w in told.warnings if "model output" in w]
    assert len(spans) >= len(truth) > 2
    for start, end in spans:  # the file path's "m:ss-m:ss" of the request, here moved to where it lies in the stream
        assert any(p.start - 1 <= seconds_of(start) and seconds_of(end) <= p.end + 1 for p in truth), (start, end)
