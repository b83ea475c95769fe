"""`moss transcribe` on a batch of files with and without one way of overlapping work, interleaved
runs, whole processes:

- look-ahead: the next file decoded and its speech found while the model works on the current one;
  the sequential side sets MOSS_LOOKAHEAD=0, which only the runner reads.
- across-files: several files worked on at once, their chunks sharing the local model's batches;
  the one-file-at-a-time side sets MOSS_ACROSS_FILES=0, which only the CLI reads.
- continuous: a row whose answer ends takes the next waiting chunk (of any file) at once; the static
  side sets MOSS_CONTINUOUS=0: whole batches one after another, finished rows left empty.

    python benchmarks/overlap.py --files 3 --seconds 100 --size small --threads 2 --repeats 3
    python benchmarks/overlap.py --compare across-files --files 8 --seconds 10 --batch-size 8 --repeats 5
    python benchmarks/overlap.py --compare continuous --files 64 --seconds 10 --batch-size 8 --repeats 1
    python benchmarks/overlap.py --compare continuous --files 1 --seconds 300 --batch-size 8 --repeats 1

A random model never says <|im_end|>: every answer runs to --max-new-tokens, all rows of a batch end
together and continuous batching has nothing to gain. --end-bias scales the end-of-turn row of the
random output layer (2.5 by default with --compare continuous), so each answer stops where that token
first wins the greedy pick: answers of varied lengths, the same on both sides (some still at the cap,
which the pipeline then asks again in parts, as it does for real answers).

A random checkpoint of --size is written in the official layout, and --files synthetic recordings at
--rate Hz (44.1 kHz by default, so that each is decoded and resampled, not read in place). Not a
test: it prints figures, and whether both sides wrote the same bytes.
"""

from __future__ import annotations

import argparse
import atexit
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from runs import Spread, ratios, run_interleaved  # noqa: E402


def write_inputs(folder: Path, files: int, seconds: float, rate: int) -> list[Path]:
    import librosa
    import soundfile as sf
    from support.fake_server import phrase_recording

    paths = []
    for index in range(files):
        samples, _ = phrase_recording(seconds, seed=index, gaps=(0.3, 2.0))
        if rate != 16_000:
            samples = librosa.resample(samples, orig_sr=16_000, target_sr=rate)
        paths.append(folder / f"talk{index}.wav")
        sf.write(paths[-1], samples, rate, subtype="PCM_16")
    return paths


SWITCHES = {"look-ahead": ("MOSS_LOOKAHEAD", "sequential"), "across-files": ("MOSS_ACROSS_FILES", "one at a time"),
            "continuous": ("MOSS_CONTINUOUS", "static batches")}
END_OF_TURN = 151645  # <|im_end|>, the random checkpoint's eos_token_id


def raise_end_of_turn(checkpoint: Path, scale: float) -> None:
    """Scale the output layer's <|im_end|> row: its logit grows by `scale`, so greedy answers end at
    varied points instead of all at the token cap."""
    from safetensors.torch import load_file, save_file

    path = checkpoint / "model.safetensors"
    weights = load_file(str(path))
    weights["lm_head.weight"][END_OF_TURN] *= scale
    save_file(weights, str(path), metadata={"format": "pt"})


def transcribe(paths: list[Path], checkpoint: Path, out: Path, args, overlapped: bool, cpu: list[float]) -> float:
    """Wall seconds of one run; its CPU seconds (user + system) go to `cpu`, steadier on a shared machine."""
    command = [sys.executable, "-m", "moss_cli.cli", "transcribe", *map(str, paths), "-m", str(checkpoint),
               "--max-new-tokens", str(args.tokens), "--json", "-o", str(out), "--overwrite", "-q"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    switch = SWITCHES[args.compare][0]
    env = {**os.environ, "PYTHONPATH": str(ROOT), switch: "1" if overlapped else "0"}
    start, used = time.perf_counter(), _children_cpu()
    subprocess.run(command, env=env, check=True)
    cpu.append(_children_cpu() - used)
    return time.perf_counter() - start


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=100.0)
    parser.add_argument("--rate", type=int, default=44_100, help="the inputs' sample rate")
    parser.add_argument("--size", default="small", help="random checkpoint size, as in bench.py")
    parser.add_argument("--tokens", type=int, default=64, help="--max-new-tokens per chunk")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", choices=SWITCHES, default="look-ahead", help="the overlap to switch off")
    parser.add_argument("--end-bias", type=float, default=None,
                        help="scale of the <|im_end|> output row (default 2.5 with --compare continuous, else 1)")
    args = parser.parse_args()
    if args.end_bias is None:
        args.end_bias = 2.5 if args.compare == "continuous" else 1.0

    from bench import write_random_checkpoint

    work = Path(tempfile.mkdtemp(prefix="moss-overlap-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # checkpoint and chunk files: hundreds of MB
    checkpoint = write_random_checkpoint(args.size, work / "checkpoint")
    if args.end_bias != 1.0:
        raise_end_of_turn(checkpoint, args.end_bias)
    paths = write_inputs(work, args.files, args.seconds, args.rate)
    print(f"moss transcribe of {args.files} x {args.seconds:.0f} s at {args.rate} Hz, random {args.size}, "
          f"--max-new-tokens {args.tokens}, --batch-size {args.batch_size or 'from memory'}, "
          f"threads {args.threads or 'torch default'}; whole processes", flush=True)
    if args.end_bias != 1.0:
        print(f"answers of varied lengths: the random output layer's <|im_end|> row scaled by {args.end_bias:g} "
              f"(each answer stops where that token first wins the greedy pick)", flush=True)
    on, off = args.compare, SWITCHES[args.compare][1]
    cpu: dict[str, list[float]] = {on: [], off: []}
    sides = {on: lambda: transcribe(paths, checkpoint, work / "a", args, True, cpu[on]),
             off: lambda: transcribe(paths, checkpoint, work / "b", args, False, cpu[off])}
    seconds = run_interleaved(sides, args.repeats, report=lambda n, side, s: print(
        f"run {n} {side:<14}{s:>8.2f} s  CPU {cpu[side][-1]:.2f} s", flush=True))
    for side, times in seconds.items():
        spread = Spread.of(times)
        used = Spread.of(cpu[side])
        print(f"{side:<14} median {spread.median:.2f} s (min-max {spread.low:.2f}-{spread.high:.2f}); CPU median "
              f"{used.median:.2f} s (min-max {used.low:.2f}-{used.high:.2f})")
    same = all((work / "a" / p.name).read_bytes() == (work / "b" / p.name).read_bytes()
               for p in (work / "a").glob("*.json"))
    print(f"{on} is {ratios(seconds, on)[off]:.2f}x the speed of {off} ({ratios(cpu, on)[off]:.2f}x in CPU time); "
          f"outputs {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
