"""A remote engine: MOSS-Audio behind OpenAI-compatible servers (vLLM, the OpenMOSS SGLang build).

Answers are streamed and watched by the repetition guard: a loop closes the connection, which makes
vLLM and SGLang abort the request. Servers are untrusted: every field of a reply is checked for its
type, text is made printable, and a request can take no longer than the timeout however the server
behaves (see http_client). Several servers share the requests (see servers).
"""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...audio.constants import SAMPLE_RATE, TOKENS_PER_SECOND
from ...errors import RequestTooLongError, ServerError, ServerUnavailableError, UnsupportedByServerError
from ...text import printable
from ..base import SYSTEM_PROMPT, Answer, DecodingOptions, RepetitionGuard, Request, is_thinking_checkpoint
from .http import HttpClient, HttpError, Stopped, Unreachable, redact, url_secrets
from .replies import (
    CompletionStream,
    ServedModel,
    encoder_cache_limit,
    error_message,
    error_text,
    read_completion,
    served_models,
)
from .servers import Server, ServerPool

__all__ = ["RemoteEngine", "ServerConfig", "ServerError", "ServerUnavailableError", "wav_data_url"]

FIT_MARGIN = 0.97  # windows are cut this much shorter than what the server's message says fits
# Audio up to this long never waits to probe a server's limit (an encoder cache under 375 tokens is
# no real setup); longer audio probes one request at a time until a server has taken that much.
UNPROBED_SECONDS = 30.0


@dataclass(frozen=True)
class ServerConfig:
    url: str | tuple[str, ...]  # base URL ending in /v1, or several: requests are shared among them
    model: str | None = None  # the served model name; asked from /models when not given
    fallback_model: str | None = None  # used when the server has no /models listing
    api_key: str | None = None
    timeout: float = 600.0  # seconds for one request, end to end: a long chunk can take a while to decode
    retries: int = 4  # after dropped connections, 429 and 5xx, with exponential backoff
    concurrency: int = 1  # requests in flight at once, over all servers
    time_markers: bool = True  # False: the request asks the processor to leave them out (vLLM)
    thinking: bool | None = None  # a Thinking checkpoint? None: from the served model's path

    @property
    def urls(self) -> list[str]:
        return [self.url] if isinstance(self.url, str) else list(self.url)


def request_extras(time_markers: bool) -> dict:
    """What every chat request carries beyond the OpenAI fields (also recorded in manifests).

    Servers insert time markers by default (vLLM from the hub's processor config, SGLang always);
    vLLM takes the processor's switch per request.
    """
    return {} if time_markers else {"mm_processor_kwargs": {"enable_time_marker": False}}


class RequestSizeLimit:
    """The longest audio one request may carry in this run, learnt from the first refusal.

    A request longer than its server has taken before (and than UNPROBED_SECONDS) is a probe: one at
    a time, so a limit is learnt from one refused request, never from several at once.
    """

    def __init__(self):
        self.seconds: float | None = None
        self.probe = threading.Lock()
        self._lock = threading.Lock()

    def check(self, seconds: float) -> None:
        if self.seconds is not None and seconds > self.seconds:
            raise RequestTooLongError(f"{seconds:.1f} s of audio is more than the servers take in one request "
                                      f"({self.seconds:.1f} s)", self.seconds)

    def learn(self, seconds: float, tokens: int | None, cache: int) -> float:
        """From 'N embedding tokens exceeds the encoder cache size M' about `seconds` of audio: M/N of
        it (the server's own count, time markers and all), at most M at 12.5 tokens a second, and
        always less than was refused, so that asking again makes progress."""
        fits = min(seconds * cache / (tokens or seconds * TOKENS_PER_SECOND), cache / TOKENS_PER_SECOND,
                   seconds * 0.9) * FIT_MARGIN
        with self._lock:
            self.seconds = fits if self.seconds is None else min(self.seconds, fits)
            return self.seconds


