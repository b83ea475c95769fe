"""A stand-in MOSS-Audio server (OpenAI-compatible) on 127.0.0.1, and recordings it can read.

The recordings are phrases of real synthetic speech (examples/sample.wav) separated by exact
digital silence; phrase i is scaled to a peak of (100 + i) / 1000, so the server can tell which
phrases a request holds and where they lie in it, and answers in the model's own formats.

Like vLLM and SGLang it streams answers as server-sent events when asked to (one event per token,
a token being a word, a number or a punctuation mark here), and it can misbehave as real servers
do: loop until the client hangs up, refuse audio longer than its encoder cache with vLLM's own
400 message, die mid-run; and it can show its prompt ids the way vLLM and SGLang do.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample.wav"
RATE = 16_000
MIN_GAP = RATE  # a second of exact silence separates phrases


@dataclass
class Phrase:
    index: int
    start: float  # seconds, first non-zero sample
    end: float  # seconds, after the last non-zero sample


def sample_phrases() -> list[np.ndarray]:
    """The four spoken phrases of examples/sample.wav, trimmed, with their pauses made exact zeros."""
    audio, _ = sf.read(SAMPLE, dtype="int16")
    audio = np.where(np.abs(audio.astype(np.int32)) <= 2, 0, audio).astype(np.float32) / 32768
    loud = np.abs(audio) > 0
    phrases, start, quiet = [], None, 0
    for i, on in enumerate(loud):
        if on:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet > RATE // 10:
                phrases.append(audio[start : i - quiet + 1])
                start, quiet = None, 0
    if start is not None:
        phrases.append(audio[start : len(audio) - quiet])
    return phrases


def phrase_recording(total_seconds: float, seed: int = 0, gaps=(2.0, 6.0)) -> tuple[np.ndarray, list[Phrase]]:
    """Phrases separated by silent gaps until `total_seconds`; returns PCM16-exact samples and the truth."""
    rng = np.random.default_rng(seed)
    sources = sample_phrases()
    pieces, truth, position, index = [], [], 0, 0
    while True:
        gap = int(rng.uniform(*gaps) * RATE)
        phrase = sources[index % len(sources)]
        if position + gap + phrase.size > total_seconds * RATE or index >= 899:
            break
        peak = (100 + index) / 1000
        scaled = np.round(phrase / np.abs(phrase).max() * peak * 32767) / 32767
        pieces += [np.zeros(gap, np.float32), scaled.astype(np.float32)]
        nonzero = np.flatnonzero(scaled)
        start = position + gap + nonzero[0]
        truth.append(Phrase(index, start / RATE, (position + gap + nonzero[-1] + 1) / RATE))
        position += gap + phrase.size
        index += 1
    pieces.append(np.zeros(int(total_seconds * RATE) - position, np.float32))
    return np.concatenate(pieces), truth




def phrase_file(path: Path, total_seconds: float, seed: int = 0, gaps=(2.0, 6.0)) -> tuple[Path, list[Phrase]]:
    """phrase_recording written to `path` as 16 kHz PCM16 WAV: the path and the truth."""
    audio, truth = phrase_recording(total_seconds, seed=seed, gaps=gaps)
    sf.write(path, audio, 16_000, subtype="PCM_16")
    return path, truth

def phrases_in(audio: np.ndarray) -> list[Phrase]:
    """What the server hears: phrases by index, with times inside this piece of audio."""
    loud = np.flatnonzero(audio != 0)
    if loud.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > MIN_GAP)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [Phrase(int(round(np.abs(audio[s:e]).max() * 1000)) - 100, s / RATE, e / RATE)
            for s, e in zip(starts, ends)]


@dataclass
class FakeMoss:
    requests: list[dict] = field(default_factory=list)
    fail_first: int = 0  # answer this many requests with 503 first, to exercise retries
    list_models: bool = True  # False: /v1/models is 404, as on some servers
    authorizations: list = field(default_factory=list)  # the Authorization header of each request
    served: int = 0
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests seen at once
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Replaces the answer when it returns (status, payload); payload bytes go out as they are (hostile
    # or malformed replies). Called with the request's number (1, 2, ...), body and headers.
    override: Callable[[int, dict, dict], tuple[int, dict | bytes] | None] | None = None
    streams: bool = True  # answer {"stream": true} with server-sent events, one event per token
    loop: str | None = None  # every answer repeats this after its first words, until the client hangs up
    token_seconds: float = 0.0005  # how long each streamed token takes, as on a GPU (only faster)
    tokens_sent: list = field(default_factory=list)  # tokens streamed, per streamed request
    max_audio_seconds: float | None = None  # longer audio is refused with vLLM's encoder-cache 400
    refuses_in_stream: bool = False  # ... or, to a streamed request, inside the stream, as vLLM 0.32 does
    rejected: int = 0
    models: list = field(default_factory=lambda: [{"id": "moss-fake", "object": "model", "owned_by": "vllm",
                                                   "root": "/models/MOSS-Audio-4B-Instruct"}])
    prompt_ids: Callable[[dict, np.ndarray | None], list[int]] | None = None  # the prompt it builds for a request
    render: bool = False  # has vLLM's /v1/chat/completions/render (prompt ids, nothing generated)
    token_ids: bool = False  # answers "return_token_ids": true with prompt_token_ids, as vLLM does
    answer_ids: list[int] | None = None  # ... and with these as the answer's token_ids (check-server --compute)
    die_after: int | None = None  # after answering this many requests the server dies (FakeServer.kill)
    on_die: Callable[[], None] | None = None

    def respond(self, body: dict, headers: dict) -> tuple[int, dict | bytes]:
        if self.override is not None and (reply := self.override(self.served + 1, body, headers)) is not None:
            with self.lock:
                self.served += 1
            return reply
        return self.answer(body)

    def answer(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.served += 1
            served = self.served
        if served <= self.fail_first:
            return 503, {"error": {"message": "busy"}}
        audio, text = request_parts(body)
        if self.max_audio_seconds is not None and audio is not None and audio.size / RATE > self.max_audio_seconds:
            with self.lock:
                self.rejected += 1
            return 400, {"object": "error", "type": "BadRequestError", "code": 400,
                         "message": encoder_cache_message(audio.size / RATE, self.max_audio_seconds)}
        heard = phrases_in(audio) if audio is not None else []
        with self.lock:
            self.requests.append({"text": text, "seconds": None if audio is None else audio.size / RATE,
                                  "phrases": [p.index for p in heard], "body": body})
        reply = completion(reply_for(text, heard))
        if self.prompt_ids is not None:
            ids = self.prompt_ids(body, audio)
            reply["usage"]["prompt_tokens"] = len(ids)  # SGLang says no more than this
            if self.token_ids and body.get("return_token_ids"):
                reply["prompt_token_ids"] = ids
                if self.answer_ids is not None:
                    reply["choices"][0]["token_ids"] = self.answer_ids
        return 200, reply

    def tokens(self, body: dict) -> tuple[int, dict] | list[str]:
        """The answer as the tokens to stream (endless when looping), or an error reply."""
        status, reply = self.answer(body)
        if status != 200:
            return status, reply
        tokens = stream_tokens(reply["choices"][0]["message"]["content"])
        return tokens if self.loop is None else _chain(tokens[:3], self._looping())

    def _looping(self):
        while True:
            yield from stream_tokens(self.loop)


def request_parts(body: dict) -> tuple[np.ndarray | None, str]:
    """The audio (if any) and the question text of a chat request."""
    content = body["messages"][-1]["content"]
    audio, text = None, content if isinstance(content, str) else ""
    if not isinstance(content, str):
        for part in content:
            if part["type"] == "audio_url":
                audio = decode_data_url(part["audio_url"]["url"])
            else:
                text = part["text"]
    return audio, text


def encoder_cache_message(seconds: float, limit_seconds: float) -> str:
    """vLLM's words when an audio item does not fit the encoder cache (12.5 embeddings a second)."""
    return (f"The decoder prompt contains a(n) audio item with {int(np.ceil(seconds * 12.5))} embedding tokens, "
            f"which exceeds the pre-allocated encoder cache size {int(limit_seconds * 12.5)}. Please reduce the "
            "input size or increase the encoder cache size by setting --limit-mm-per-prompt at startup.")


