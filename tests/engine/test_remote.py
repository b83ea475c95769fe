"""Long recordings through --server: a stand-in server on 127.0.0.1 that answers from the audio it gets."""

import json

import pytest
import srt
import webvtt
from support.fake_server import FakeMoss, FakeServer, phrase_file
from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()
TOLERANCE = 0.006  # the server writes centiseconds; we write milliseconds


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("long") / "rec.wav", 600.0, seed=1)


@pytest.fixture(scope="module")
def twenty_minutes(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("long") / "rec20.wav", 1200.0, seed=2, gaps=(4.0, 9.0))


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
    cues = list(srt.parse(result.stdout))  # a phrase's three words make one line cue
    assert [c.content for c in cues] == [f"w{p.index}a w{p.index}b w{p.index}c" for p in truth]
    for phrase, cue in zip(truth, cues):
        assert abs(cue.start.total_seconds() - phrase.start) <= TOLERANCE
        assert abs(cue.end.total_seconds() - phrase.end) <= TOLERANCE


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


# ---- hostile and malformed servers: per-file errors or handled, never an internal error -------------
def reply_with(content, **message_fields):
    """A chat completion whose message content (and other fields) are exactly as given."""
    return {"choices": [{"message": {"role": "assistant", "content": content, **message_fields},
                         "finish_reason": message_fields.pop("finish_reason", "stop")}]}


def run_cli(server, *args, code=0):
    result = runner.invoke(app, [*map(str, args), "--server", server.url, "-q"])
    assert result.exit_code == code, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    return result


def test_content_as_a_list_of_parts_is_joined(wav_file):
    parts = [{"type": "text", "text": "A dog "}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "barks."}]
    fake = FakeMoss(override=lambda n, body, headers: (200, reply_with(parts)))
    with FakeServer(fake) as server:
        assert run_cli(server, "caption", wav_file).stdout == "A dog barks.\n"


@pytest.mark.parametrize("content", [42, {"unexpected": True}, [{"type": "text", "text": 5}]])
def test_content_of_the_wrong_type_fails_that_file_only(wav_file, tmp_path, content):
    second = tmp_path / "second.wav"
    second.write_bytes(wav_file.read_bytes())
    bad_first = lambda n, body, headers: (200, reply_with(content)) if n == 1 else None
    with FakeServer(FakeMoss(override=bad_first)) as server:
        result = run_cli(server, "caption", wav_file, second, "--errors", tmp_path / "errors.jsonl", code=1)
    assert result.stdout.startswith(f"==> {second} <==\nheard")  # the next file still ran
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert [e["input"] for e in errors] == [str(wav_file)]
    assert "malformed reply" in errors[0]["error"] and server.url in errors[0]["error"]


def test_wrong_typed_usage_and_reasoning_and_lone_surrogates_are_handled(wav_file):
    body = (b'{"choices": [{"message": {"content": "caf\\u00e9 \\ud800 ok", "reasoning_content": 7},'
            b' "finish_reason": "stop"}], "usage": {"prompt_tokens": "lots"}}')
    with FakeServer(FakeMoss(override=lambda n, b, h: (200, body))) as server:
        result = run_cli(server, "caption", wav_file)
    assert result.stdout == "café \ufffd ok\n"


def test_escape_sequences_never_reach_the_terminal(wav_file):
    hostile = "\x1b]52;c;cHduZWQ=\x07Two\tvoices\x1b[2J\x9b31m.\r\nSecond line\x00"
    fake = FakeMoss(override=lambda n, body, headers: (200, reply_with(hostile, reasoning_content="\x1b]0;title\x07hmm")))
    with FakeServer(fake) as server:
        answer = run_cli(server, "ask", wav_file, "Who?", "--show-reasoning")
    assert answer.stdout == "Two\tvoices.\nSecond line\n"  # sequences gone whole; newline and tab kept
    assert "hmm" in answer.stderr and not any(c in answer.stderr for c in "\x1b\x07\x9b")
    fake = FakeMoss(override=lambda n, body, headers: (400, {"error": {"message": "bad \x1b[2Jrequest\x07"}}))
    with FakeServer(fake) as server:
        failed = run_cli(server, "caption", wav_file, code=1)
    assert "HTTP 400 bad request" in failed.stderr and "\x1b" not in failed.stderr


