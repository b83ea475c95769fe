"""Directories of recordings through --server: bad inputs, mirrored outputs, safe re-runs, interruptions."""

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import srt
from support.corpus import build_corpus, encode_with_pyav, speech
from support.fake_server import FakeMoss, FakeServer
from typer.testing import CliRunner

from moss_cli.audio.sources import open_audio
from moss_cli.batch.inputs import expand_inputs
from moss_cli.cli.app import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "in"
    return root, build_corpus(root)


def transcribe(server, *args, input=None):
    return runner.invoke(app, ["transcribe", *map(str, args), "--server", server.url], input=input)


def test_mixed_directory(corpus, tmp_path):
    root, files = corpus
    out, errors = tmp_path / "out", tmp_path / "errors.jsonl"
    with FakeServer() as server:
        result = transcribe(server, root, "--srt", "--json", "-o", out, "--errors", errors)
    assert result.exit_code == 1
    for path in files["good"]:
        relative = path.relative_to(root).with_suffix("")
        srt_file, json_file = out / relative.parent / f"{relative.name}.srt", out / relative.parent / f"{relative.name}.json"
        list(srt.parse(srt_file.read_text(encoding="utf-8")))  # complete and valid
        assert json.loads(json_file.read_text(encoding="utf-8"))["audio"] == str(path)
    assert (out / "a" / "talk.srt").read_text() != (out / "b" / "talk.srt").read_text()
    assert json.loads((out / "silence.json").read_text())["segments"] == []
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("moss: error: ")]
    assert sorted(error_lines) == sorted(f"moss: error: {p}: " + line.split(f"{p}: ", 1)[1]
                                         for p in files["bad"] for line in error_lines if f"{p}:" in line)
    assert len(error_lines) == len(files["bad"])
    recorded = [json.loads(line) for line in errors.read_text().splitlines()]
    assert sorted(r["input"] for r in recorded) == sorted(map(str, files["bad"]))
    assert f"{len(files['good'])} done, 0 skipped, {len(files['bad'])} failed" in result.stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_skip_existing_makes_no_model_calls(corpus, tmp_path):
    root, files = corpus
    out = tmp_path / "out"
    with FakeServer() as server:
        transcribe(server, root, "--vtt", "-o", out)
        first = len(server.fake.requests)
        again = transcribe(server, root, "--vtt", "-o", out, "--skip-existing")
        assert len(server.fake.requests) == first  # nothing asked twice
        assert f"0 done, {len(files['good'])} skipped" in again.stderr
        changed = transcribe(server, root, "--vtt", "-o", out, "--skip-existing", "--max-line-chars", "30")
        assert len(server.fake.requests) > first  # other options: other outputs
        assert "0 skipped" in changed.stderr
        calls = len(server.fake.requests)
        sf.write(files["good"][0], speech(7, 99), 16_000, subtype="PCM_16")  # new content, same name
        redo = transcribe(server, root, "--vtt", "-o", out, "--skip-existing", "--max-line-chars", "30")
        assert len(server.fake.requests) > calls and "1 done" in redo.stderr


def test_foreign_outputs_are_not_overwritten(tmp_path):
    audio = tmp_path / "in" / "talk.wav"
    audio.parent.mkdir()
    sf.write(audio, speech(5, 1), 16_000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "talk.srt").write_text("my own careful edits\n")
    with FakeServer() as server:
        refused = transcribe(server, audio, "--srt", "-o", out)
        assert refused.exit_code == 1 and "--overwrite" in refused.stderr
        assert (out / "talk.srt").read_text() == "my own careful edits\n"
        assert transcribe(server, audio, "--srt", "-o", out, "--overwrite").exit_code == 0
        assert (out / "talk.srt").read_text().startswith("1\n")
        assert transcribe(server, audio, "--srt", "-o", out).exit_code == 0  # its own output: fine


