"""What --speakers costs: seconds of speaker attribution per hour of audio, on the CPU.

    python benchmarks/speakers.py                      # a 3-voice espeak-ng conversation, ~5 minutes
    python benchmarks/speakers.py --audio talk.wav --speakers auto

Times the stage the pipeline runs after transcribing: the speech spans of the transcript's
segments, pieces cut at pauses, the voice encoder over them, clustering and the labels on the
segments. The transcript is the conversation's own sentences (one segment each), or for --audio
one segment per detected speech region. Model loading is reported apart (once per run, not per
file). Not a test: it prints figures.

Recorded on this project's CI machine (2 CPU cores shared with other work, torch 2.13 CPU), the
default 301 s conversation, auto: 3.2 to 4.7 s wall, 2.1 to 3.6 s CPU, i.e. 39 to 56 s wall and
26 to 43 s CPU per hour of audio (1.1% to 1.5% of real time); loading the encoder: 3.2 s once.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from moss_cli.audio.constants import SAMPLE_RATE  # noqa: E402
from moss_cli.audio.sources import AudioSource, open_audio  # noqa: E402
from moss_cli.audio.vad import speech_regions  # noqa: E402
from moss_cli.results import Segment  # noqa: E402
from moss_cli.speakers.labels import label_speakers, speech_spans  # noqa: E402
from moss_cli.speakers.voices import load_diarizer  # noqa: E402


class Nothing:
    def advance(self, seconds: float) -> None:
        pass


def recording(args) -> tuple[AudioSource, list[Segment]]:
    if args.audio:
        source = open_audio(args.audio)
        regions = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech_regions(source)]
        return source, [Segment(a, b, "speech") for a, b in regions]
    from support.conversations import VOICES, conversation

    talk = conversation(VOICES, args.sentences, seed=7)
    return AudioSource.from_array("talk", talk.samples), [Segment(t.start, t.end, t.text) for t in talk.turns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audio", help="a recording (default: a synthetic 3-voice conversation)")
    parser.add_argument("--sentences", type=int, default=120, help="sentences in the synthetic conversation")
    parser.add_argument("--speakers", default="auto", help="a number, or auto")
    parser.add_argument("--diarizer", default="resemblyzer")
    args = parser.parse_args()
    count = None if args.speakers == "auto" else int(args.speakers)

    started = time.perf_counter()
    diarizer = load_diarizer(args.diarizer)
    loading = time.perf_counter() - started
    source, segments = recording(args)
    regions = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech_regions(source)]

    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    spans = speech_spans(segments, regions)
    turns = diarizer.turns(source, spans, count, Nothing())
    labelled = label_speakers(segments, turns)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)

    hours = source.duration / 3600
    speech = sum(b - a for a, b in spans)
    print(f"audio {source.duration:.0f} s ({speech:.0f} s of speech), {len(segments)} segments, "
          f"{len({s.speaker for s in labelled})} speakers found")
    print(f"model load {loading:.1f} s (once per run)")
    print(f"speaker attribution: {wall:.1f} s wall, {cpu:.1f} s CPU = {wall / hours:.0f} s wall and "
          f"{cpu / hours:.0f} s CPU per hour of audio ({100 * wall / source.duration:.1f}% of real time)")


if __name__ == "__main__":
    main()
