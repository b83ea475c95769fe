"""A remote engine: MOSS-Audio behind an OpenAI-compatible server (vLLM, the OpenMOSS SGLang build).

Servers are untrusted: every field of a reply is checked for its type, text is made printable,
and a request can take no longer than the timeout however the server behaves (see http_client).
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .decoding import Answer, DecodingOptions, RepetitionGuard, Request, split_reasoning
from .errors import ServerError, ServerUnavailableError
from .http_client import HttpClient, HttpError, Unreachable, redact, redact_url, url_secrets
from .tasks import SYSTEM_PROMPT
from .text import printable

__all__ = ["RemoteEngine", "ServerConfig", "ServerError", "ServerUnavailableError", "wav_data_url"]

TEXT_PART_TYPES = ("text", "output_text")  # OpenAI's chat and responses spellings of a text part


@dataclass(frozen=True)
class ServerConfig:
    url: str  # base URL ending in /v1
    model: str | None = None  # the served model name; asked from /models when not given
    fallback_model: str | None = None  # used when the server has no /models listing
    api_key: str | None = None
    timeout: float = 600.0  # seconds for one request, end to end: a long chunk can take a while to decode
    retries: int = 4  # after dropped connections, 429 and 5xx, with exponential backoff
    concurrency: int = 1  # requests in flight at once


@dataclass
class Server:
    """One server's address and whether it still answers. A run ends when no server is left."""

    url: str
    down: str | None = None  # why it could not be reached

    @property
    def name(self) -> str:  # how messages show it: no user name or password
        return redact_url(self.url)


class RemoteEngine:
    """Same interface as the local MossAudio: ask about audio, or ask about text alone."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.client = HttpClient(config.timeout, config.retries, config.api_key)
        self.servers = [Server(config.url.rstrip("/"))]
        self._secrets = [config.api_key or "", *url_secrets(config.url)]
        self.name = config.model or self._served_model()
        self.thinking = "thinking" in self.name.lower()

    @property
    def parallelism(self) -> int:
        return self.config.concurrency

    def stop(self) -> None:
        """End every request in flight and every wait at once (Ctrl-C, SIGTERM); the engine is done."""
        self.client.stop()

    def ask(
        self, audio: np.ndarray, question: str, options: DecodingOptions = DecodingOptions(),
        guard: RepetitionGuard | None = None,
    ) -> Answer:
        """One chat completion: the audio as a base64 WAV data URL, then the question."""
        content = [
            {"type": "audio_url", "audio_url": {"url": wav_data_url(audio)}},
            {"type": "text", "text": question},
        ]
        return self._complete(content, options)

    def ask_many(self, requests: list[Request]) -> list[Answer]:
        """Up to `concurrency` requests in flight; answers in request order.

        A failed request fails the lot once the others in flight have ended (each within the
        timeout); an interruption, or every server gone, stops them all at once instead.
        """
        def one(request: Request) -> Answer:
            return self.ask(request.audio, request.question, request.options, request.guard)

        if self.config.concurrency <= 1 or len(requests) <= 1:
            return [one(r) for r in requests]
        pool = ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(requests)))
        try:
            return list(pool.map(one, requests))
        except ServerError:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit, ServerUnavailableError: nothing may hold the exit
            self.stop()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def ask_questions(
        self, audio: np.ndarray, questions: list[str], options: DecodingOptions = DecodingOptions(),
        guard: RepetitionGuard | None = None,
    ) -> list[Answer]:
        return self.ask_many([Request(audio, q, options, guard) for q in questions])

    def ask_text(
        self, question: str, options: DecodingOptions = DecodingOptions(), guard: RepetitionGuard | None = None
    ) -> Answer:
        return self._complete(question, options)

    def _complete(self, content, options: DecodingOptions) -> Answer:
        body = {
            "model": self.name,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
        }
        if options.top_k:
            body["top_k"] = options.top_k  # vLLM and SGLang accept it beside the OpenAI fields
        if options.seed is not None:
            body["seed"] = options.seed
        return self._request("POST", "/chat/completions", body, read_completion)

    def _served_model(self) -> str:
        try:
            return self._request("GET", "/models", None, _first_model_id)
        except ServerError:
            if self.config.fallback_model:  # not every server lists its models
                return self.config.fallback_model
            raise ServerError(f"server {self.servers[0].name}: /models lists no model; pass --server-model") from None

    def _request(self, method: str, path: str, body: dict | None, read):
        """Send to a live server and `read` its JSON reply; errors name the server, never a secret."""
        while True:
            server = self._live_server()
            try:
                reply = self.client.request(method, server.url + path, body)
                if reply.status >= 400:
                    retried = f" (after {reply.retries} retries)" if reply.retries else ""
                    raise HttpError(f"HTTP {reply.status} {_error_text(reply)}{retried}")
                return read(reply.json())
            except Unreachable as exc:
                server.down = str(exc)
            except (HttpError, ValueError) as exc:
                raise ServerError(self._safe(f"server {server.name}: {exc}")) from None

    def _live_server(self) -> Server:
        live = [server for server in self.servers if server.down is None]
        if live:
            return live[0]
        reasons = "; ".join(f"{server.name}: {server.down}" for server in self.servers)
        raise ServerUnavailableError(self._safe(f"cannot reach the server ({reasons}); is it running? (--server)"))

    def _safe(self, message: str) -> str:
        """One printable line without secrets: parts of it (a status line, an error body) come from the server."""
        return " ".join(printable(redact(message, self._secrets)).split())


def read_completion(reply) -> Answer:
    """A chat completion reply as an Answer; ValueError says what is malformed."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("malformed reply: no choices[0].message")
    raw = printable(_text_of(message.get("content"), "choices[0].message.content"))
    reasoning, text = split_reasoning(raw)
    extra = printable(_optional_text(message.get("reasoning_content")) or _optional_text(message.get("reasoning")))
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    usage = reply.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool) or prompt_tokens < 0:
        prompt_tokens = 0  # usage is informative only: a wrong type is no reason to fail
    return Answer(text, "\n\n".join(r for r in (extra.strip(), reasoning) if r), raw, [], finish, prompt_tokens)


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


def _first_model_id(reply) -> str:
    data = reply.get("data") if isinstance(reply, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    name = first.get("id") if isinstance(first, dict) else None
    if not isinstance(name, str) or not printable(name).strip():
        raise ValueError("/models lists no model")
    return printable(name).strip()


def _error_text(reply) -> str:
    """The server's own error message (OpenAI, FastAPI or plain-text form), printable, on one line."""
    try:
        payload = reply.json()
    except HttpError:
        payload = None
    message = None
    if isinstance(payload, dict):
        detail = payload.get("error", payload.get("detail", payload.get("message")))
        message = detail.get("message") if isinstance(detail, dict) else detail
    if not isinstance(message, str):
        message = reply.body[:2000].decode("utf-8", "replace") if payload is None else None
    return " ".join(printable(message or reply.reason).split())[:200]


def wav_data_url(samples: np.ndarray) -> str:
    """16 kHz mono PCM16 WAV, base64, as a data URL."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
