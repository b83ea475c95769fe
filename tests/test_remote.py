"""Long recordings through --server: a stand-in server on 127.0.0.1 that answers from the audio it gets."""

import io
import json

import pytest
import soundfile as sf
import srt
import webvtt
from typer.testing import CliRunner

from fake_server import FakeMoss, FakeServer, phrase_recording
from moss_cli.cli import app

runner = CliRunner()
TOLERANCE = 0.006  # the server writes centiseconds; we write milliseconds


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory):
    audio, truth = phrase_recording(600.0, seed=1)
    path = tmp_path_factory.mktemp("long") / "rec.wav"
    sf.write(path, audio, 16_000, subtype="PCM_16")
    return path, truth


@pytest.fixture(scope="module")
def twenty_minutes(tmp_path_factory):
    audio, truth = phrase_recording(1200.0, seed=2, gaps=(4.0, 9.0))
    path = tmp_path_factory.mktemp("long") / "rec20.wav"
    sf.write(path, audio, 16_000, subtype="PCM_16")
    return path, truth


def moss(server, *args):
    result = runner.invoke(app, [*map(str, args), "--server", server.url, "-q"])
    assert result.exit_code == 0, result.stderr
    return result


def assert_matches(cues, truth):
    """One cue per phrase, at the phrase's true place in the file: nothing lost or doubled at borders."""
    assert [c[2] for c in cues] == [f"phrase {p.index}." for p in truth]
    for (start, end, _), phrase in zip(cues, truth):
        assert abs(start - phrase.start) <= TOLERANCE and abs(end - phrase.end) <= TOLERANCE


def test_transcribe_srt_vtt_json_on_ten_minutes(ten_minutes, tmp_path):
    path, truth = ten_minutes
    with FakeServer() as server:
        moss(server, "transcribe", path, "--srt", "--vtt", "--json", "-o", tmp_path)
        requests = server.fake.requests
    assert len(requests) >= 600 / 120  # chunks of at most two minutes
    assert all(r["seconds"] <= 120 for r in requests)
    subs = list(srt.parse((tmp_path / "rec.srt").read_text(encoding="utf-8")))
    assert_matches([(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs], truth)
    vtt = webvtt.read(str(tmp_path / "rec.vtt")).captions
    assert_matches([(c.start_in_seconds + c.start_time.milliseconds / 1000, c.end_in_seconds + c.end_time.milliseconds / 1000, c.text) for c in vtt], truth)
    data = json.loads((tmp_path / "rec.json").read_text(encoding="utf-8"))
    assert_matches([(s["start"], s["end"], s["text"]) for s in data["segments"]], truth)
    assert data["duration"] == 600.0 and [s["id"] for s in data["segments"]] == list(range(len(truth)))


def test_transcribe_words_on_ten_minutes(ten_minutes):
    path, truth = ten_minutes
    with FakeServer() as server:
        result = moss(server, "transcribe", path, "--words", "--srt")
    cues = list(srt.parse(result.stdout))
    assert [c.content for c in cues] == [f"w{p.index}{k}" for p in truth for k in "abc"]
    for phrase, first, last in zip(truth, cues[0::3], cues[2::3]):
        assert abs(first.start.total_seconds() - phrase.start) <= TOLERANCE
        assert abs(last.end.total_seconds() - phrase.end) <= TOLERANCE


def test_events_on_ten_minutes(ten_minutes):
    path, truth = ten_minutes
    with FakeServer() as server:
        result = moss(server, "events", path, "--json")
        assert all(r["seconds"] <= 120 for r in server.fake.requests)
    events = json.loads(result.stdout)["events"]
    assert [e["description"] for e in events] == [f"phrase {p.index} spoken" for p in truth]
    for event, phrase in zip(events, truth):
        assert abs(event["start"] - phrase.start) <= TOLERANCE and abs(event["end"] - phrase.end) <= TOLERANCE


def test_ask_at_a_time_sends_only_audio_around_it(twenty_minutes):
    path, truth = twenty_minutes
    with FakeServer() as server:
        result = moss(server, "ask", path, "what was said at 7:30?")
        requests = server.fake.requests
    assert len(requests) == 1
    request = requests[0]
    assert request["seconds"] <= 600
    heard = [p for p in truth if p.index in request["phrases"]]
    assert heard and all(abs((p.start + p.end) / 2 - 450) <= 90 for p in heard)
    assert any(p.start <= 450 <= p.end or abs(p.start - 450) < 10 for p in heard)
    assert "at 1:00" in request["text"]  # the question now points into the window
    assert result.stdout.startswith("heard ")


def test_ask_without_a_time_covers_the_whole_file(twenty_minutes):
    path, truth = twenty_minutes
    with FakeServer() as server:
        result = moss(server, "ask", path, "How many speakers are there?")
        requests = server.fake.requests
    audio_requests = [r for r in requests if r["seconds"] is not None]
    assert len(audio_requests) >= 2 and all(r["seconds"] <= 600 for r in audio_requests)
    heard = sorted(i for r in audio_requests for i in r["phrases"])
    assert heard == [p.index for p in truth]
    combine = requests[-1]
    assert combine["seconds"] is None and "How many speakers are there?" in combine["text"]
    assert result.stdout.strip() == f"combined {len(audio_requests)}"


def test_retries_then_succeeds(wav_file):
    with FakeServer(FakeMoss(fail_first=2)) as server:
        result = moss(server, "caption", wav_file)
        assert server.fake.served == 3
    assert result.stdout.startswith("heard")


def test_server_down_is_one_line(wav_file):
    with FakeServer() as server:
        url = server.url
    result = runner.invoke(app, ["caption", str(wav_file), "--server", url, "-q"])
    assert result.exit_code == 2  # no server: the run cannot go on
    assert result.stderr.count("\n") == 1 and url in result.stderr and "Traceback" not in result.stderr


def test_request_carries_wav_and_sampling_options(wav_file):
    with FakeServer() as server:
        moss(server, "describe-music", wav_file, "--temperature", "0.7", "--top-p", "0.9", "--seed", "3")
        body = server.fake.requests[0]["body"]
    assert body["model"] == "moss-fake"
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["top_k"] == 50 and body["seed"] == 3
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert body["messages"][1]["content"][1]["text"].startswith("Please describe this piece of music")


def test_api_key_and_a_server_without_a_model_list(wav_file, monkeypatch):
    monkeypatch.setenv("MOSS_API_KEY", "sekrit")
    with FakeServer(FakeMoss(list_models=False)) as server:
        result = runner.invoke(app, ["caption", str(wav_file), "--server", server.url, "-q", "-m", "my/model"])
        assert result.exit_code == 0, result.stderr
        assert server.fake.requests[0]["body"]["model"] == "my/model"
        assert server.fake.authorizations == ["Bearer sekrit"]