class RemoteEngine:
    """Same interface as the local MossAudio: ask about audio, or ask about text alone."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.client = HttpClient(config.timeout, config.retries, config.api_key)
        self.pool = ServerPool(config.urls)
        self.limit = RequestSizeLimit()
        self._secrets = [config.api_key or ""] + [s for url in config.urls for s in url_secrets(url)]
        self.extras = request_extras(config.time_markers)
        if config.model is None or not config.time_markers:  # the listing says what is served, and by what
            self.served = self._listed_model()
        self.name = config.model or self.served.name
        if not config.time_markers and self.served.owner == "sglang":
            raise UnsupportedByServerError(self._safe(
                f"--no-time-markers: the server ({self.served.name}) is SGLang, whose processor always inserts time "
                "markers; drop --no-time-markers, or serve the model with vLLM"))

    @property
    def servers(self) -> list[Server]:
        return self.pool.servers

    @property
    def parallelism(self) -> int:
        return self.config.concurrency

    @property
    def max_request_seconds(self) -> float | None:
        """The longest audio a request may carry, once a server has said (None: no limit known)."""
        return self.limit.seconds

    @cached_property
    def served(self) -> ServedModel:
        """The /models entry of the served model (asked when first needed when --server-model is given)."""
        return self._listed_model()

    @cached_property
    def thinking(self) -> bool:
        """A Thinking checkpoint needs room to reason: told by --thinking, else by the path the server
        loaded the model from (vLLM's and SGLang's `root`), else by its name."""
        if self.config.thinking is not None:
            return self.config.thinking
        return is_thinking_checkpoint(self.served.root or self.served.name)

    @property
    def where(self) -> None:
        """Servers keep their device and dtype to themselves."""
        return None

    def counts(self) -> str | None:
        """Requests each server answered, for the run summary; None for one server, which answered them all."""
        return self.pool.counts() if len(self.servers) > 1 else None

    def close(self) -> None:
        """Close the kept-alive connections; requests still in flight are ended first (see stop)."""
        self.stop()
        self.client.close()

    def stop(self) -> None:
        """End every request in flight and every wait at once (Ctrl-C, SIGTERM); the engine is done."""
        self.client.stop()

    def ask(
        self, audio: np.ndarray, question: str, options: DecodingOptions = DecodingOptions(),
        guard: RepetitionGuard | None = None,
    ) -> Answer:
        """One chat completion: the audio as a base64 WAV data URL, then the question."""
        return self._complete(audio_content(audio, question), options, guard, audio.size / SAMPLE_RATE)

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
        return self._complete(question, options, guard)

    def chat_body(self, content, options: DecodingOptions) -> dict:
        """A chat completion request: the official system prompt, then the user's turn."""
        body = {
            "model": self.name,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            **self.extras,
        }
        if options.top_k:
            body["top_k"] = options.top_k  # vLLM and SGLang accept it beside the OpenAI fields
        if options.seed is not None:
            body["seed"] = options.seed
        return body

    def post(self, path: str, body: dict):
        """One request whose reply is read whole, as JSON (check-server's questions)."""
        return self._request("POST", path, body, _json)

    def _complete(self, content, options: DecodingOptions, guard: RepetitionGuard | None, seconds: float = 0.0) -> Answer:
        """A streamed chat completion. It is always guarded: a loop on a server holds a GPU that other
        requests wait for, and the local engine's guard is the one used when the caller gives none."""
        body = {**self.chat_body(content, options), "stream": True, "stream_options": {"include_usage": True}}
        guard = guard or RepetitionGuard()
        audio = seconds or None  # rising times past the end of the audio are a loop; a text request has none
        return self._request("POST", "/chat/completions", body, _answer_of, lambda: CompletionStream(guard, audio),
                             seconds)

    def _listed_model(self) -> ServedModel:
        """The served model's /models entry: the one named by --server-model, else the first."""
        try:
            models = self._request("GET", "/models", None, lambda reply: served_models(_json(reply)))
        except ServerError:
            name = self.config.model or self.config.fallback_model
            if name:  # not every server lists its models
                return ServedModel(name, None, None)
            raise ServerError(f"server {self.servers[0].name}: /models lists no model; pass --server-model") from None
        wanted = self.config.model
        return next((m for m in models if m.name == wanted), ServedModel(wanted, None, models[0].owner)) \
            if wanted else models[0]

    def _request(self, method: str, path: str, body: dict | None, read, stream=None, seconds: float = 0.0):
        """Send to the server with the fewest requests in flight and `read` its reply; on failure the
        next server not tried yet. A request fails when every server failed it; the run ends when
        every server refuses connections. Errors name the server, never a secret."""
        tried: set[Server] = set()
        failures: list[str] = []
        while (server := self.pool.pick(tried)) is not None:
            tried.add(server)
            try:
                with self._admitted(server, seconds):
                    result = self._exchange(server, method, path, body, read, stream, seconds)
            except Unreachable as exc:
                self.pool.failed(server, refused=str(exc))
                failures.append(f"server {server.name}: {exc}")
            except _Failed as exc:
                self.pool.failed(server)
                failures.append(str(exc))
            except BaseException:  # interrupted, too long, unsupported: no other server would do better
                self.pool.released(server)
                raise
            else:
                self.pool.answered(server)
                return result
        if self.pool.all_down():
            reasons = "; ".join(f"{s.name}: {s.down}" for s in self.servers)
            which = "the server" if len(self.servers) == 1 else "any server"
            raise ServerUnavailableError(self._safe(f"cannot reach {which} ({reasons}); is it running? (--server)"))
        raise ServerError(self._safe("; ".join(failures)))

    @contextmanager
    def _admitted(self, server: Server, seconds: float):
        """Audio longer than this server has taken goes one request at a time (see RequestSizeLimit)."""
        self.limit.check(seconds)
        if seconds <= max(server.accepted_seconds, UNPROBED_SECONDS):
            yield
            return
        with self.limit.probe:
            self.limit.check(seconds)  # learnt while this request waited
            yield
        server.accepted_seconds = max(server.accepted_seconds, seconds)

    def _exchange(self, server: Server, method: str, path: str, body, read, stream, seconds: float):
        try:
            reply = self.client.request(method, server.url + path, body, stream)
        except Stopped:
            raise ServerError(self._safe(f"server {server.name}: interrupted")) from None
        except Unreachable:
            raise
        except HttpError as exc:
            raise _Failed(self._safe(f"server {server.name}: {exc}")) from None
        if reply.status >= 400:
            self._refused(server, reply, seconds)
        if reply.stream is not None and reply.stream.error is not None:
            self._too_long(server, reply.stream.error, seconds)  # vLLM 0.32 says so inside the stream
        try:
            return read(reply)
        except (HttpError, ValueError) as exc:
            raise _Failed(self._safe(f"server {server.name}: {exc}")) from None

    def _refused(self, server: Server, reply, seconds: float):
        """An error status: the audio too long for the server, an option it refuses, or a failure."""
        message = error_message(reply)
        if 400 <= reply.status < 500:
            self._too_long(server, message, seconds)
        if self.extras and reply.status == 400 and ("mm_processor_kwargs" in message or "enable_time_marker" in message):
            raise UnsupportedByServerError(self._safe(
                f"--no-time-markers: server {server.name} refuses the request's mm_processor_kwargs "
                f"({error_text(reply)}); let vLLM take per-request processor kwargs, or drop --no-time-markers"))
        retried = f" (after {reply.retries} retries)" if reply.retries else ""
        raise _Failed(self._safe(f"server {server.name}: HTTP {reply.status} {error_text(reply)}{retried}"))

    def _too_long(self, server: Server, message: str, seconds: float) -> None:
        """RequestTooLongError when the server's message says the audio exceeds its encoder cache (as an
        HTTP 400, or inside the stream): the limit is learnt for the rest of the run."""
        found = encoder_cache_limit(message)
        if found and seconds > 0:
            fits = self.limit.learn(seconds, *found)
            raise RequestTooLongError(self._safe(
                f"server {server.name}: {seconds:.1f} s of audio does not fit its encoder cache "
                f"({found[1]} tokens); requests now carry at most {fits:.1f} s"), fits)

    def _safe(self, message: str) -> str:
        """One printable line without secrets: parts of it (a status line, an error body) come from the server."""
        return " ".join(printable(redact(message, self._secrets)).split())


class _Failed(ServerError):
    """This server failed the request (after its retries); another server may still answer it."""


def _answer_of(reply) -> Answer:
    """A streamed answer, or a whole one from a server that does not stream."""
    return reply.stream.answer() if reply.stream is not None else read_completion(_json(reply))


def _json(reply):
    return reply.json()  # HttpError when it is not JSON


def audio_content(audio: np.ndarray, question: str) -> list[dict]:
    """A user turn: the audio as a base64 WAV data URL, then the question."""
    return [{"type": "audio_url", "audio_url": {"url": wav_data_url(audio)}}, {"type": "text", "text": question}]


def wav_data_url(samples: np.ndarray) -> str:
    """16 kHz mono PCM16 WAV, base64, as a data URL."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
