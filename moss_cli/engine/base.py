"""The engine contract, shared by every backend: what an engine is (Engine), what it is asked (Request,
DecodingOptions, RepetitionGuard) and what it answers (Answer), the chat layout facts every backend
sends, and the one rule that tells a Thinking checkpoint by its name.

No torch and no backend here: the remote engine, the factory and the command line use this module,
and a missing checkpoint must be reported before torch is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


SYSTEM_PROMPT = "You are a helpful assistant."  # the official default, sent before every question
# A prompt that holds this span is the whole prompt, with the audio placed at the span: how the
# official processor lets users write their own layouts (no default system/user/assistant wrapper).
AUDIO_SPAN = re.compile(r"<\|audio_bos\|>(?:<\|AUDIO\|>)+<\|audio_eos\|>")


def has_audio_span(prompt: str) -> bool:
    return AUDIO_SPAN.search(prompt) is not None


@dataclass(frozen=True)
class DecodingOptions:
    temperature: float = 0.0  # 0 means greedy; the official scripts sample at 1.0
    top_p: float = 1.0
    top_k: int = 50  # the official scripts' value; 0 turns it off
    max_new_tokens: int = 1024
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class RepetitionGuard:
    """Stops a decode whose tail is one n-gram repeated: greedy decoding can loop until the cap.

    Fires when the last `min_repeats` copies (or more) of an n-gram of at most `max_ngram` tokens
    cover at least `min_span` tokens.
    """

    max_ngram: int = 24
    min_repeats: int = 4
    min_span: int = 16

    def is_looping(self, tokens: list[int]) -> bool:
        for n in range(1, self.max_ngram + 1):
            repeats = max(self.min_repeats, -(-self.min_span // n))
            span = n * repeats
            if len(tokens) < span:
                break
            tail = tokens[-span:]
            if tail[n:] == tail[:-n]:  # period n: each token equals the one n before it
                return True
        return False


@dataclass
class Answer:
    text: str  # the answer, reasoning removed, surrounding whitespace stripped
    reasoning: str  # what a Thinking model wrote inside <think>...</think>
    raw_text: str  # everything decoded, special tokens skipped
    token_ids: list[int]
    finish_reason: str  # "stop", "length" or "repetition"
    prompt_tokens: int


@dataclass(frozen=True)
class Request:
    """One question about one recording, for `ask_many`."""

    audio: Union[str, Path, "np.ndarray", Any]  # or a backend's own encoded clip
    question: str
    options: DecodingOptions = DecodingOptions()
    guard: RepetitionGuard | None = None


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer): Thinking models wrap reasoning in <think>...</think> before the answer.

    Instruct models sometimes emit an empty block. An unclosed <think> means the token cap cut
    the reasoning short, so there is no answer yet; a lone </think> closes a block whose opening
    tag was part of the prompt. One pass with str.find: linear however many tags a reply holds.
    """
    reasoning, answer, position, unclosed = [], [], 0, False
    while (start := text.find(THINK_OPEN, position)) != -1:
        answer.append(text[position:start])
        body = start + len(THINK_OPEN)
        end = text.find(THINK_CLOSE, body)
        if end == -1:  # unclosed: the rest is unfinished reasoning
            reasoning.append(text[body:].strip())
            position, unclosed = len(text), True
            break
        reasoning.append(text[body:end].strip())
        position = end + len(THINK_CLOSE)
    answer.append(text[position:])
    rest = "".join(answer)
    if not unclosed and THINK_CLOSE in rest:  # the opening tag was part of the prompt
        before, _, rest = rest.rpartition(THINK_CLOSE)
        reasoning.insert(0, before.strip())
    return "\n\n".join(r for r in reasoning if r), rest.strip()


def reasoning_unfinished(text: str) -> bool:
    """Whether a reply ends inside a <think> block (the case `split_reasoning` calls unclosed): the
    token cap cut the reasoning before any answer could follow it."""
    return text.rfind(THINK_OPEN) > text.rfind(THINK_CLOSE)


def is_thinking_checkpoint(name_or_path: str | Path) -> bool:
    """Whether a hub id, a checkpoint folder or a Hugging Face cache snapshot names a Thinking checkpoint
    (MOSS-Audio-4B-Thinking and the like): one rule for every backend. A cache snapshot
    (.../models--OpenMOSS-Team--MOSS-Audio-4B-Thinking/snapshots/<commit>) is named by its repo folder,
    which is what a local model resolved from the hub and a server's model path both look like."""
    parts = [part for part in str(name_or_path).replace("\\", "/").split("/") if part]
    while parts and (parts[-1] == "snapshots" or _is_commit(parts[-1])):
        parts.pop()
    name = parts[-1] if parts else ""
    if name.startswith("models--"):  # the cache's folder of a repo: models--<owner>--<name>
        name = name.rsplit("--", 1)[-1]
    return "thinking" in name.lower()


def _is_commit(part: str) -> bool:
    return len(part) == 40 and all(char in "0123456789abcdef" for char in part)


@runtime_checkable  # isinstance() checks the members are there (tests); signatures are for type checkers
class Engine(Protocol):
    """What every backend offers the pipeline and the command line, and all they may rely on.

    Read-only properties here are met by plain attributes as well. A backend that cannot say (a
    server's device) answers None rather than leaving the member out, so callers never probe.
    """

    name: str  # the model's name, as results and manifests record it

    @property
    def parallelism(self) -> int:
        """Requests worth sending together: batch rows (local), or requests in flight (servers)."""

    @property
    def thinking(self) -> bool:
        """A Thinking checkpoint: it needs tokens to reason before it answers."""

    @property
    def max_request_seconds(self) -> float | None:
        """The most audio one request may carry; None when unknown or unlimited."""

    @property
    def where(self) -> str | None:
        """Where the model runs, for the command line to print ("cpu in float32"); None for servers."""

    def ask(self, audio: np.ndarray, question: str, options: DecodingOptions = DecodingOptions(),
            guard: RepetitionGuard | None = None) -> Answer:
        """One question about one recording (16 kHz mono samples)."""

    def ask_many(self, requests: list[Request]) -> list[Answer]:
        """Many requests, answered in request order (batched or sent concurrently as the backend can)."""

    def ask_questions(self, audio: np.ndarray, questions: list[str], options: DecodingOptions = DecodingOptions(),
                      guard: RepetitionGuard | None = None) -> list[Answer]:
        """Several questions about one recording, in order."""

    def ask_text(self, question: str, options: DecodingOptions = DecodingOptions(),
                 guard: RepetitionGuard | None = None) -> Answer:
        """A text-only request, e.g. to combine partial answers."""

    def counts(self) -> str | None:
        """For the run summary: how many requests each of several servers answered; None when there is
        nothing worth saying (one server, or a local model)."""

    def close(self) -> None:
        """Free what the engine holds (memory, connections); it answers nothing afterwards. Safe twice."""
