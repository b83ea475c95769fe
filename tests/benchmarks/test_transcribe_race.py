"""benchmarks/transcribe_race.py without vLLM: its options, the report and the equal-work check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("transcribe_race", ROOT / "benchmarks" / "transcribe_race.py")
race_module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = race_module
spec.loader.exec_module(race_module)


def race(outputs: dict, work: list) -> race_module.Race:
    args = SimpleNamespace(tokens=64, threads=2)
    made = race_module.Race(Path("/ckpt"), Path("/a.wav"), SimpleNamespace(url="http://127.0.0.1:9/v1"), args)
    made.outputs, made.work = outputs, work
    return made


def test_commands_differ_only_in_the_server():
    commands = race({}, []).commands
    assert commands["moss-on-vllm"][: len(commands["moss-local"])] == commands["moss-local"]
    assert commands["moss-on-vllm"][len(commands["moss-local"]):] == ["--server", "http://127.0.0.1:9/v1",
                                                                       "--jobs", "8"]
    assert commands["moss-local"][1:3] == ["transcribe", "/a.wav"] and "--max-new-tokens" in commands["moss-local"]


def test_report_gives_medians_ratio_work_and_whether_transcripts_match():
    lines = race({"moss-local": {"a"}, "moss-on-vllm": {"a"}}, [(10, 331)]).report(
        {"moss-local": [4.0, 2.0, 3.0], "moss-on-vllm": [6.0, 9.0, 7.5]})
    assert lines[0] == "| moss-local | 3.00 s (2.00-4.00) | 1.00x |"
    assert lines[1] == "| moss-on-vllm | 7.50 s (6.00-9.00) | 2.50x |"
    assert lines[2] == "(server runs: 10 requests and 331 tokens; transcripts identical)"
    differing = race({"moss-local": {"a"}, "moss-on-vllm": {"a", "b"}}, [(10, 331), (11, 340)]).report(
        {"moss-local": [1.0], "moss-on-vllm": [1.0, 1.2]})
    assert differing[2].startswith("(server runs: 10 requests and 331 tokens, 11 requests and 340 tokens; ")
    assert "DIFFER (local: 1 distinct over its runs, server: 2)" in differing[2]


def test_options_are_checked():
    with pytest.raises(SystemExit):
        race_module.parse_args(["--vllm-python", "py", "--repeats", "0"])
    assert race_module.parse_args(["--vllm-python", "py"]).seconds == [120.0, 300.0]