def test_server_errors_name_the_file_and_the_server(wav_file):
    with FakeServer(FakeMoss(override=lambda n, body, headers: (400, {"error": {"message": "too long"}}))) as server:
        result = run_cli(server, "transcribe", wav_file, code=1)
    line = result.stderr.strip()
    assert line.startswith(f"moss: error: {wav_file}: server {server.url}:") and "HTTP 400 too long" in line


def test_a_dead_server_ends_the_run_at_once(wav_file, tmp_path):
    import socket
    import time

    others = []
    for name in "bc":
        others.append(tmp_path / f"{name}.wav")
        others[-1].write_bytes(wav_file.read_bytes())
    # A port held bound without listening: connecting is refused, and no other socket can take the
    # port meanwhile (a just-closed server's port was, now and then in full runs, answered with a reset).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/v1"
        started = time.monotonic()
        result = runner.invoke(app, ["transcribe", str(wav_file), *map(str, others), "--server", url])
    assert result.exit_code == 2 and time.monotonic() - started < 3  # not seconds of retries per file
    errors = [line for line in result.stderr.splitlines() if line.startswith("moss: error")]
    assert len(errors) == 1 and url in errors[0] and "refused" in errors[0]


# ---- secrets ---------------------------------------------------------------------------------------
def test_openai_api_key_is_never_sent(wav_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-for-another-service")
    monkeypatch.delenv("MOSS_API_KEY", raising=False)
    with FakeServer() as server:
        run_cli(server, "caption", wav_file)
    assert server.fake.authorizations == [None]


def test_api_key_with_a_trailing_cr_is_sent_clean_and_never_shown(wav_file, tmp_path):
    echo = lambda n, body, headers: (401, {"error": {"message": f"bad key {headers.get('Authorization')}"}})
    with FakeServer() as server:
        run_cli(server, "caption", wav_file, "--api-key", "sekrit-key\r")
        assert server.fake.authorizations == ["Bearer sekrit-key"]
    with FakeServer(FakeMoss(override=echo)) as server:  # a server that echoes the key back
        result = run_cli(server, "caption", wav_file, "--api-key", "sekrit-key\r", "--errors", tmp_path / "e.jsonl",
                         code=1)
    assert "HTTP 401 bad key Bearer ***" in result.stderr
    assert "sekrit" not in result.stderr + (tmp_path / "e.jsonl").read_text()


def test_a_password_in_the_server_url_stays_out_of_manifests_errors_and_stderr(wav_file, tmp_path):
    with FakeServer() as server:
        url = server.url.replace("http://", "http://alice:hunter2@")
        result = runner.invoke(app, ["transcribe", str(wav_file), "--json", "-o", str(tmp_path / "out"),
                                     "--server", url, "-q"])
        assert result.exit_code == 0, result.stderr
    refuse = lambda n, body, headers: (400, {"error": {"message": "no"}})  # not retried: the test stays fast
    with FakeServer(FakeMoss(override=refuse)) as server:
        url = server.url.replace("http://", "http://alice:hunter2@")
        failed = runner.invoke(app, ["transcribe", str(wav_file), "--server", url, "--errors", str(tmp_path / "e.jsonl")])
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".wav")
    assert ".moss.json" in " ".join(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("."))
    assert failed.exit_code == 1 and "***@127.0.0.1" in failed.stderr
    assert "hunter2" not in written + result.stderr + failed.stderr and "alice" not in failed.stderr


@pytest.mark.parametrize("args,message", [
    (["--api-key", "clé™"], "--api-key"),
    (["--server", "127.0.0.1:8000/v1"], "http://"),
    (["--server", "ftp://example.org/v1"], "http://"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "0"], "timeout"),
    (["--prompt", "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>Hi<|im_end|>\n"], "own audio span"),
])
def test_usage_errors_before_any_work(tmp_path, args, message):
    with FakeServer() as server:
        argv = ["transcribe", str(tmp_path / "absent.wav"), "-o", str(tmp_path / "out"), "--server", server.url, *args]
        result = runner.invoke(app, argv)
        assert server.fake.served == 0 and not server.fake.authorizations
    assert result.exit_code == 2 and message in result.stderr
    assert "absent.wav" not in result.stderr and not (tmp_path / "out").exists()
    assert "clé" not in result.stderr


