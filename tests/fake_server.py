"""A stand-in MOSS-Audio server (OpenAI-compatible) on 127.0.0.1, and recordings it can read.

The recordings are phrases of real synthetic speech (examples/sample.wav) separated by exact
digital silence; phrase i is scaled to a peak of (100 + i) / 1000, so the server can tell which
phrases a request holds and where they lie in it, and answers in the model's own formats.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.wav"
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

    def respond(self, body: dict, headers: dict) -> tuple[int, dict | bytes]:
        if self.override is not None and (reply := self.override(self.served + 1, body, headers)) is not None:
            self.served += 1
            return reply
        return self.answer(body)

    def answer(self, body: dict) -> tuple[int, dict]:
        self.served += 1
        if self.served <= self.fail_first:
            return 503, {"error": {"message": "busy"}}
        content = body["messages"][-1]["content"]
        audio, text = None, content if isinstance(content, str) else ""
        if not isinstance(content, str):
            for part in content:
                if part["type"] == "audio_url":
                    audio = decode_data_url(part["audio_url"]["url"])
                else:
                    text = part["text"]
        heard = phrases_in(audio) if audio is not None else []
        self.requests.append({"text": text, "seconds": None if audio is None else audio.size / RATE,
                              "phrases": [p.index for p in heard], "body": body})
        return 200, completion(reply_for(text, heard))


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


def decode_data_url(url: str) -> np.ndarray:
    header, payload = url.split(",", 1)
    assert header == "data:audio/wav;base64"
    audio, rate = sf.read(io.BytesIO(base64.b64decode(payload)), dtype="float32")
    assert rate == RATE and audio.ndim == 1
    return audio


class FakeServer:
    """ThreadingHTTPServer on an ephemeral loopback port; use as a context manager."""

    def __init__(self, fake: FakeMoss | None = None):
        self.fake = fake or FakeMoss()
        fake_model = self.fake

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.endswith("/v1/models") and fake_model.list_models:
                    self._send(200, {"object": "list", "data": [{"id": "moss-fake", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                if not self.path.endswith("/v1/chat/completions"):
                    self._send(404, {"error": {"message": "no such route"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake_model.authorizations.append(self.headers.get("Authorization"))
                with fake_model.lock:
                    fake_model.in_flight += 1
                    fake_model.most_in_flight = max(fake_model.most_in_flight, fake_model.in_flight)
                try:
                    self._send(*fake_model.respond(body, dict(self.headers)))
                finally:
                    with fake_model.lock:
                        fake_model.in_flight -= 1

            def _send(self, status, payload):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