def reply_for(prompt: str, heard: list[Phrase]) -> str:
    if "word-level" in prompt:
        words = []
        for p in heard:
            step = (p.end - p.start) / 3
            words += [f"[{p.start + k * step:.2f}]w{p.index}{'abc'[k]}[{p.start + (k + 1) * step:.2f}]" for k in range(3)]
        return "".join(words)
    if "sentence-level" in prompt:
        return "".join(f"[{p.start:.2f}]phrase {p.index}.[{p.end:.2f}]" for p in heard)
    if "sound events" in prompt:
        return "\n".join(f"{p.start:.2f} - {p.end:.2f}: phrase {p.index} spoken" for p in heard)
    if heard or "Part 1" not in prompt:
        return "heard " + ",".join(str(p.index) for p in heard)
    return "combined " + str(prompt.count("Part "))


def completion(text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "moss-fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


TOKEN = re.compile(r"\s*(?:\d+|[^\W\d]+|[^\w\s])|\s+")  # a word, a number or a mark, with the space before it


def stream_tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def chunk_event(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    """One server-sent event of a streamed chat completion, as vLLM writes it."""
    event = {"id": "x", "object": "chat.completion.chunk", "model": "moss-fake",
             "choices": [] if usage else [{"index": 0, "delta": {} if content is None else {"content": content},
                                           "finish_reason": finish}]}
    if usage:
        event["usage"] = usage
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def decode_data_url(url: str) -> np.ndarray:
    header, payload = url.split(",", 1)
    assert header == "data:audio/wav;base64"
    audio, rate = sf.read(io.BytesIO(base64.b64decode(payload)), dtype="float32")
    assert rate == RATE and audio.ndim == 1
    return audio


class FakeServer:
    """ThreadingHTTPServer (HTTP/1.1, kept-alive connections) on an ephemeral loopback port; use as a
    context manager."""

    def __init__(self, fake: FakeMoss | None = None):
        self.fake = fake or FakeMoss()
        self.connections: set = set()
        self.dead = False
        if self.fake.die_after is not None and self.fake.on_die is None:
            self.fake.on_die = self.kill
        owner = self

        class Handler(_Handler):
            fake_model = self.fake
            server_owner = owner

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        # A handler still writing to a client that hung up records what it sent once its write fails: wait
        # for every connection's handler to end, so that a test reads the whole record.
        deadline = time.monotonic() + 10
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.01)

    def kill(self) -> None:
        """Stop as a crashed server does: connecting is refused from now on, open connections are cut."""
        if self.dead:
            return
        self.dead = True
        self.httpd.socket.close()  # the listening socket: a connection attempt is refused at once
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        for connection in list(self.connections):
            try:
                connection.shutdown(2)
            except OSError:
                pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up mid-request (as it should, on a loop) is no error here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as uvicorn serves vLLM
    fake_model: FakeMoss
    server_owner: FakeServer

    def setup(self):
        super().setup()
        self.server_owner.connections.add(self.connection)

    def finish(self):
        self.server_owner.connections.discard(self.connection)
        super().finish()

    def do_GET(self):
        if self.path.endswith("/v1/models") and self.fake_model.list_models:
            self._send(200, {"object": "list", "data": self.fake_model.models})
        else:
            self._send(404, {"error": {"message": "no such route"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fake = self.fake_model
        if self.path.endswith("/v1/chat/completions/render") and fake.render and fake.prompt_ids is not None:
            self._send(200, {"request_id": "r", "token_ids": fake.prompt_ids(body, request_parts(body)[0])})
            return
        if not self.path.endswith("/v1/chat/completions"):
            self._send(404, {"error": {"message": "no such route"}})
            return
        fake.authorizations.append(self.headers.get("Authorization"))
        with fake.lock:
            fake.in_flight += 1
            fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
        try:
            self._answer(body)
        finally:
            with fake.lock:
                fake.in_flight -= 1
            if fake.die_after is not None and len(fake.requests) >= fake.die_after and fake.on_die:
                fake.on_die()

    def _answer(self, body: dict) -> None:
        fake = self.fake_model
        if not (fake.streams and body.get("stream") and fake.override is None):
            self._send(*fake.respond(body, dict(self.headers)))
            return
        tokens = fake.tokens(body)
        if isinstance(tokens, tuple) and fake.refuses_in_stream and tokens[0] == 400:
            self._stream_error(tokens[1]["message"])
            return
        if isinstance(tokens, tuple):
            self._send(*tokens)
            return
        self._stream(tokens, body.get("max_tokens") or 10**9)

    def _stream(self, tokens, max_tokens: int) -> None:
        fake, sent, finish = self.fake_model, 0, "stop"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for token in tokens:
                if sent == max_tokens:
                    finish = "length"
                    break
                self._chunk(chunk_event(token))
                sent += 1
                time.sleep(fake.token_seconds)
            self._chunk(chunk_event(finish=finish) + chunk_event(usage={"prompt_tokens": 1, "completion_tokens": sent}))
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except OSError:  # the client hung up: the request is aborted, as vLLM and SGLang do
            self.close_connection = True
        finally:
            with fake.lock:
                fake.tokens_sent.append(sent)

    def _stream_error(self, message: str) -> None:
        """A 200 stream whose only event is the error, then [DONE]: vLLM 0.32's way once it has begun streaming."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        error = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
        self._chunk(b"data: " + json.dumps(error).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send(self, status, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _chain(first, rest):
    yield from first
    yield from rest
