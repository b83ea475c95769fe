"""Every wait has a bound: servers on 127.0.0.1 that trickle, stall or never answer, and interruptions.

`Misbehaving` speaks raw HTTP over a socket, so it can do what no well-behaved server library does:
send a header a second, a body a byte at a time, an endless chunked body. Each script gives up after
SCRIPT_SECONDS, so the code before these fixes fails the timing assertions instead of hanging.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import numpy as np
import pytest

from moss_cli.engine.base import DecodingOptions, Request
from moss_cli.engine.remote.engine import RemoteEngine, ServerConfig
from moss_cli.errors import ServerError, ServerUnavailableError

SCRIPT_SECONDS = 6.0  # how long a misbehaving server keeps it up before it closes the connection
TIMEOUT = 1.0  # the client's --timeout in these tests
BOUND = 3.0  # what a bounded request may take here: the timeout plus room for a loaded machine
AUDIO = np.zeros(16_000, dtype=np.float32)
OPTIONS = DecodingOptions(max_new_tokens=8)


def completion_bytes(text: str = "ok") -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}).encode()


class Misbehaving:
    """A raw HTTP server: reads each request, then runs `script(connection, number, stop)`."""

    def __init__(self, script):
        self.script = script
        self.stop = threading.Event()
        self.connections = 0
        self.all_in = threading.Event()  # set when `expect` requests have arrived
        self.expect = 1
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.lock = threading.Lock()

    def __enter__(self) -> Misbehaving:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                read_request(connection)
                with self.lock:
                    self.connections += 1
                    number = self.connections
                    if number >= self.expect:
                        self.all_in.set()
                self.script(connection, number, self.stop)
            except OSError:  # the client hung up: that is what the tests want
                pass


def read_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += connection.recv(65536) or b"x" * length


def keep_up(stop: threading.Event, every: float, send) -> None:
    """Call `send` every `every` seconds for SCRIPT_SECONDS, or until the server stops."""
    until = time.monotonic() + SCRIPT_SECONDS
    while time.monotonic() < until and not stop.wait(every):
        send()


def trickled_body(connection, number, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    keep_up(stop, 0.1, lambda: connection.sendall(b" "))


def trickled_headers(connection, number, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    keep_up(stop, 0.1, lambda: connection.sendall(b"X-Slow: yes\r\n"))


def endless_chunks(connection, number, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    keep_up(stop, 0.02, lambda: connection.sendall(b"40\r\n" + b" " * 64 + b"\r\n"))


def endless_events(connection, number, stop):
    """An answer streamed for ever, word after word, none repeated: only the timeout can end it."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    words = (" " + "".join(chr(97 + (n >> shift) % 26) for shift in (0, 5, 10)) for n in range(10**9))

    def send():
        event = b"data: " + json.dumps({"choices": [{"delta": {"content": next(words)}}]}).encode() + b"\n\n"
        connection.sendall(b"%x\r\n%s\r\n" % (len(event), event))

    keep_up(stop, 0.02, send)


def event_chunk(payload) -> bytes:
    event = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def stream_dropped_then_whole(connection, number, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    connection.sendall(event_chunk({"choices": [{"delta": {"content": f"try {number}"}}]}))
    if number == 1:
        return  # the server dies mid-answer: the connection closes without the end of the stream
    connection.sendall(event_chunk({"choices": [{"delta": {"content": " done"}, "finish_reason": "stop"}]})
                       + event_chunk(b"[DONE]") + b"0\r\n\r\n")


def test_an_answer_cut_off_mid_stream_is_asked_again():
    with Misbehaving(stream_dropped_then_whole) as server:
        engine = engine_for(server)
        assert engine.ask(AUDIO, "What is this?", OPTIONS).text == "try 2 done"
        assert server.connections == 2


def never_answers(connection, number, stop):
    stop.wait(SCRIPT_SECONDS)


def busy_for_a_day_then_fine(connection, number, stop):
    if number == 1:
        connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 86400\r\nContent-Length: 0\r\n\r\n")
    else:
        body = completion_bytes("after the wait")
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                           % (len(body), body))


def engine_for(server, **config) -> RemoteEngine:
    return RemoteEngine(ServerConfig(server.url, model="moss", timeout=config.pop("timeout", TIMEOUT), **config))


@pytest.mark.parametrize("script", [trickled_body, trickled_headers, endless_chunks, endless_events, never_answers])
def test_timeout_bounds_a_request_end_to_end(script):
    with Misbehaving(script) as server:
        engine = engine_for(server)
        started = time.monotonic()
        with pytest.raises(ServerError, match=r"within 1 s \(--timeout\)"):
            engine.ask(AUDIO, "What is this?", OPTIONS)
        assert time.monotonic() - started < BOUND
        assert server.connections == 1  # a request that timed out is not sent again


def test_cli_timeout_against_a_trickling_server(wav_file):
    from typer.testing import CliRunner

    from moss_cli.cli.app import app

    with Misbehaving(trickled_body) as server:
        started = time.monotonic()
        result = CliRunner().invoke(app, ["caption", str(wav_file), "--server", server.url, "--server-model", "m",
                                          "--timeout", "1", "-q"])
        elapsed = time.monotonic() - started
    assert result.exit_code == 1 and elapsed < BOUND
    assert str(wav_file) in result.stderr and server.url in result.stderr and "--timeout" in result.stderr


