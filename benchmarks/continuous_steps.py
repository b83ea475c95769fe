"""Decoding steps and rows per step of the local engine's continuous batching against static batches:
figures that do not depend on how busy the machine is (benchmarks/overlap.py --compare continuous times
whole `moss transcribe` runs).

    python benchmarks/continuous_steps.py --clips 64 --seconds 10 --batch-size 8

--clips synthetic recordings of --seconds each are encoded once and asked in one `ask_many` call, once
with MOSS_CONTINUOUS=0 (batches of --batch-size one after another) and once continuously, on the random
checkpoint of --size with its <|im_end|> row scaled by --end-bias (answers of varied lengths, see
overlap.py). Both sides must give the same tokens; the script says whether they did.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="small")
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens per request")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--end-bias", type=float, default=2.5)
    args = parser.parse_args()

    from bench import write_random_checkpoint
    from overlap import raise_end_of_turn
    from support.fake_server import phrase_recording

    from moss_cli import DecodingOptions, MossAudio
    from moss_cli.engine.base import Request
    from moss_cli.engine.local.rows import RunningRows

    work = Path(tempfile.mkdtemp(prefix="moss-steps-"))
    try:
        checkpoint = write_random_checkpoint(args.size, work / "checkpoint")
        raise_end_of_turn(checkpoint, args.end_bias)
        engine = MossAudio.load(str(checkpoint), device="cpu", batch_size=args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    clips = [engine.encode(phrase_recording(args.seconds, seed=i, gaps=(0.3, 2.0))[0]) for i in range(args.clips)]
    requests = [Request(clip, "Transcribe the audio.", DecodingOptions(max_new_tokens=args.tokens)) for clip in clips]
    counted = {"steps": 0, "rows": 0}
    step = RunningRows.step

    def counting(self, tokens):
        counted["steps"] += 1
        counted["rows"] += len(tokens)
        return step(self, tokens)

    RunningRows.step = counting
    print(f"{args.clips} x {args.seconds:g} s, random {args.size} with <|im_end|> scaled by {args.end_bias:g}, "
          f"{args.tokens} tokens at most, {args.batch_size} rows", flush=True)
    tokens = {}
    for side, switch in (("static batches", "0"), ("continuous", "1")):
        os.environ["MOSS_CONTINUOUS"] = switch
        counted.update(steps=0, rows=0)
        start, cpu = time.perf_counter(), time.process_time()
        tokens[side] = [answer.token_ids for answer in engine.ask_many(requests)]
        lengths = [len(ids) for ids in tokens[side]]
        print(f"{side:<15}{counted['steps']:>5} steps, {counted['rows'] / counted['steps']:.2f} rows a step; "
              f"{time.perf_counter() - start:.1f} s, CPU {time.process_time() - cpu:.1f} s; answers "
              f"{min(lengths)}-{max(lengths)} tokens, {sum(lengths)} in all, {lengths.count(args.tokens)} at the cap",
              flush=True)
    print(f"tokens {'identical' if tokens['static batches'] == tokens['continuous'] else 'DIFFER'}")


if __name__ == "__main__":
    main()
