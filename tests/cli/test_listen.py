"""`moss listen` end to end: stdin and a URL fed in real time, lines printed while the audio still comes,
Ctrl-C and kill -9 leaving valid files, the one-line errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import srt
from support.fake_server import FakeMoss, FakeServer, phrase_file
from support.live import StreamingServer, feed_in_real_time

LINE = re.compile(r"^\[(\d\d):(\d\d):(\d\d\.\d\d) -> (\d\d):(\d\d):(\d\d\.\d\d)\] (.*)$")


class Listening:
    """`moss listen ...` running, its stdout lines collected with the moment each arrived."""

    def __init__(self, args: list[str], stdin=subprocess.DEVNULL):
        self.process = subprocess.Popen([sys.executable, "-m", "moss_cli.cli", "listen", *args], stdin=stdin,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)  # bytes, unbuffered
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.decode().rstrip("\n")))

    def wait_for_lines(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
        assert len(self.lines) >= count, (self.lines, self.process.poll())

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code, self.process.stderr.read().decode()

    def texts(self) -> list[str]:
        return [LINE.match(line).group(7) for _, line in self.lines]


def seconds(hours: str, minutes: str, secs: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def assert_valid_outputs(folder, stem: str) -> tuple[list, list[dict]]:
    cues = list(srt.parse((folder / f"{stem}.srt").read_text(), ignore_errors=False))
    vtt = (folder / f"{stem}.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n") and (vtt == "WEBVTT\n\n" or vtt.endswith("\n\n"))
    return cues, [json.loads(line) for line in (folder / f"{stem}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("listen") / "talk.wav", 5, seed=6, gaps=(1.0, 1.4))


def test_stdin_fed_in_real_time_prints_each_utterance_while_the_stream_goes_on(talk, tmp_path):
    path, truth = talk
    data = path.read_bytes()
    with FakeServer() as server:
        run = Listening(["-", "--server", server.url, "-o", str(tmp_path), "--clock"], stdin=subprocess.PIPE)
        fed_from = time.monotonic()
        feeder = feed_in_real_time(data, run.process.stdin.write, 32_000, head=44, close=run.process.stdin.close,
                                   step_seconds=0.02)
        feeder.join()
        fed_until = time.monotonic()
        code, stderr = run.finish()
    assert code == 0, stderr
    assert fed_until - fed_from >= 4.5  # it was fed at the pace of the audio
    lines = [LINE.match(line.split(" ", 1)[1]) for _, line in run.lines]  # "HH:MM:SS " of --clock first
    assert [m.group(7) for m in lines] == [f"phrase {p.index}." for p in truth]
    for (arrived, _), match, phrase in zip(run.lines, lines, truth):
        assert abs(seconds(*match.group(1, 2, 3)) - phrase.start) < 0.02
        assert arrived - fed_from < phrase.end + 3.0  # printed within seconds of its end, not at the stream's
    assert run.lines[0][0] < fed_until  # the first line came while the stream was still coming
    cues, records = assert_valid_outputs(tmp_path, "stdin.live")
    assert [c.content for c in cues] == [f"phrase {p.index}." for p in truth]
    assert all("clock" in r for r in records) and "the stream ended" in stderr


def test_a_url_streamed_as_it_comes(talk, tmp_path):
    path, truth = talk
    with FakeServer() as server, StreamingServer(path, bytes_per_second=64_000) as radio:
        run = Listening([radio.url, "--server", server.url, "-q"])
        code, stderr = run.finish()
    assert code == 0 and stderr == ""
    assert run.texts() == [f"phrase {p.index}." for p in truth]


def test_ctrl_c_finishes_the_utterance_in_flight_and_exits_0(tmp_path):
    path, truth = phrase_file(tmp_path / "long.wav", 30, seed=7, gaps=(1.0, 1.6))
    fake = FakeMoss(token_seconds=0.15)  # each answer takes about a second
    with FakeServer(fake) as server:
        run = Listening(["-", "--server", server.url, "-o", str(tmp_path / "out")], stdin=subprocess.PIPE)
        feed_in_real_time(path.read_bytes(), run.process.stdin.write, 64_000, head=44, close=run.process.stdin.close)
        run.wait_for_lines(1)
        while fake.in_flight == 0:  # Ctrl-C while the model works on an utterance
            time.sleep(0.02)
        asked = time.monotonic()
        run.process.send_signal(signal.SIGINT)
        code, stderr = run.finish(timeout=15)
    assert code == 0, stderr
    assert time.monotonic() - asked < 12  # bounded: at most the 10 s given to the utterance in flight
    assert "stopped" in stderr
    cues, records = assert_valid_outputs(tmp_path / "out", "stdin.live")
    answered = [r for r in records if "skipped" not in r]
    assert len(answered) >= 2 and len(cues) >= 2  # the one in flight when Ctrl-C came was finished and written
    assert len(answered) < len(truth)


def test_kill_9_leaves_files_valid_up_to_the_last_cue(tmp_path):
    path, truth = phrase_file(tmp_path / "long.wav", 30, seed=8, gaps=(1.0, 1.6))
    with FakeServer() as server:
        run = Listening(["-", "--server", server.url, "-o", str(tmp_path / "out")], stdin=subprocess.PIPE)
        feed_in_real_time(path.read_bytes(), run.process.stdin.write, 64_000, head=44, close=run.process.stdin.close)
        run.wait_for_lines(2)
        run.process.kill()
        run.finish()
    cues, records = assert_valid_outputs(tmp_path / "out", "stdin.live")
    assert len(cues) >= 2 and [c.content for c in cues] == [r["text"] for r in records]
    txt = (tmp_path / "out" / "stdin.live.txt").read_text()
    assert txt.endswith("\n") and txt.splitlines() == [c.content for c in cues]


def test_no_microphone_package_is_one_line_and_exit_2():
    code = ("import sys; sys.modules['sounddevice'] = None; sys.argv = ['moss', 'listen', '--server', "
            "'http://127.0.0.1:9/v1']; from moss_cli.cli import app; app()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "moss: error: the microphone needs the sounddevice package: pip install 'moss-cli[live]'"]


def test_a_backlog_smaller_than_an_utterance_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "moss_cli.cli", "listen", "-", "--max-utterance-seconds", "30",
                           "--max-backlog-seconds", "10"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "--max-backlog-seconds" in done.stderr and len(done.stderr.splitlines()) == 1


def test_the_status_line_is_redrawn_in_place_and_cleared_for_each_finished_line(capsys):
    from moss_cli.cli.listen import TerminalObserver
    from moss_cli.results import Result, Segment

    observer = TerminalObserver(quiet=False, clock=False, status_shown=True)
    observer.status("speech", 0.2)
    observer.status("waiting for the model", 12.4)
    observer.heard(Result("transcribe", "stdin", 9.0, "m", "Hi.", [Segment(61.5, 62.25, "Hi.")]),
                   {"start": 61.0, "end": 63.0})
    captured = capsys.readouterr()
    assert captured.out == "[00:01:01.50 -> 00:01:02.25] Hi.\n"
    assert captured.err == "\r\x1b[Kmoss: speech\r\x1b[Kmoss: waiting for the model, backlog 12 s\r\x1b[K"


def test_a_server_that_dies_mid_run_is_one_error_line_and_exit_2_while_stdin_is_still_open(tmp_path):
    path, _ = phrase_file(tmp_path / "talk.wav", 12, seed=8, gaps=(1.0, 1.6))
    server = FakeServer(FakeMoss(die_after=1)).__enter__()
    try:
        run = Listening(["-", "--server", server.url, "-o", str(tmp_path / "out")], stdin=subprocess.PIPE)
        # fed fast, then held open (the source's thread stays in its read, as on a live pipe)
        run.process.stdin.write(path.read_bytes())
        run.process.stdin.flush()
        code, stderr = run.finish(timeout=30)
    finally:
        server.kill()
        run.process.stdin.close()
    assert code == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith("moss: error: cannot reach the server"), stderr
    assert "Fatal Python error" not in stderr
    cues, records = assert_valid_outputs(tmp_path / "out", "stdin.live")
    assert [c.content for c in cues] == [r["text"] for r in records] == ["phrase 0."]
