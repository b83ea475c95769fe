"""moss: audio understanding from the shell with MOSS-Audio.

Python API:

    from moss_cli import MossAudio, DecodingOptions
    moss = MossAudio.load("OpenMOSS-Team/MOSS-Audio-4B-Instruct")
    clip = moss.encode("talk.wav")            # encode once ...
    print(moss.ask(clip, "Transcribe the audio.").text)   # ... ask many times
    samples = load_audio("talk.mp3")          # 16 kHz mono float32, the samples the model sees

Names load on first use, so `moss --help` does not wait for torch and transformers.
"""

__version__ = "0.1.0"
DEFAULT_MODEL = "OpenMOSS-Team/MOSS-Audio-4B-Instruct"

_EXPORTS = {
    # The backends' classes come through the factory, the one module that knows where backends live.
    "Answer": "engine.base", "EncodedClip": "engine.factory", "MossAudio": "engine.factory",
    "Request": "engine.base", "DecodingOptions": "engine.base", "RepetitionGuard": "engine.base",
    "load_audio": "audio.features",
    "AudioError": "errors", "CheckpointError": "errors", "ModelUnavailableError": "errors", "MossError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'moss_cli' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
