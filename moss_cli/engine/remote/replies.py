"""Reading what a server answers: whole chat completions, streamed ones (server-sent events), model
lists and error bodies. Servers are untrusted: every field is checked for its type and every text
is made printable; a malformed reply is a ValueError saying what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...text import printable
from ..base import Answer, RepetitionGuard, split_reasoning
from ..loops import TextLoopGuard

TEXT_PART_TYPES = ("text", "output_text")  # OpenAI's chat and responses spellings of a text part


def read_completion(reply) -> Answer:
    """A chat completion reply as an Answer; ValueError says what is malformed."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("malformed reply: no choices[0].message")
    raw = printable(_text_of(message.get("content"), "choices[0].message.content"))
    extra = _optional_text(message.get("reasoning_content")) or _optional_text(message.get("reasoning"))
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    return _answer(raw, printable(extra), finish, _prompt_tokens(reply.get("usage")))


def _answer(raw: str, extra_reasoning: str, finish: str, prompt_tokens: int) -> Answer:
    reasoning, text = split_reasoning(raw)
    return Answer(text, "\n\n".join(r for r in (extra_reasoning.strip(), reasoning) if r), raw, [], finish, prompt_tokens)


def _prompt_tokens(usage) -> int:
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return 0  # usage is informative only: a wrong type is no reason to fail
    return count


def _text_of(value, what: str) -> str:
    """Message text: a string, or (OpenAI's other form) a list of content parts whose text parts are joined."""
    if value is None or isinstance(value, str):
        return value or ""
    parts = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if parts is None:
        raise ValueError(f"malformed reply: {what} is a {type(value).__name__}, not text")
    texts = [part if isinstance(part, str) else part.get("text") for part in parts
             if isinstance(part, str) or isinstance(part, dict) and part.get("type", "text") in TEXT_PART_TYPES]
    if not all(isinstance(text, str) for text in texts) or (isinstance(value, dict) and not texts):
        raise ValueError(f"malformed reply: {what} holds a part without text")
    return "".join(texts)


def _optional_text(value) -> str:
    try:
        return _text_of(value, "reasoning")
    except ValueError:  # reasoning is extra: a malformed one is dropped, the answer still counts
        return ""


