"""The next input is decoded and its speech found while the model works on the current one."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from support.corpus import speech
from typer.testing import CliRunner

from moss_cli.audio import vad
from moss_cli.batch.inputs import expand_inputs
from moss_cli.batch.observer import BatchObserver
from moss_cli.batch.outputs import OutputSpec
from moss_cli.batch.runner import BatchPolicy, run_batch
from moss_cli.cli.app import app
from moss_cli.results import Result

WAIT_SECONDS = 20  # how long the current file's work waits for the next file's scan to finish


def wav(path: Path, seconds: float, seed: int, rate: int = 16_000) -> Path:
    sf.write(os.fsencode(path), speech(seconds, seed), rate, subtype="PCM_16")
    return path


def nan_wav(path: Path) -> Path:
    """A float WAV read in place whose samples hold NaN: only reading them (the scan) finds it."""
    samples = speech(4, 9)
    samples[20_000:20_010] = np.nan
    sf.write(os.fsencode(path), samples, 16_000, subtype="FLOAT")
    return path


class Recorder:
    """Work and speech scan for run_batch that note what happened in which order (the model is the
    double here; the runner's look-ahead is what is tested)."""

    def __init__(self, wait_for_scan_of: str | None = None):
        self.events: list[str] = []
        self.scanned: dict[str, threading.Event] = {}
        self.wait_for = wait_for_scan_of

    def prepare(self, source) -> None:
        name = Path(source.name).name
        try:
            vad.scan_ahead(source)
            source.scan.regions()  # started in the background: this double waits for its end, to see when that is
            self.events.append(f"scanned {name}")
        finally:  # a failed scan is over too
            self.scanned.setdefault(name, threading.Event()).set()

    def work(self, recording, bar) -> Result:
        name = Path(recording.name).name
        assert recording.source.scan is not None  # started before the work began
        if self.wait_for and name != self.wait_for:
            self.scanned.setdefault(self.wait_for, threading.Event()).wait(WAIT_SECONDS)
            self.wait_for = None
        self.events.append(f"work {name}")
        return Result("transcribe", recording.name, recording.duration, "double", text=name)


class FailuresOnStderr(BatchObserver):
    def failure(self, text: str) -> None:
        print(f"moss: error: {text}", file=sys.stderr)


def batch(paths, out: Path, recorder: Recorder) -> int:
    policy = BatchPolicy(errors_file=out / "errors.jsonl", prepare=recorder.prepare)
    return run_batch(expand_inputs([str(p) for p in paths]), recorder.work, OutputSpec(("txt",), out), policy,
                     "testing", FailuresOnStderr())


def test_next_file_is_scanned_while_the_current_one_is_worked_on(tmp_path):
    paths = [wav(tmp_path / f"{n}.wav", 6, seed) for seed, n in enumerate("abc")]
    recorder = Recorder(wait_for_scan_of="b.wav")
    started = time.monotonic()
    assert batch(paths, tmp_path / "out", recorder) == 0
    # a's work waited for b's scan: it finished while a's work was still running (sequentially, a's
    # work would have waited its full WAIT_SECONDS and b's scan would come after it)
    assert recorder.events.index("scanned b.wav") < recorder.events.index("work a.wav")
    assert time.monotonic() - started < WAIT_SECONDS
    assert [e for e in recorder.events if e.startswith("work")] == ["work a.wav", "work b.wav", "work c.wav"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.txt")) == ["a.txt", "b.txt", "c.txt"]


def test_a_bad_next_file_fails_at_its_turn_and_the_others_go_on(tmp_path, capsys):
    paths = [wav(tmp_path / "a.wav", 6, 1), nan_wav(tmp_path / "b.wav"), wav(tmp_path / "c.wav", 6, 2)]
    recorder = Recorder(wait_for_scan_of="b.wav")  # b's scan fails while a is worked on
    original_work = recorder.work

    def work(recording, bar):
        result = original_work(recording, bar)
        print(f"worked {Path(recording.name).name}", file=sys.stderr)
        return result

    recorder.work = work
    out = tmp_path / "out"
    assert batch(paths, out, recorder) == 1
    assert sorted(p.name for p in out.glob("*.txt")) == ["a.txt", "c.txt"]
    [failure] = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert failure["input"] == str(paths[1]) and "NaN" in failure["error"]
    err = capsys.readouterr().err
    error = next(line for line in err.splitlines() if line.startswith("moss: error: "))
    assert error == f"moss: error: {paths[1]}: audio contains NaN or infinite samples"
    assert err.index("worked a.wav") < err.index(error) < err.index("worked c.wav")  # at its turn


def test_outputs_are_byte_identical_with_and_without_look_ahead(tmp_path, tiny_checkpoint, monkeypatch):
    # 44.1 kHz stereo-free inputs are converted (decoded) too, not only read in place
    paths = [wav(tmp_path / "a.wav", 8, 1), wav(tmp_path / "b.wav", 7, 2, rate=44_100), wav(tmp_path / "c.wav", 9, 3)]
    made = {}
    for look_ahead in ("0", "1"):
        monkeypatch.setenv("MOSS_LOOKAHEAD", look_ahead)
        out = tmp_path / f"out{look_ahead}"
        result = CliRunner().invoke(app, ["transcribe", *map(str, paths), "-m", str(tiny_checkpoint), "--json",
                                          "--srt", "-o", str(out), "--max-new-tokens", "12", "-q"])
        assert result.exit_code == 0, result.output
        made[look_ahead] = {p.name: p.read_bytes() for p in sorted(out.glob("*.*")) if not p.name.startswith(".")}
    assert sorted(made["1"]) == ["a.json", "a.srt", "b.json", "b.srt", "c.json", "c.srt"]
    assert made["0"] == made["1"]


def test_the_model_loads_while_the_first_file_is_decoded_and_scanned(tmp_path, tiny_checkpoint, monkeypatch):
    from moss_cli.engine.local.engine import MossAudio

    loading, scanned, overlapped = threading.Event(), threading.Event(), {}
    real_load, real_scan = MossAudio.load.__func__, vad.scan_ahead

    def load(cls, *args, **kwargs):  # the real loading, once it has seen the scan finish
        loading.set()
        overlapped["scan done during load"] = scanned.wait(WAIT_SECONDS)
        return real_load(cls, *args, **kwargs)

    def scan(source):  # the real scan, once it has seen the loading begin
        overlapped["load begun during scan"] = loading.wait(WAIT_SECONDS)
        real_scan(source)
        source.scan.regions()
        scanned.set()

    monkeypatch.setattr(MossAudio, "load", classmethod(load))
    monkeypatch.setattr(vad, "scan_ahead", scan)
    path = wav(tmp_path / "a.wav", 5, 1)
    result = CliRunner().invoke(app, ["transcribe", str(path), "-m", str(tiny_checkpoint), "--max-new-tokens", "4",
                                      "-q"])
    assert result.exit_code == 0, result.output
    assert overlapped == {"load begun during scan": True, "scan done during load": True}


def test_nothing_is_loaded_when_no_input_is_left_to_open(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")  # refused before anything is opened
    started, recorder = [], Recorder()
    policy = BatchPolicy(warm_up=lambda: started.append(True), prepare=recorder.prepare)
    code = run_batch(expand_inputs([str(tmp_path / "pipe.wav")]), recorder.work, OutputSpec(("txt",)), policy,
                     "testing", stream=io.StringIO())
    assert code == 1 and started == []
    wav(tmp_path / "a.wav", 2, 1)
    assert run_batch(expand_inputs([str(tmp_path / "a.wav")]), recorder.work, OutputSpec(("txt",)), policy,
                     "testing", stream=io.StringIO()) == 0
    assert started == [True]


def test_a_missing_or_empty_file_is_said_before_the_model_loads(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    started, recorder, out = [], Recorder(), io.StringIO()
    policy = BatchPolicy(warm_up=lambda: started.append(True), prepare=recorder.prepare)
    observer = BatchObserver()
    failures = []
    observer.failure = failures.append
    inputs = expand_inputs([str(tmp_path / "typo.wav"), str(tmp_path / "empty.wav")])
    assert run_batch(inputs, recorder.work, OutputSpec(("txt",)), policy, "testing", observer=observer,
                     stream=out) == 1
    assert started == [] and out.getvalue() == ""
    assert failures == [f"{tmp_path / 'typo.wav'}: no such file", f"{tmp_path / 'empty.wav'}: empty file"]


def test_help_and_the_model_check_import_nothing_heavy(tiny_checkpoint):
    """Start-up: --help needs no model, no audio and no width tables; a checkpoint is checked
    without torch, whose import then runs beside the first file's decoding."""
    import subprocess

    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from moss_cli.cli.app import app\n"
            "assert CliRunner().invoke(app, ['transcribe', '--help']).exit_code == 0\n"
            "from moss_cli.model.checkpoint import resolve_checkpoint\n"
            f"resolve_checkpoint({str(tiny_checkpoint)!r})\n"
            "heavy = ('torch', 'transformers', 'wcwidth', 'onnxruntime', 'soundfile', 'av', 'numpy')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
