"""The local engine: load a checkpoint once, then answer questions about audio.

    >>> moss = MossAudio.load("OpenMOSS-Team/MOSS-Audio-4B-Instruct")
    >>> moss.ask("talk.wav", "Transcribe the audio.").text
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import audio as audio_io
from .decoding import DecodingOptions, RepetitionGuard, TokenSampler, decode_tokens, split_reasoning
from .errors import MossError
from .model.encoder import EncodedAudio
from .model.loading import DEFAULT_MODEL, DTYPES, load_model, load_tokenizer, resolve_checkpoint
from .model.modeling import MossAudioModel
from .processor import IM_END_ID, Prompt, PromptBuilder

AudioInput = str | Path | np.ndarray


@dataclass
class Answer:
    text: str  # the answer, reasoning removed, surrounding whitespace stripped
    reasoning: str  # what a Thinking model wrote inside <think>...</think>
    raw_text: str  # everything decoded, special tokens skipped
    token_ids: list[int]
    finish_reason: str  # "stop", "length" or "repetition"
    prompt_tokens: int


@dataclass
class EncodedClip:
    """A recording run through the encoder once, reusable for several questions."""

    states: EncodedAudio
    seconds: float

    @property
    def n_tokens(self) -> int:
        return int(self.states.last_hidden.shape[0])


def resolve_device(name: str = "auto") -> torch.device:
    """auto: CUDA, else Apple MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MossError(f"device {name!r}: CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MossError("device 'mps': Apple MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise MossError(f"device {name!r}: not one of auto, cpu, cuda, cuda:N, mps") from None


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 (the checkpoint's dtype) on GPUs; float32 on CPU, where bf16 matmuls are slow."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    if name not in DTYPES:
        raise MossError(f"dtype {name!r}: not one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


class MossAudio:
    """A loaded MOSS-Audio checkpoint with its tokenizer and prompt layout."""

    def __init__(self, model: MossAudioModel, tokenizer, *, name: str, stop_ids: set[int], time_markers: bool = True):
        self.model = model
        self.prompts = PromptBuilder(tokenizer, time_markers=time_markers)
        self.name = name
        self.stop_ids = stop_ids
        self._last_clip: tuple[bytes, EncodedClip] | None = None

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        time_markers: bool = True,
        revision: str | None = None,
    ) -> MossAudio:
        """Load from a local directory or a hub id (through the Hugging Face cache)."""
        folder = resolve_checkpoint(model, revision=revision)
        target = resolve_device(device)
        weights = load_model(folder, target, resolve_dtype(dtype, target))
        return cls(
            weights, load_tokenizer(folder), name=model, stop_ids=_stop_ids(folder), time_markers=time_markers
        )

    def encode(self, audio: AudioInput, sample_rate: int = audio_io.SAMPLE_RATE) -> EncodedClip:
        """Run a file or a mono array through the audio encoder (the same samples twice in a row: once)."""
        samples = _samples(audio, sample_rate)
        key = hashlib.blake2b(samples.tobytes(), digest_size=16).digest()  # ~0.1 s per hour of audio
        if self._last_clip is not None and self._last_clip[0] == key:
            return self._last_clip[1]
        mel = audio_io.log_mel(samples)  # (128, T) in bf16, as the reference feeds it
        clip = EncodedClip(self.model.encode_audio(mel), audio_io.duration(samples))
        self._last_clip = (key, clip)
        return clip

    def ask(
        self,
        audio: AudioInput | EncodedClip,
        question: str,
        options: DecodingOptions = DecodingOptions(),
        guard: RepetitionGuard | None = None,
    ) -> Answer:
        """Ask one question about a recording; the question goes verbatim after the audio."""
        clip = audio if isinstance(audio, EncodedClip) else self.encode(audio)
        prompt = self.prompts.audio_question(question, clip.n_tokens)
        return self._generate(prompt, clip.states, options, guard)

    def ask_text(
        self, question: str, options: DecodingOptions = DecodingOptions(), guard: RepetitionGuard | None = None
    ) -> Answer:
        """A text-only request, e.g. to combine partial answers."""
        return self._generate(self.prompts.text_question(question), None, options, guard)

    def _generate(
        self, prompt: Prompt, states: EncodedAudio | None, options: DecodingOptions, guard: RepetitionGuard | None
    ) -> Answer:
        ids, audio_mask = prompt.tensors(self.model.device)
        cache = self.model.new_cache()
        first_logits = self.model.prefill(ids, audio_mask, states, cache)

        def step(token: int) -> torch.Tensor:
            return self.model.decode_step(torch.tensor([[token]], device=self.model.device), cache)

        sampler = TokenSampler(options, self.model.device)
        decoded = decode_tokens(first_logits, step, sampler, self.stop_ids, options.max_new_tokens, guard)
        raw = self.prompts.decode(decoded.token_ids)
        reasoning, text = split_reasoning(raw)
        return Answer(text, reasoning, raw, decoded.token_ids, decoded.finish_reason, len(prompt.input_ids))


def _samples(audio: AudioInput, sample_rate: int) -> np.ndarray:
    if isinstance(audio, np.ndarray):
        return audio_io.to_model_rate(audio, sample_rate)
    return audio_io.load_audio(audio)


def _stop_ids(folder: Path) -> set[int]:
    """End-of-turn ids from generation_config.json (what `generate` stops on), else <|im_end|>."""
    try:
        eos = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError):
        eos = None
    if eos is None:
        return {IM_END_ID}
    return set(eos) if isinstance(eos, list) else {int(eos)}
