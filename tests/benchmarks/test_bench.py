"""The benchmark's plumbing: interleaved runs and their summary, the job handed to the official
driver, and the driver's JSON contract against the official code itself (where its Python is here)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_PYTHON = os.environ.get("MOSS_OFFICIAL_PYTHON", "/tmp/ta-venv/bin/python")
OFFICIAL_MIRROR = os.environ.get("MOSS_OFFICIAL_MIRROR", "/work/.mirror/OpenMOSS+MOSS-Audio/repo")


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


runs = load_benchmark("runs")


def test_sides_alternate_in_every_round():
    assert runs.interleaved(["moss", "official"], 3) == ["moss", "official"] * 3
    with pytest.raises(ValueError, match="at least 1"):
        runs.interleaved(["moss"], 0)


def test_run_interleaved_calls_each_side_in_turn_and_keeps_every_time():
    order, clock = [], iter([1.0, 5.0, 3.0, 4.0, 2.0, 6.0])

    def side(name):
        return lambda: (order.append(name), next(clock))[1]

    reported = []
    seconds = runs.run_interleaved({"moss": side("moss"), "official": side("official")}, 3,
                                   report=lambda n, name, s: reported.append((n, name, s)))
    assert order == ["moss", "official"] * 3
    assert seconds == {"moss": [1.0, 3.0, 2.0], "official": [5.0, 4.0, 6.0]}
    assert reported[:2] == [(1, "moss", 1.0), (1, "official", 5.0)] and reported[-1] == (3, "official", 6.0)


def test_spread_is_median_and_range_and_ratio_is_of_medians():
    assert runs.Spread.of([3.0, 1.0, 2.0]) == runs.Spread(2.0, 1.0, 3.0)
    assert runs.Spread.of([4.0, 1.0]).median == 2.5
    assert runs.ratios({"moss": [1.0, 2.0, 9.0], "official": [7.0, 5.0, 6.0]}, "moss") == {"official": 3.0}
    with pytest.raises(ValueError):
        runs.Spread.of([])


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench")


def planned_job(bench, folder: Path, tokens: int = 3):
    """A recording cut at odd offsets, and the job bench.py writes for it."""
    from moss_cli.audio.chunking import Chunk
    from moss_cli.tasks.recording import Recording

    samples = np.random.default_rng(1).standard_normal(16_000 * 9).astype(np.float32) * 0.1
    rec = Recording.from_array("noise", samples)
    chunks = [Chunk(1_234, 1_234 + 16_000 * 3), Chunk(60_001, 60_001 + 16_000 * 5)]
    return rec, chunks, bench.write_job(folder, str(folder / "ckpt"), rec, chunks, tokens, threads=1)


def test_job_holds_the_exact_samples_of_each_planned_chunk(bench, tmp_path):
    rec, chunks, path = planned_job(bench, tmp_path / "job")
    job = json.loads(path.read_text())
    assert job["tokens"] == 3 and job["threads"] == 1 and job["sample_rate"] == 16_000
    assert job["prompt"] == bench.TRANSCRIBE_SENTENCES.prompt
    handed = [np.load(path.parent / name) for name in job["chunks"]]
    assert len(handed) == 2
    for samples, chunk in zip(handed, chunks):
        assert samples.dtype == np.float32
        np.testing.assert_array_equal(samples, rec.cut(chunk))
    assert bench.job_audio_seconds(rec, chunks) == 8.0


def test_official_side_must_do_the_same_work(bench):
    good = {"tokens_per_chunk": [3, 3], "audio_seconds": 8.0}
    bench.check_same_work(good, 2, 3, 8.0)
    for bad in ({**good, "tokens_per_chunk": [3, 2]}, {**good, "tokens_per_chunk": [3]},
                {**good, "audio_seconds": 7.5}):
        with pytest.raises(SystemExit):
            bench.check_same_work(bad, 2, 3, 8.0)


def official_src(folder: Path) -> Path:
    """The official repository's src/, unpacked from the local mirror (never kept in this repo)."""
    if not Path(OFFICIAL_PYTHON).exists():
        pytest.skip(f"no Python with the official pins at {OFFICIAL_PYTHON} (benchmarks/official_env.sh makes one)")
    if not Path(OFFICIAL_MIRROR).exists():
        pytest.skip(f"no mirror of the official repository at {OFFICIAL_MIRROR}")
    needs = subprocess.run([OFFICIAL_PYTHON, "-c", "import accelerate, transformers, torchaudio"], capture_output=True)
    if needs.returncode:
        pytest.skip(f"{OFFICIAL_PYTHON} lacks the official pins (accelerate, transformers, torchaudio)")
    folder.mkdir()
    archive = subprocess.run(["git", "-C", OFFICIAL_MIRROR, "archive", "HEAD", "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def test_driver_runs_the_official_code_on_the_handed_chunks(bench, tmp_path):
    from support.tiny_checkpoint import write_checkpoint

    src = official_src(tmp_path / "official")
    _, _, job = planned_job(bench, tmp_path / "job", tokens=3)
    write_checkpoint(tmp_path / "job" / "ckpt")
    driver = subprocess.run([OFFICIAL_PYTHON, str(bench.DRIVER), "--src", str(src), "--job", str(job)],
                            input="run\nrun\n", capture_output=True, text=True, timeout=120)
    assert driver.returncode == 0, driver.stderr[-2000:]
    records = [json.loads(line) for line in driver.stdout.splitlines() if line.startswith("{")]
    assert [r["event"] for r in records] == ["loaded", "run", "run"]
    loaded = records[0]
    assert loaded["transformers"].startswith("4.") and loaded["threads"] == 1
    assert loaded["revision"]["encoder"] in ("windowed", "whole-clip") and loaded["load_seconds"] > 0
    for run in records[1:]:
        assert run["tokens_per_chunk"] == [3, 3]  # counted from generate's output, eos ignored
        assert run["audio_seconds"] == 8.0 and run["seconds"] > 0


def test_int8_comparison_reports_speed_memory_and_agreement(tmp_path):
    # The whole --quantize path on a tiny random checkpoint: both sides timed, each side's memory
    # measured in a process of its own, greedy tokens compared.
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--size", "tiny", "--seconds", "20",
                          "--tokens", "3", "--repeats", "1", "--threads", "1", "--quantize", "int8"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line.split() for line in out.stdout.splitlines()]
    rows = {row[0]: row for row in table if row[:1] in (["float32"], ["int8"]) and len(row) == 8}
    assert set(rows) == {"float32", "int8"}
    float32_peak, float32_held, int8_peak, int8_held = (float(rows[n][i]) for n in ("float32", "int8") for i in (-2, -1))
    # held and peak are each read to the megabyte at different moments: held may round one above peak
    assert 0 < float32_held <= float32_peak + 1 and 0 < int8_held <= int8_peak + 1
    assert float(rows["int8"][-3]) < float(rows["float32"][-3])  # int8 weights take less than float32's
    assert "int8 is " in out.stdout and "greedy tokens agree on" in out.stdout