# ---- warnings and structured answers ---------------------------------------------------------------
def test_caption_warns_when_the_answer_hits_the_token_cap(wav_file):
    capped = lambda n, body, headers: (200, reply_with("A long descrip", finish_reason="length"))
    with FakeServer(FakeMoss(override=capped)) as server:
        result = runner.invoke(app, ["caption", str(wav_file), "--server", server.url, "--max-new-tokens", "4"])
    assert result.exit_code == 0 and result.stdout == "A long descrip\n"
    assert f"moss: warning: {wav_file}: the answer hit the token cap" in result.stderr


def test_speech_caption_json_is_parsed_into_an_object(wav_file):
    fenced = "```json\n{\"gender\": \"female\", \"pitch\": \"low\"}\n```"
    with FakeServer(FakeMoss(override=lambda n, body, headers: (200, reply_with(fenced)))) as server:
        data = json.loads(run_cli(server, "caption", wav_file, "--speech", "--json").stdout)
        plain = run_cli(server, "caption", wav_file, "--speech").stdout
    assert data["voice"] == {"gender": "female", "pitch": "low"}
    assert json.loads(data["text"]) == data["voice"] and "```" not in plain
    with FakeServer(FakeMoss(override=lambda n, body, headers: (200, reply_with("A calm adult voice.")))) as server:
        result = runner.invoke(app, ["caption", str(wav_file), "--speech", "--json", "--server", server.url])
    data = json.loads(result.stdout)
    assert data["text"] == "A calm adult voice." and "voice" not in data and "not a JSON object" in result.stderr


def test_ask_json_keeps_the_raw_answer_of_a_window(twenty_minutes):
    path, _ = twenty_minutes
    said = lambda n, body, headers: (200, reply_with("At 1:00 someone quotes John 3:16; the 9:45 train leaves."))
    with FakeServer(FakeMoss(override=said)) as server:
        record = json.loads(run_cli(server, "ask", path, "What was said at 7:30?", "--json").stdout)
    assert record["raw_answer"] == "At 1:00 someone quotes John 3:16; the 9:45 train leaves."
    assert record["answer"] == "At 7:30 someone quotes John 3:16; the 9:45 train leaves."
    assert record["window"] == {"start": 390.0, "end": 510.0}


def test_ask_about_a_time_past_the_end_says_how_long_the_recording_is(twenty_minutes):
    path, _ = twenty_minutes
    with FakeServer() as server:
        past = run_cli(server, "ask", path, "What was said at 25:00?", code=2)
        huge = run_cli(server, "ask", path, f"What was said at {'9' * 400} seconds?", code=2)
        assert server.fake.served == 0
        ranged = run_cli(server, "ask", path, f"What is said between 19 and {'9' * 400} minutes?")
        assert server.fake.requests[-1]["seconds"] <= 600 and ranged.stdout.startswith("heard")
    assert "past the end: the recording is 20:00 long" in past.stderr and str(path) in past.stderr
    assert "the recording is 20:00 long" in huge.stderr and huge.stderr.count("\n") == 1


# ---- start-up: the remote path needs neither torch nor transformers ---------------------------------
def test_server_runs_import_neither_torch_nor_transformers(wav_file):
    import subprocess
    import sys
    from pathlib import Path

    script = ("import sys\nfrom moss_cli.cli.app import app\n"
              "try:\n    app(sys.argv[1:])\nexcept SystemExit as done:\n    code = done.code\n"
              "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
              "print(code, heavy, file=sys.stderr)\n")
    with FakeServer() as server:
        done = subprocess.run([sys.executable, "-c", script, "transcribe", str(wav_file), "--srt", "--server", server.url,
                               "-q"], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        assert server.fake.requests  # the VAD found speech and a chunk was sent
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr
    assert "phrase" in done.stdout or "-->" in done.stdout
