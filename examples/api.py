"""Load MOSS-Audio once and ask several questions about one recording from Python.

    MOSS_MODEL=/path/to/checkpoint python examples/api.py examples/sample.wav
"""

import os
import sys

from moss_cli import DecodingOptions, MossAudio, MossError


def main(path: str) -> int:
    try:
        moss = MossAudio.load(os.environ.get("MOSS_MODEL", "OpenMOSS-Team/MOSS-Audio-4B-Instruct"))
        clip = moss.encode(path)  # the audio goes through the encoder once
        for question in ("Transcribe the audio.", "Describe the audio."):
            answer = moss.ask(clip, question, DecodingOptions(temperature=0, max_new_tokens=256))
            print(f"{question}\n  {answer.text}  [{answer.finish_reason}]")
    except MossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/sample.wav"))
