"""The engine contract, shared by every backend: what an engine is asked (Request, DecodingOptions,
RepetitionGuard) and what it answers (Answer), and the chat layout facts every backend sends.

No torch here: the remote engine and the command line use this module too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

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
