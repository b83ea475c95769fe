"""Live audio for tests: arrays played as live sources, bytes fed into pipes at real-time speed, a local
HTTP server that streams a file as a radio station does, a stand-in for sounddevice's input stream."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from moss_cli.audio.live import LiveSource

RATE = 16_000


class ArraySource(LiveSource):
    """Samples as a live source, in blocks, as fast as they are taken (faster than real time)."""

    def __init__(self, samples_or_blocks, block: int = 1600, name: str = "array"):
        super().__init__(name)
        self.samples, self.block = samples_or_blocks, block

    def blocks(self):
        if callable(self.samples):  # a generator of blocks: a stream too long to hold
            yield from self.samples()
            return
        for start in range(0, self.samples.size, self.block):
            if self.stopping.is_set():
                return
            yield self.samples[start : start + self.block]


def feed_in_real_time(data: bytes, write, bytes_per_second: float, head: int = 0, close=None,
                      step_seconds: float = 0.05) -> threading.Thread:
    """A thread writing `data` through `write` at `bytes_per_second` (the first `head` bytes at once:
    a header), then calling `close`; a broken pipe ends it quietly."""

    def run() -> None:
        try:
            write(data[:head])
            started, sent = time.monotonic(), head
            step = max(1, int(bytes_per_second * step_seconds))
            while sent < len(data):
                write(data[sent : sent + step])
                sent += step
                ahead = (sent - head) / bytes_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, OSError, ValueError):
            return
        finally:
            if close is not None:
                try:
                    close()
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class StreamingServer:
    """Serves one file over HTTP at real-time speed (chunked, no length), like an internet radio."""

    def __init__(self, path: Path, bytes_per_second: float, content_type: str = "audio/wav"):
        data = path.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(piece: bytes) -> None:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()

                feed_in_real_time(data, chunk, bytes_per_second, head=64).join()
                try:
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.name}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> StreamingServer:
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StandInMicrophone:
    """sounddevice as the live path uses it: InputStream(...) calling back with (frames, 1) blocks from a
    thread of its own, at real-time speed, from `samples`; then silence."""

    def __init__(self, samples: np.ndarray, fail: Exception | None = None):
        self.samples, self.fail = samples, fail
        self.opened: list[dict] = []
        mic = self

        class InputStream:
            def __init__(self, **settings):
                if mic.fail is not None:
                    raise mic.fail
                mic.opened.append(settings)
                self.settings, self.running = settings, threading.Event()

            def start(self):
                self.running.set()
                threading.Thread(target=self._play, daemon=True).start()

            def _play(self):
                size, callback = self.settings["blocksize"], self.settings["callback"]
                started = time.monotonic()
                for index, start in enumerate(range(0, mic.samples.size, size)):
                    if not self.running.is_set():
                        return
                    block = np.zeros((size, 1), np.float32)
                    piece = mic.samples[start : start + size]
                    block[: piece.size, 0] = piece
                    callback(block, size, None, None)
                    block[:] = 7.0  # PortAudio reuses its buffer: what the callback kept must be a copy
                    time.sleep(max(0.0, (index + 1) * size / RATE - (time.monotonic() - started)))

            def stop(self):
                self.running.clear()

            def close(self):
                mic.closed = True

        self.InputStream = InputStream
        self.closed = False
