"""The overall progress bar of a batch: files and hours of audio done of all, totals from headers only."""

import re
import threading
import time

import numpy as np
import soundfile as sf
from support.corpus import encode_with_pyav, speech
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.audio.sources import header_seconds
from moss_cli.cli import progress
from moss_cli.cli.app import app
from moss_cli.cli.progress import BatchProgress

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def draw_at_once(monkeypatch):
    monkeypatch.setenv("MOSS_PROGRESS", "1")  # stderr is no terminal under the test runner
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0.0)


def test_overall_bar_reaches_the_total(tmp_path, monkeypatch):
    draw_at_once(monkeypatch)
    for name, seconds in (("a.wav", 4.0), ("b.flac", 6.0), ("c.wav", 10.0)):
        sf.write(tmp_path / name, speech(seconds, len(name)), 16_000)
    with FakeServer() as server:
        result = runner.invoke(app, ["transcribe", str(tmp_path), "--json", "-o", str(tmp_path / "out"),
                                     "--server", server.url])
    assert result.exit_code == 0, result.stderr
    text = ANSI.sub("", result.stderr)
    assert "3/3 files, 0:00:20/0:00:20 of audio" in text  # drawn on stderr only
    assert "1/3 files, 0:00:04/" in text and "2/3 files, 0:00:10/" in text
    assert "all files" not in result.stdout and "transcribing" in text  # the file's own bar beside it


def test_failed_files_count_and_quiet_hides(tmp_path, monkeypatch):
    draw_at_once(monkeypatch)
    sf.write(tmp_path / "a.wav", speech(5.0, 1), 16_000)
    (tmp_path / "b.wav").write_text("not audio\n" * 40)
    sf.write(tmp_path / "c.wav", speech(3.0, 2), 16_000)
    with FakeServer() as server:
        shown = runner.invoke(app, ["transcribe", str(tmp_path), "--json", "--server", server.url])
        quiet = runner.invoke(app, ["transcribe", str(tmp_path), "--json", "--server", server.url, "-q"])
    assert shown.exit_code == quiet.exit_code == 1
    assert "3/3 files, 0:00:08/0:00:08 of audio" in ANSI.sub("", shown.stderr)
    assert "all files" not in quiet.stderr and "\x1b" not in quiet.stderr
    monkeypatch.delenv("MOSS_PROGRESS")  # not a terminal, not forced: no bar
    with FakeServer() as server:
        plain = runner.invoke(app, ["transcribe", str(tmp_path), "--json", "--server", server.url])
    assert "all files" not in plain.stderr and "\x1b" not in plain.stderr


def test_hours_from_headers_without_stalling(monkeypatch):
    """Totals come from a background thread: the first file is not held up by a slow header read."""
    draw_at_once(monkeypatch)
    release = threading.Event()

    def slow_probe(path):
        if path.name == "f3":
            release.wait(5)
        return {"f0": 1800.0, "f1": 5400.0, "f2": 3600.0, "f3": 900.0}[path.name]

    from pathlib import Path

    started = time.monotonic()
    bar = BatchProgress([Path(f"f{i}") for i in range(4)], probe=slow_probe)
    assert time.monotonic() - started < 0.5
    bar.finished(0)
    assert bar.total_seconds is None and bar.seconds_done == 1800.0
    release.set()
    for index in (1, 2, 3):
        bar.finished(index)
    deadline = time.monotonic() + 5
    while bar.total_seconds is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bar.total_seconds == bar.seconds_done == 11_700.0 and bar.files_done == 4
    bar.close()


def test_header_seconds_reads_without_decoding(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16_000 * 3, np.float32), 16_000)
    sf.write(tmp_path / "b.flac", np.zeros(44_100 * 2, np.float32), 44_100)
    encode_with_pyav(tmp_path / "c.m4a", speech(4.0, 3), "aac")
    (tmp_path / "d.wav").write_text("not audio")
    assert header_seconds(tmp_path / "a.wav") == 3.0
    assert header_seconds(tmp_path / "b.flac") == 2.0
    assert abs(header_seconds(tmp_path / "c.m4a") - 4.0) < 0.1
    assert header_seconds(tmp_path / "d.wav") == 0.0 and header_seconds(tmp_path / "absent.wav") == 0.0


def test_no_header_is_read_when_no_bar_is_drawn(tmp_path, monkeypatch):
    monkeypatch.delenv("MOSS_PROGRESS", raising=False)
    probed = []
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    with progress.BatchProgress(paths, enabled=False, probe=lambda path: probed.append(path) or 1.0) as overall:
        for index in range(len(paths)):
            overall.finished(index)
    assert overall.files_done == 2 and probed == []  # quiet or off a terminal: no second look at each file
