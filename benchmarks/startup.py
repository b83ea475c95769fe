"""Start-up of the local engine, in fresh processes: (a) import to a loaded engine ready for its first
request (weights and tokenizer), (b) a whole `moss transcribe CLIP -m CHECKPOINT --max-new-tokens N`.

    python benchmarks/startup.py                         # this tree alone
    python benchmarks/startup.py --before /work/main     # and another source tree, interleaved
    python benchmarks/startup.py --quantize int8         # loading as --quantize int8 does
    python benchmarks/startup.py --quantize stored-int8  # loading the int8 checkpoint moss quantize writes

Both sides load the same random checkpoint (`--size`, written once in the official layout, bf16, as
bench.py writes it) and transcribe the same synthetic clip; runs alternate between the sides and the
medians are quoted with their min-max, and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from runs import Spread, run_interleaved  # noqa: E402

# Timed inside the child from its first line: the interpreter's own start is in (b), not in (a).
READY = """
import time
start = time.perf_counter()
import sys
from moss_cli.engine.local.engine import MossAudio
imported = time.perf_counter()
MossAudio.load(sys.argv[1], device="cpu", quantize=sys.argv[2] or None)
print(imported - start, time.perf_counter() - start)
"""


def write_inputs(folder: Path, size: str, dtype: str, seconds: float) -> tuple[Path, Path]:
    """The random checkpoint (weights saved in `dtype`) and a synthetic clip of phrases and pauses (16 kHz WAV)."""
    import soundfile as sf
    from bench import SIZES
    from support.fake_server import phrase_recording
    from support.tiny_checkpoint import TinySpec, write_checkpoint

    checkpoint = write_checkpoint(folder / f"random-{size}", TinySpec(**SIZES[size], dtype=dtype), seed=0)
    audio, _ = phrase_recording(seconds, seed=0, gaps=(0.3, 2.0))
    clip = folder / "clip.wav"
    sf.write(clip, audio, 16_000, subtype="PCM_16")
    return checkpoint, clip


def environment(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source)}


def run_in(source: Path, command: list[str]) -> subprocess.CompletedProcess:
    """`command` on `source`'s code: run from that tree, since `python -c` and `-m` put the working
    directory ahead of PYTHONPATH."""
    return subprocess.run(command, capture_output=True, text=True, env=environment(source), cwd=source, check=True)


def time_ready(source: Path, checkpoint: Path, quantize: str, split: dict[str, list[float]], side: str) -> float:
    done = run_in(source, [sys.executable, "-c", READY, str(checkpoint), quantize])
    imported, ready = map(float, done.stdout.split()[-2:])
    split.setdefault(side, []).append(imported)
    return ready


def time_transcribe(source: Path, checkpoint: Path, clip: Path, tokens: int, quantize: str) -> float:
    command = [sys.executable, "-m", "moss_cli.cli", "transcribe", str(clip), "-m", str(checkpoint),
               "--max-new-tokens", str(tokens), "-q", *(["--quantize", quantize] if quantize else [])]
    start = time.perf_counter()
    run_in(source, command)
    return time.perf_counter() - start


def spread_text(times: list[float]) -> str:
    spread = Spread.of(times)
    return f"{spread.median:.2f} s (min {spread.low:.2f}, max {spread.high:.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", help="random checkpoint size, as bench.py --size")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="dtype the weights are saved in: float32 as bench.py writes them, bfloat16 as released "
                             "(then loading converts them to float32)")
    parser.add_argument("--measures", nargs="+", choices=["ready", "transcribe"], default=["ready", "transcribe"],
                        help="(a) ready, (b) transcribe; (b) decodes every speech chunk and takes minutes on a busy machine")
    parser.add_argument("--quantize", default="", choices=["", "int8", "stored-int8"],
                        help="int8: load as --quantize int8 does; stored-int8: load the int8 checkpoint `moss quantize` "
                             "writes from the checkpoint (once, before the runs)")
    parser.add_argument("--before", type=Path, help="another source tree to time beside this one (e.g. main's)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side and measure")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the transcribed clip")
    parser.add_argument("--tokens", type=int, default=64, help="--max-new-tokens of the transcription")
    args = parser.parse_args(argv)
    sources = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="moss-startup-") as scratch:
        checkpoint, clip = write_inputs(Path(scratch), args.size, args.dtype, args.seconds)
        quantize = args.quantize
        if quantize == "stored-int8":  # runs take it as int8 without being told
            from moss_cli.model.int8_checkpoint import write_int8_checkpoint

            write_int8_checkpoint(checkpoint, checkpoint.with_name(checkpoint.name + "-int8"))
            checkpoint, quantize = checkpoint.with_name(checkpoint.name + "-int8"), ""
        imports: dict[str, list[float]] = {}
        ready = whole = {}
        if "ready" in args.measures:
            ready = run_interleaved({side: (lambda s=source, side=side: time_ready(s, checkpoint, quantize, imports, side))
                                     for side, source in sources.items()}, args.repeats)
        if "transcribe" in args.measures:
            whole = run_interleaved({side: (lambda s=source: time_transcribe(s, checkpoint, clip, args.tokens, quantize))
                                     for side, source in sources.items()}, args.repeats)
    load_after = os.getloadavg()
    print(f"random {args.size} checkpoint saved in {args.dtype}{', --quantize ' + args.quantize if args.quantize else ''}, "
          f"{args.seconds:g} s clip, {args.tokens} tokens, medians of {args.repeats}")
    for side, source in sources.items():
        print(f"{side} ({source}):")
        if ready:
            print(f"  import of the engine:                {spread_text(imports[side])}")
            print(f"  (a) import to a loaded engine:       {spread_text(ready[side])}")
        if whole:
            print(f"  (b) whole `moss transcribe` process: {spread_text(whole[side])}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
