"""The local engine: load a checkpoint once, then answer questions about audio.

    >>> moss = MossAudio.load("OpenMOSS-Team/MOSS-Audio-4B-Instruct")
    >>> moss.ask("talk.wav", "Transcribe the audio.").text
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...audio.constants import SAMPLE_RATE
from ...audio.features import duration, load_audio, log_mel, to_model_rate
from ...errors import MossError
from ...model.checkpoint import model_name
from ...model.encoder import EncodedAudio
from ...model.loading import DEFAULT_MODEL, DTYPES, load_model, load_tokenizer, resolve_checkpoint, stored_quantization
from ...model.modeling import MossAudioModel
from ..base import Answer, DecodingOptions, RepetitionGuard, Request, is_thinking_checkpoint, split_reasoning
from ..prompts import IM_END_ID, PromptBuilder, has_audio_span
from .generation import Job, decode_continuously, generate, generate_after_prefix

AudioInput = str | Path | np.ndarray


@dataclass
class EncodedClip:
    """A recording run through the encoder once, reusable for several questions."""

    states: EncodedAudio
    seconds: float

    @property
    def n_tokens(self) -> int:
        return int(self.states.last_hidden.shape[0])


def static_batches() -> bool:
    """MOSS_CONTINUOUS=0: whole batches one after another, a finished row left empty until its batch ends
    (what continuous batching is measured against: benchmarks/overlap.py --compare continuous)."""
    return os.environ.get("MOSS_CONTINUOUS") == "0"


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


def default_batch_size(model: MossAudioModel, context_tokens: int = 2048) -> int:
    """Rows whose KV caches of `context_tokens` each fit in a quarter of the free memory.

    At most 64 on CUDA; at most 8 on CPU, where more rows stop paying.
    """
    config = model.config.language
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim
    per_row = per_token * context_tokens * model.dtype.itemsize
    if model.device.type == "cuda":
        free = torch.cuda.mem_get_info(model.device)[0]
        return int(max(1, min(64, free // 4 // per_row)))
    free = _available_memory()
    return int(max(1, min(8, free // 4 // per_row)))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


class MossAudio:
    """A loaded MOSS-Audio checkpoint with its tokenizer and prompt layout."""

    def __init__(
        self, model: MossAudioModel, tokenizer, *, name: str, stop_ids: set[int], time_markers: bool = True,
        batch_size: int | None = None, thinking: bool | None = None,
    ):
        self.model = model
        self.batch_size = batch_size or default_batch_size(model)
        self.prompts = PromptBuilder(tokenizer, time_markers=time_markers)
        self.name = name
        # thinking: told by the caller (--thinking), else by the checkpoint's name, as for servers
        self.thinking = is_thinking_checkpoint(name) if thinking is None else thinking
        self.stop_ids = stop_ids
        # Kept as text: the CLI prints it after loading, and it still reads right once closed
        self.where = f"{model.device} in {str(model.dtype).removeprefix('torch.')}"
        self.max_request_seconds: float | None = None  # any length fits; the pipeline's windows bound it
        self._last_clip: tuple[bytes, EncodedClip] | None = None

    @property
    def parallelism(self) -> int:
        return self.batch_size

    def counts(self) -> None:
        """One model in this process: there is no share of requests to report."""
        return None

    def close(self) -> None:
        """Let the weights and the last encoded clip go (the caller's references aside), and hand the
        GPU's cached blocks back to the driver so the next process or model can use them."""
        if self.model is None:
            return
        on_cuda = self.model.device.type == "cuda"
        self.model, self._last_clip = None, None
        if on_cuda:
            torch.cuda.empty_cache()

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        time_markers: bool = True,
        revision: str | None = None,
        batch_size: int | None = None,
        quantize: str | None = None,
        thinking: bool | None = None,
    ) -> MossAudio:
        """Load from a local directory or a hub id (through the Hugging Face cache).

        quantize="int8": int8 weights for CPU inference (model/quantize.py), never the default.
        thinking: whether it is a Thinking checkpoint; None: told by its name (is_thinking_checkpoint).
        """
        if quantize not in (None, "int8"):
            raise MossError(f"quantize {quantize!r}: only 'int8' is supported")
        model = model_name(model)  # -m 4b: the hub id names the engine, as it does the checkpoint
        folder = resolve_checkpoint(model, revision=revision)
        stored = stored_quantization(folder)  # written by `moss quantize`: int8, on the CPU
        if stored is not None:
            quantize, device = "int8", "cpu" if device == "auto" else device
            if thinking is None:  # the folder may be named anything: its source's name says
                thinking = is_thinking_checkpoint(model) or is_thinking_checkpoint(str(stored.get("source", "")))
        target = resolve_device(device)
        precision = resolve_dtype(dtype, target)
        if quantize == "int8":
            from ...model.quantize import check_int8_target

            check_int8_target(target, precision)
        weights = load_model(folder, target, precision, quantize=quantize)
        if quantize is None:  # int8 replaces the head: a screen of the float32 one would only cost memory
            weights.prepare_for_cpu()
        engine = cls(weights, load_tokenizer(folder), name=model, stop_ids=_stop_ids(folder),
                     time_markers=time_markers, batch_size=batch_size, thinking=thinking)
        if quantize == "int8":  # also when the checkpoint's own: say so, the dtype alone would not
            engine.where += ", int8 weights"
        return engine

    def encode(self, audio: AudioInput, sample_rate: int = SAMPLE_RATE) -> EncodedClip:
        """Run a file or a mono array through the audio encoder (the same samples twice in a row: once)."""
        samples = _samples(audio, sample_rate)
        key = hashlib.blake2b(samples.tobytes(), digest_size=16).digest()  # ~0.1 s per hour of audio
        if self._last_clip is not None and self._last_clip[0] == key:
            return self._last_clip[1]
        mel = log_mel(samples)  # (128, T) in bf16, as the reference feeds it
        clip = EncodedClip(self.model.encode_audio(mel), duration(samples))
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
        return self.ask_many([Request(audio, question, options, guard)])[0]

    def ask_many(self, requests: list[Request]) -> list[Answer]:
        """Many (audio, question) requests through `batch_size` rows: a row that finishes takes the next
        request (see decode_continuously); answers in the order asked."""
        for request in requests:  # a question the prompt cannot hold fails before any audio is encoded
            if request.audio is not None:
                self.prompts.check_question(request.question)
        answers: dict[int, Answer | Exception] = {}
        numbered = list(enumerate(requests))
        step = self.batch_size if static_batches() else len(requests)  # static: the benchmark's baseline
        for start in range(0, len(requests), step):
            waiting = numbered[start : start + step]

            def next_requests(count: int, waiting=waiting) -> list[tuple[int, Request]]:
                taken = waiting[:count]
                del waiting[:count]
                return taken

            self.decode_continuously(next_requests, answers.__setitem__)
        for index in range(len(requests)):
            if isinstance(answers[index], Exception):
                raise answers[index]
        return [answers[index] for index in range(len(requests))]

    def decode_continuously(self, next_requests: Callable[[int], list[tuple[Hashable, Request]]],
                            deliver: Callable[[Hashable, Answer | Exception], None]) -> None:
        """Answer requests as they come, `batch_size` rows at a time (continuous batching), until
        `next_requests` has none while no row is decoding.

        `next_requests(n)` hands out up to n (key, request) pairs, none when nothing waits; it is called
        whenever rows are free, between decoding steps. `deliver(key, answer)` gets each answer as soon
        as its row stops, or the error that kept that one request from being asked (a question the
        prompt cannot hold, an unreadable file). A request whose audio is None is a text-only question
        (ask_text). An error of the model itself ends the call (it raises) with rows still running.
        """
        jobs: dict[Hashable, Job] = {}

        def pull(count: int) -> list[tuple[Hashable, Job]]:
            while True:  # requests that fail before decoding leave their rows free for the next ones
                requests = next_requests(count)
                prepared = self._jobs(requests, deliver)
                if prepared or not requests:
                    jobs.update(prepared)
                    return list(prepared.items())

        def finished(key: Hashable, decoded) -> None:
            deliver(key, self._answer(jobs.pop(key), decoded))

        decode_continuously(self.model, self.stop_ids, self.batch_size, pull, finished)

    def _jobs(self, requests: list[tuple[Hashable, Request]], deliver) -> dict[Hashable, Job]:
        """Each request's prompt and encoded audio (audio encoded together); one that cannot be asked
        gets its error delivered and is left out."""
        jobs: dict[Hashable, Job] = {}
        asked = []
        for key, request in requests:
            try:
                if request.audio is None:
                    jobs[key] = Job(self.prompts.text_question(request.question), None, request.options, request.guard)
                else:
                    self.prompts.check_question(request.question)
                    asked.append((key, request))
            except Exception as exc:  # noqa: BLE001 - about this request alone
                deliver(key, exc)
        for (key, request), clip in zip(asked, self._encoded_each([r.audio for _, r in asked])):
            if isinstance(clip, Exception):
                deliver(key, clip)
            else:
                prompt = self.prompts.audio_question(request.question, clip.n_tokens)
                jobs[key] = Job(prompt, clip.states, request.options, request.guard)
        return jobs

    def _encoded_each(self, audios: list[AudioInput | EncodedClip]) -> list[EncodedClip | Exception]:
        """`_encode_all`; where that fails for several, each alone, so an error reaches only its input."""
        try:
            return self._encode_all(audios)
        except Exception as exc:  # noqa: BLE001 - told to the requests it is about
            if len(audios) < 2:
                return [exc]
        return [self._encoded_each([audio])[0] for audio in audios]

    def ask_questions(
        self, audio: AudioInput | EncodedClip, questions: list[str], options: DecodingOptions = DecodingOptions(),
        guard: RepetitionGuard | None = None,
    ) -> list[Answer]:
        """Several questions about one recording: audio encoded and its prompt prefix filled once."""
        for question in questions:
            self.prompts.check_question(question)
        clip = audio if isinstance(audio, EncodedClip) else self.encode(audio)
        jobs = [Job(self.prompts.audio_question(q, clip.n_tokens), clip.states, options, guard) for q in questions]
        if any(has_audio_span(q) for q in questions):  # own layouts share no default prefix
            decoded = generate(self.model, jobs, self.stop_ids)
        else:
            decoded = generate_after_prefix(self.model, self.prompts.audio_prefix(clip.n_tokens), jobs, self.stop_ids)
        return [self._answer(job, d) for job, d in zip(jobs, decoded)]

    def ask_text(
        self, question: str, options: DecodingOptions = DecodingOptions(), guard: RepetitionGuard | None = None
    ) -> Answer:
        """A text-only request, e.g. to combine partial answers."""
        job = Job(self.prompts.text_question(question), None, options, guard)
        return self._answer(job, generate(self.model, [job], self.stop_ids)[0])

    def _encode_all(self, audios: list[AudioInput | EncodedClip]) -> list[EncodedClip]:
        """Arrays not encoded yet go through the encoder together."""
        clips: list[EncodedClip | None] = [a if isinstance(a, EncodedClip) else None for a in audios]
        todo = [i for i, clip in enumerate(clips) if clip is None]
        if len(todo) == 1:
            clips[todo[0]] = self.encode(audios[todo[0]])
        elif todo:
            samples = [_samples(audios[i], SAMPLE_RATE) for i in todo]
            states = self.model.encode_many([log_mel(s) for s in samples])
            for i, s, state in zip(todo, samples, states):
                clips[i] = EncodedClip(state, duration(s))
        return clips

    def _answer(self, job: Job, decoded) -> Answer:
        raw = self.prompts.decode(decoded.token_ids)
        reasoning, text = split_reasoning(raw)
        return Answer(text, reasoning, raw, decoded.token_ids, decoded.finish_reason, len(job.prompt.input_ids))


def _samples(audio: AudioInput, sample_rate: int) -> np.ndarray:
    if isinstance(audio, np.ndarray):
        return to_model_rate(audio, sample_rate)
    return load_audio(audio)


def _stop_ids(folder: Path) -> set[int]:
    """End-of-turn ids from generation_config.json (what `generate` stops on), else <|im_end|>."""
    try:
        eos = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError):
        eos = None
    if eos is None:
        return {IM_END_ID}
    return set(eos) if isinstance(eos, list) else {int(eos)}