def test_retry_after_is_capped(monkeypatch):
    from moss_cli.engine.remote import http as http_client

    assert http_client.retry_delay("86400", 0) == http_client.MAX_RETRY_WAIT == 60.0
    assert http_client.retry_delay("2", 0) == 2.0 and http_client.retry_delay("soon", 1) == 1.0
    monkeypatch.setattr(http_client, "MAX_RETRY_WAIT", 0.3)
    with Misbehaving(busy_for_a_day_then_fine) as server:
        engine = engine_for(server, timeout=5.0)
        outcome = []
        worker = threading.Thread(target=lambda: outcome.append(engine.ask(AUDIO, "Hi?", OPTIONS).text), daemon=True)
        worker.start()
        worker.join(BOUND)
    assert outcome == ["after the wait"]


def test_stop_ends_a_retry_wait_at_once():
    with Misbehaving(busy_for_a_day_then_fine) as server:
        engine = engine_for(server, timeout=5.0)
        errors = []

        def ask():
            try:
                engine.ask(AUDIO, "Hi?", OPTIONS)
            except ServerError as exc:
                errors.append(exc)

        worker = threading.Thread(target=ask, daemon=True)
        worker.start()
        assert server.all_in.wait(BOUND)  # the 503 came back; the client now waits (up to 60 s)
        time.sleep(0.2)
        started = time.monotonic()
        engine.stop()
        worker.join(BOUND)
        assert not worker.is_alive() and time.monotonic() - started < 1.0
    assert errors and "interrupted" in str(errors[0])


def interrupt_main_when(event: threading.Event) -> threading.Thread:
    """Ctrl-C, as the terminal sends it: SIGINT to the main thread once `event` is set."""
    main = threading.main_thread().ident

    def send():
        if event.wait(BOUND):
            time.sleep(0.2)
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]


def test_ctrl_c_does_not_wait_for_requests_in_flight():
    with Misbehaving(never_answers) as server:
        server.expect = 4
        engine = engine_for(server, timeout=8.0, concurrency=4)
        interrupt_main_when(server.all_in)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            engine.ask_many([Request(AUDIO, f"question {i}", OPTIONS) for i in range(4)])
        assert time.monotonic() - started < BOUND  # not the 8 s the requests in flight could take
        until = time.monotonic() + 2.0
        while pool_threads() and time.monotonic() < until:
            time.sleep(0.05)
        assert not pool_threads()  # their connections were shut: nothing holds the exit


def test_ctrl_c_ends_a_retry_wait_in_the_main_thread():
    with Misbehaving(busy_for_a_day_then_fine) as server:
        engine = engine_for(server, timeout=5.0)
        interrupt_main_when(server.all_in)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            engine.ask(AUDIO, "Hi?", OPTIONS)
        assert time.monotonic() - started < BOUND


def test_a_dead_server_is_reported_at_once():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/v1"  # nothing listens there once closed
    engine = RemoteEngine(ServerConfig(url, model="moss", timeout=5.0))
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="Connection refused") as caught:
        engine.ask(AUDIO, "Hi?", OPTIONS)
    assert time.monotonic() - started < 1.0 and url in str(caught.value)
    assert engine.servers[0].down  # with several servers, the others would still be tried


def test_secrets_stay_out_of_messages():
    from moss_cli.engine.remote.http import redact, redact_url, url_secrets

    url = "https://alice:p%40ss@example.org:8443/v1"
    assert redact_url(url) == "https://***@example.org:8443/v1"
    assert redact(f"{url} said p@ss and alice", url_secrets(url)) == "https://***:***@example.org:8443/v1 said *** and ***"


def garbage_status_line(connection, number, stop):
    connection.sendall(b"\x1b]0;pwned\x07\x1b[2J garbage\r\nmore\r\n\r\n")


def test_a_garbage_reply_is_one_clean_line():
    with Misbehaving(garbage_status_line) as server:
        engine = engine_for(server, retries=0)
        with pytest.raises(ServerError) as caught:
            engine.ask(AUDIO, "Hi?", OPTIONS)
    message = str(caught.value)
    assert message.startswith(f"server {server.url}:") and "\n" not in message
    assert not any(char in message for char in "\x1b\x07")


def whole_reply_labelled_as_text(connection, number, stop):
    body = completion_bytes("a whole answer")
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_a_whole_reply_under_a_loose_content_type_is_still_read():
    with Misbehaving(whole_reply_labelled_as_text) as server:
        assert engine_for(server).ask(AUDIO, "What is this?", OPTIONS).text == "a whole answer"


def gzipped_stream(connection, number, stop):
    """A stream compressed on the way, as a proxy with gzip on may send it."""
    import gzip

    events = [{"choices": [{"delta": {"content": "packed "}}]},
              {"choices": [{"delta": {"content": "answer"}, "finish_reason": "stop"}]}]
    body = gzip.compress(b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events))
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def test_a_gzipped_stream_is_read():
    with Misbehaving(gzipped_stream) as server:
        assert engine_for(server).ask(AUDIO, "What is this?", OPTIONS).text == "packed answer"