def test_input_forms(tmp_path, monkeypatch):
    for rel in ("rec/a/x.wav", "rec/b/x.wav", "rec/b/x.mp3", "rec/c/notes.txt", "rec/y.flac"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    by_dir = expand_inputs(["rec"]).files
    assert [str(i.path) for i in by_dir] == ["rec/a/x.wav", "rec/b/x.mp3", "rec/b/x.wav", "rec/y.flac"]
    assert [str(i.stem) for i in by_dir] == ["a/x", "b/x.mp3", "b/x.wav", "y"]  # x.mp3 and x.wav both kept
    listed = expand_inputs(["-"], stdin=io.BytesIO(b"rec/a/x.wav\n\n# a comment\nrec/b/x.wav\nrec/a/x.wav\n")).files
    assert [str(i.stem) for i in listed] == ["a/x", "b/x"]  # mirrored below their common folder, once each
    Path("list.txt").write_text("rec/y.flac\n")
    assert [str(i.path) for i in expand_inputs(["@list.txt", "rec/*/x.wav"]).files] == ["rec/y.flac", "rec/a/x.wav", "rec/b/x.wav"]


def test_no_inputs_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["transcribe", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no audio files" in result.stderr
    missing_list = runner.invoke(app, ["caption", f"@{tmp_path / 'nope.txt'}"])
    assert missing_list.exit_code == 2 and "nope.txt" in missing_list.stderr


@pytest.mark.parametrize("name,codec,video", [
    ("voice.m4a", "aac", False), ("voice.opus", "libopus", False), ("voice.webm", "libopus", False),
    ("voice.mp4", "aac", False), ("film.mkv", "aac", True),
])
def test_container_formats_decode(tmp_path, name, codec, video):
    samples = speech(6, 3)
    path = encode_with_pyav(tmp_path / name, samples, codec, video=video)
    with open_audio(path) as source:
        assert abs(source.duration - 6.0) < 0.1
        decoded = source.read()
    n = min(decoded.size, samples.size) // 1600 * 1600
    envelope = lambda x: np.sqrt((x[:n].reshape(-1, 1600) ** 2).mean(axis=1))  # 100 ms loudness
    assert np.corrcoef(envelope(decoded), envelope(samples))[0, 1] > 0.9
    with FakeServer() as server:
        result = transcribe(server, path, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["segments"]


def slow_server(delay):
    fake = FakeMoss()
    answer = fake.answer

    def slowly(body):
        time.sleep(delay)
        return answer(body)

    fake.answer = slowly
    return fake


def start_moss(*args):
    # SIGINT as a terminal would send it, also when the tests themselves run in the background
    # (`pytest &` in a script), where it is ignored and the ignoring is inherited.
    return subprocess.Popen([sys.executable, "-m", "moss_cli.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def recordings(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        sf.write(folder / f"rec{i}.wav", speech(6, i), 16_000, subtype="PCM_16")
    return folder


def start_and_await_first_output(root: Path, out: Path, server):
    """A run in its own process, returned once it has finished its first file."""
    process = start_moss("transcribe", root, "--srt", "-o", out, "--server", server.url)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.srt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


def test_killed_run_leaves_no_partial_files_and_resumes(tmp_path):
    root, out = recordings(tmp_path / "in", 6), tmp_path / "out"
    with FakeServer(slow_server(0.4)) as server:
        process = start_and_await_first_output(root, out, server)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(0.8)  # a request the killed run had in flight still lands at the server
        finished = sorted(p.name for p in out.glob("*.srt"))
        assert 0 < len(finished) < 6
        for path in out.glob("*.srt"):
            assert list(srt.parse(path.read_text())) and (out / f".{path.name}.moss.json").exists()
        before = len(server.fake.requests)
        resumed = runner.invoke(app, ["transcribe", str(root), "--srt", "-o", str(out), "--server", server.url,
                                      "--skip-existing"])
        assert resumed.exit_code == 0
        assert len(server.fake.requests) - before == 6 - len(finished)  # exactly the missing ones
    assert sorted(p.name for p in out.glob("*.srt")) == [f"rec{i}.srt" for i in range(6)]
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_ctrl_c_stops_cleanly_with_a_summary(tmp_path):
    root, out = recordings(tmp_path / "in", 4), tmp_path / "out"
    with FakeServer(slow_server(0.5)) as server:
        process = start_and_await_first_output(root, out, server)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in err and "skipped" in err and "Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    for path in out.glob("*.srt"):
        list(srt.parse(path.read_text()))


def test_three_hours_of_silence_in_bounded_memory(tmp_path):
    path = tmp_path / "long.flac"
    burst = speech(4, 5)
    with sf.SoundFile(path, "w", 16_000, 1, format="FLAC") as file:
        for minute in range(180):
            block = np.zeros(16_000 * 60, np.float32)
            if minute == 100:
                block[16_000 * 20 : 16_000 * 20 + burst.size] = burst
            file.write(block)
    with FakeServer() as server:
        script = ("import resource, subprocess, sys; "
                  "p = subprocess.run([sys.executable, '-m', 'moss_cli.cli'] + sys.argv[1:], capture_output=True, text=True); "
                  "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stdout)")
        done = subprocess.run([sys.executable, "-c", script, "transcribe", str(path), "--json", "-q",
                               "--server", server.url], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert len(server.fake.requests) == 1
    code, peak_kib = map(int, done.stdout.splitlines()[0].split())
    result = json.loads("\n".join(done.stdout.splitlines()[1:]))
    assert code == 0 and result["duration"] == 10800.0
    onset = 100 * 60 + 20 + np.flatnonzero(burst)[0] / 16_000
    assert len(result["segments"]) == 1 and abs(result["segments"][0]["start"] - onset) < 0.01
    assert peak_kib < 1_000_000  # the 16 kHz float samples alone would take 690 MB


def test_jobs_send_requests_at_once_with_the_same_results(tmp_path):
    from support.fake_server import phrase_recording

    audio, truth = phrase_recording(300.0, seed=4)
    path = tmp_path / "five.wav"
    sf.write(path, audio, 16_000, subtype="PCM_16")
    outputs = {}
    for jobs in (1, 4):
        with FakeServer(slow_server(0.2)) as server:
            # Chunks under 30 s: longer audio probes a server's limit one request at a time (RequestSizeLimit).
            result = transcribe(server, path, "--json", "-q", "--jobs", jobs, "--max-request-seconds", 25)
            outputs[jobs] = json.loads(result.stdout)["segments"]
            most = server.fake.most_in_flight
        assert most == (1 if jobs == 1 else min(4, len(server.fake.requests)))
    assert outputs[1] == outputs[4] and len(outputs[1]) == len(truth)


def test_jobs_decode_ahead_in_a_batch(corpus, tmp_path):
    root, files = corpus
    with FakeServer() as server:
        one = transcribe(server, root, "--json", "-o", tmp_path / "one")
        three = transcribe(server, root, "--json", "-o", tmp_path / "three", "-j", "3")
    assert one.exit_code == three.exit_code == 1
    for path in (p for p in (tmp_path / "one").rglob("*.json") if not p.name.startswith(".")):
        twin = tmp_path / "three" / path.relative_to(tmp_path / "one")
        assert json.loads(path.read_text())["segments"] == json.loads(twin.read_text())["segments"]
