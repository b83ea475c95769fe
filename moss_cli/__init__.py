"""moss: audio understanding from the shell with MOSS-Audio.

Python API:

    from moss_cli import MossAudio, DecodingOptions
    moss = MossAudio.load("OpenMOSS-Team/MOSS-Audio-4B-Instruct")
    clip = moss.encode("talk.wav")            # encode once ...
    print(moss.ask(clip, "Transcribe the audio.").text)   # ... ask many times
"""

__version__ = "0.1.0"

from .decoding import DecodingOptions, RepetitionGuard  # noqa: E402
from .engine import Answer, EncodedClip, MossAudio, Request  # noqa: E402
from .errors import AudioError, CheckpointError, ModelUnavailableError, MossError  # noqa: E402

__all__ = [
    "Answer",
    "AudioError",
    "CheckpointError",
    "DecodingOptions",
    "EncodedClip",
    "ModelUnavailableError",
    "MossAudio",
    "MossError",
    "RepetitionGuard",
    "Request",
]
