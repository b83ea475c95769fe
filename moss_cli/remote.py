"""A remote engine: MOSS-Audio behind an OpenAI-compatible server (vLLM, the OpenMOSS SGLang build)."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .decoding import DecodingOptions, RepetitionGuard, split_reasoning
from .engine import Answer, Request
from .errors import MossError
from .processor import SYSTEM_PROMPT

class ServerError(MossError):
    """The server could not be reached or refused a request (after retries)."""


@dataclass(frozen=True)
class ServerConfig:
    url: str  # base URL ending in /v1
    model: str | None = None  # the served model name; asked from /models when not given
    fallback_model: str | None = None  # used when the server has no /models listing
    api_key: str | None = None
    timeout: float = 600.0  # seconds per request: a long chunk can take a while to decode
    retries: int = 4  # on connection errors, 429 and 5xx, with exponential backoff
    concurrency: int = 1  # requests in flight at once


class RemoteEngine:
    """Same interface as the local MossAudio: ask about audio, or ask about text alone."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.url = config.url.rstrip("/")
        self.session = _session(config)
        self.name = config.model or self._served_model()
        self.thinking = "thinking" in self.name.lower()

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

    @property
    def parallelism(self) -> int:
        return self.config.concurrency

    def ask_many(self, requests: list[Request]) -> list[Answer]:
        """Up to `concurrency` requests in flight; answers in request order."""
        def one(request: Request) -> Answer:
            return self.ask(request.audio, request.question, request.options, request.guard)

        if self.config.concurrency <= 1 or len(requests) <= 1:
            return [one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(one, requests))

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
        reply = self._post("/chat/completions", body)
        try:
            choice = reply["choices"][0]
            raw = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ServerError(f"{self.url}: malformed reply (no choices[0].message.content)") from None
        reasoning, text = split_reasoning(raw)
        extra = choice["message"].get("reasoning_content") or choice["message"].get("reasoning") or ""
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        usage = reply.get("usage") or {}
        return Answer(text, "\n\n".join(r for r in (extra, reasoning) if r), raw, [], finish,
                      int(usage.get("prompt_tokens") or 0))

    def _served_model(self) -> str:
        try:
            return self._get("/models")["data"][0]["id"]
        except (ServerError, KeyError, IndexError, TypeError):
            if self.config.fallback_model:  # not every server lists its models
                return self.config.fallback_model
            raise ServerError(f"{self.url}/models lists no model; pass --server-model") from None

    def _get(self, path: str) -> dict:
        return self._request("GET", path, None)

    def _post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        import requests

        try:
            response = self.session.request(method, self.url + path, json=body, timeout=self.config.timeout)
        except requests.exceptions.RetryError as exc:
            raise ServerError(f"{self.url}{path}: still failing after {self.config.retries} retries ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise ServerError(f"{self.url}{path}: {_reason(exc)}") from None
        if response.status_code >= 400:
            raise ServerError(f"{self.url}{path}: HTTP {response.status_code} {_error_text(response)}")
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"{self.url}{path}: reply is not JSON") from None


def wav_data_url(samples: np.ndarray) -> str:
    """16 kHz mono PCM16 WAV, base64, as a data URL."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _session(config: ServerConfig):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=config.retries, connect=config.retries, read=0, backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None, raise_on_status=True,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
    session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
    if config.api_key:
        session.headers["Authorization"] = f"Bearer {config.api_key}"
    return session


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()' ").splitlines()[0][:200] if text else type(exc).__name__


def _error_text(response) -> str:
    try:
        detail = response.json().get("error", {})
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(str(message or response.reason).split())[:200]