# ---- streamed completions --------------------------------------------------------------------------
def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The data of each server-sent event as it completes: its `data:` lines joined by newlines.

    Other fields (event, id, retry) and comments are skipped. Bytes are split on newlines as they
    come, so a line that arrives in pieces costs no more than one that arrives whole.
    """
    partial: list[bytes] = []
    data: list[str] = []
    for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            line = (b"".join(partial) + piece).rstrip(b"\r")
            partial.clear()
            if not line:
                if data:
                    yield "\n".join(data)
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append((value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace"))
        if rest:
            partial.append(rest)
    tail = b"".join(partial).rstrip(b"\r")
    if tail.startswith(b"data:"):
        data.append(tail[5:].lstrip(b" ").decode("utf-8", "replace"))
    if data:  # a stream that ends without its last blank line
        yield "\n".join(data)


@dataclass
class CompletionStream:
    """A chat completion as its chunks arrive (OpenAI's streaming format, as vLLM and SGLang send it).

    `feed` takes one event's data and says whether to stop reading: the answer is complete, or the
    repetition guard found a loop (closing the connection makes vLLM and SGLang abort the request).
    """

    guard: RepetitionGuard | None = None
    seconds: float | None = None  # of audio asked about: rising times past its end are a loop (loops.py)

    def __post_init__(self):
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.done = False  # [DONE] came
        self.looped = False
        self.error: str | None = None  # what the server reported after the stream began (vLLM), on one line
        self._guards = [TextLoopGuard(self.guard, self.seconds) for _ in range(2)] if self.guard else None

    @property
    def complete(self) -> bool:
        """Whether the stream said it was over (a finish reason or [DONE]) or was stopped on a loop."""
        return self.done or self.looped or self.error is not None or self.finish_reason is not None

    def feed(self, data: str) -> bool:
        if data.strip() == "[DONE]":
            self.done = True
            return True
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("malformed reply: a streamed event is not JSON") from None
        if not isinstance(event, dict):
            raise ValueError("malformed reply: a streamed event is not a JSON object")
        self.error = streamed_error(event)
        if self.error is not None:  # the request is over on the server; what it says is for the engine to judge
            return True
        if "usage" in event and event["usage"] is not None:
            self.prompt_tokens = _prompt_tokens(event["usage"]) or self.prompt_tokens
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return False  # a usage-only chunk, or a keep-alive
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ValueError("malformed reply: choices[0] of a streamed event is not an object")
        if self._take(choice.get("delta"), choice.get("finish_reason")):
            self.looped = True
            return True
        return False

    def _take(self, delta, finish) -> bool:
        """Add a chunk's text; True when the guard sees a loop."""
        if delta is not None and not isinstance(delta, dict):
            raise ValueError("malformed reply: choices[0].delta is not an object")
        delta = delta or {}
        text = _text_of(delta.get("content"), "choices[0].delta.content")
        thought = _optional_text(delta.get("reasoning_content")) or _optional_text(delta.get("reasoning"))
        if isinstance(finish, str) and finish:
            self.finish_reason = finish
        self.content.append(text)
        self.reasoning.append(thought)
        if self._guards is None:
            return False
        return self._guards[0].feed(text) if text else self._guards[1].feed(thought) if thought else False

    def answer(self) -> Answer:
        """The answer so far; after a loop, up to where the guard saw it (not the next copy's start)."""
        if self.error is not None:
            raise ValueError(f"the server reported an error mid-answer: {self.error[:200]}")
        finish = "repetition" if self.looped else "length" if self.finish_reason == "length" else "stop"
        content, reasoning = "".join(self.content), "".join(self.reasoning)
        if self.looped and self._guards[0].units:
            content = content[: self._guards[0].seen]
        elif self.looped:
            reasoning = reasoning[: self._guards[1].seen]
        return _answer(printable(content), printable(reasoning), finish, self.prompt_tokens)


def streamed_error(event: dict) -> str | None:
    """The message of an error vLLM reports after the stream began ({"error": {...}} or {"object":
    "error"}), on one line; None for any other event. vLLM 0.32 reports an audio item over its
    encoder cache this way, where a whole reply would have been an HTTP 400."""
    if "error" not in event and event.get("object") != "error":
        return None
    detail = event.get("error", event)
    message = detail.get("message") if isinstance(detail, dict) else detail
    return one_line(message) if isinstance(message, str) and message.strip() else "unknown"


# ---- other replies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServedModel:
    """One entry of /v1/models."""

    name: str  # `id`: what requests name it by; the server's operator may call it anything
    root: str | None  # vLLM and SGLang: the model path it was loaded from
    owner: str | None  # `owned_by`: "vllm", "sglang", ...


def served_models(reply) -> list[ServedModel]:
    data = reply.get("data") if isinstance(reply, dict) else None
    models = []
    for entry in data if isinstance(data, list) else []:
        name = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(name, str) and printable(name).strip():
            models.append(ServedModel(printable(name).strip(), _clean(entry.get("root")), _clean(entry.get("owned_by"))))
    if not models:
        raise ValueError("/models lists no model")
    return models


def _clean(value) -> str | None:
    return printable(value).strip() or None if isinstance(value, str) else None


def error_text(reply) -> str:
    """The server's own error message (OpenAI, FastAPI or plain-text form), printable, on one line."""
    return error_message(reply)[:200]


def error_message(reply) -> str:
    """The server's whole error message, printable, on one line."""
    try:
        payload = json.loads(reply.body)
    except (ValueError, RecursionError):
        payload = None
    message = None
    if isinstance(payload, dict):
        detail = payload.get("error", payload.get("detail", payload.get("message")))
        message = detail.get("message") if isinstance(detail, dict) else detail
    if not isinstance(message, str):
        message = reply.body[:2000].decode("utf-8", "replace") if payload is None else None
    return one_line(message or reply.reason)


def one_line(text: str) -> str:
    return " ".join(printable(text).split())


# vLLM's answer when an audio item does not fit the encoder cache (max_num_batched_tokens): "... audio
# item with N embedding tokens, which exceeds the pre-allocated encoder cache size M. ..."
_ENCODER_CACHE = re.compile(r"encoder cache size (\d+)", re.IGNORECASE)
_ITEM_TOKENS = re.compile(r"(\d+) embedding tokens", re.IGNORECASE)


def encoder_cache_limit(message: str) -> tuple[int | None, int] | None:
    """(the item's embedding tokens N, or None when not said; the cache size M) from vLLM's 'exceeds
    the pre-allocated encoder cache size' message, or None for any other message."""
    cache = _ENCODER_CACHE.search(message)
    if not cache or "exceed" not in message.lower() or int(cache.group(1)) <= 0:
        return None
    tokens = _ITEM_TOKENS.search(message)
    return (int(tokens.group(1)) if tokens and int(tokens.group(1)) > 0 else None), int(cache.group(1))
