"""How long `moss listen` takes from the end of an utterance to its text on stdout.

    python benchmarks/live.py                          # local: the small random checkpoint, 2 threads
    python benchmarks/live.py --server --delay 0.5     # a stand-in server that answers after 0.5 s
    python benchmarks/live.py --model /path/to/MOSS-Audio-4B-Instruct --device cuda --audio talk.wav

A recording (phrases of speech between pauses, tests/support/fake_server.py; or --audio) is fed
through a pipe to `moss listen -` at real-time speed, once the model is loaded. Each line on stdout
is matched to the utterance it transcribes by its times, and the latency of an utterance is the
wall time from the moment its last sample of speech went into the pipe to the moment its first
line came out. That includes the pause the VAD waits for before it calls the utterance over
(300 ms), the request, and the decoding. Prints each utterance and the p50/p95; not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from support.fake_server import FakeMoss, FakeServer, phrase_recording  # noqa: E402
from support.live import feed_in_real_time  # noqa: E402

RATE = 16_000
LINE = re.compile(r"\[(\d\d):(\d\d):(\d\d\.\d\d) -> (\d\d):(\d\d):(\d\d\.\d\d)\]")


def speech_spans(audio: np.ndarray, min_pause: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of sound, pauses shorter than `min_pause` bridged."""
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    if loud.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > min_pause * RATE)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [(s / RATE, e / RATE) for s, e in zip(starts, ends)]


def line_span(line: str) -> tuple[float, float] | None:
    match = LINE.search(line)
    if match is None:
        return None
    h1, m1, s1, h2, m2, s2 = match.groups()
    return int(h1) * 3600 + int(m1) * 60 + float(s1), int(h2) * 3600 + int(m2) * 60 + float(s2)


def latencies(spans, lines: list[tuple[float, str]], fed_from: float) -> list[tuple[float, float, float | None]]:
    """(start, end, seconds from the end of the speech to its first line) per stretch of speech."""
    first_line: dict[int, float] = {}
    for arrived, line in lines:
        span = line_span(line)
        if span is None:
            continue
        middle = (span[0] + span[1]) / 2
        nearest = min(range(len(spans)), key=lambda i: 0 if spans[i][0] <= middle <= spans[i][1]
                      else min(abs(middle - spans[i][0]), abs(middle - spans[i][1])))
        first_line.setdefault(nearest, arrived)
    return [(start, end, first_line[i] - (fed_from + end) if i in first_line else None)
            for i, (start, end) in enumerate(spans)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run_listen(args, audio_path: Path, engine_args: list[str]):
    """`moss listen -` fed the WAV at real time once it says it listens; its stdout lines, timed."""
    command = [sys.executable, "-m", "moss_cli.cli", "listen", "-", *engine_args]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               bufsize=0, cwd=ROOT)
    lines: list[tuple[float, str]] = []
    listening = threading.Event()

    def read_stdout():
        for raw in process.stdout:
            lines.append((time.monotonic(), raw.decode().rstrip("\n")))

    def read_stderr():
        for raw in process.stderr:
            text = raw.decode().rstrip("\n")
            if "listening to" in text:
                listening.set()
            elif text.strip():
                print(f"  moss: {text}", file=sys.stderr)

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    if not listening.wait(300):
        process.kill()
        raise SystemExit("moss listen did not start")
    data = audio_path.read_bytes()
    fed_from = time.monotonic()
    feed_in_real_time(data, process.stdin.write, RATE * 2, head=44, close=process.stdin.close,
                      step_seconds=0.02).join()
    process.wait(600)
    readers[0].join(5)
    return lines, fed_from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated recording")
    parser.add_argument("--audio", type=Path, help="a 16 kHz mono 16-bit WAV to feed instead")
    parser.add_argument("--size", default="small", help="random checkpoint size (without --model)")
    parser.add_argument("--model", help="a real checkpoint instead of a random one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32,
                        help="random weights never stop by themselves: each answer is this many tokens")
    parser.add_argument("--server", action="store_true", help="ask a stand-in server instead of a local model")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the stand-in server takes per request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="moss-live-bench-") as work:
        work = Path(work)
        if args.audio is not None:
            audio, rate = sf.read(args.audio, dtype="float32")
            if rate != RATE or audio.ndim != 1:
                raise SystemExit("--audio: give a 16 kHz mono WAV")
            path = args.audio
        else:
            audio, _ = phrase_recording(args.seconds, seed=0, gaps=(1.0, 2.5))
            path = work / "talk.wav"
            sf.write(path, audio, RATE, subtype="PCM_16")
        if args.server:
            fake = FakeMoss(override=lambda n, body, headers: time.sleep(args.delay))  # then the normal answer
            with FakeServer(fake) as server:
                lines, fed_from = run_listen(args, path, ["--server", server.url])
            setting = f"stand-in server answering after {args.delay:g} s"
        else:
            model = args.model
            if model is None:
                from bench import write_random_checkpoint

                model = str(write_random_checkpoint(args.size, work / "checkpoint"))
            lines, fed_from = run_listen(args, path, ["-m", model, "--device", args.device, "--threads",
                                                      str(args.threads), "--max-new-tokens", str(args.max_new_tokens)])
            setting = (f"local {'random ' + args.size if args.model is None else args.model}, {args.device}, "
                       f"{args.threads} threads, {args.max_new_tokens} tokens an answer")
    found = latencies(speech_spans(audio), lines, fed_from)
    measured = [seconds for _, _, seconds in found if seconds is not None]
    summary = {"setting": setting, "utterances": len(found), "answered": len(measured),
               "p50": percentile(measured, 50) if measured else None,
               "p95": percentile(measured, 95) if measured else None,
               "latencies": [None if s is None else round(s, 3) for _, _, s in found]}
    if args.json:
        print(json.dumps(summary))
        return
    print(setting)
    for start, end, seconds in found:
        shown = "no line" if seconds is None else f"{seconds:6.2f} s"
        print(f"  speech {start:6.2f}-{end:6.2f} s: text {shown} after its end")
    if measured:
        print(f"p50 {summary['p50']:.2f} s, p95 {summary['p95']:.2f} s over {len(measured)} utterances")


if __name__ == "__main__":
    main()
