"""HTTP for the remote engine: every exchange ends by its deadline, every wait can be cut short.

requests bounds each socket operation, not an exchange: a server that trickles its headers or its
body a byte at a time, or streams an endless chunked body, keeps a request going for ever. Here each
exchange runs under a timer that shuts its sockets down at the deadline, or at once when the client
is stopped (Ctrl-C, SIGTERM, a dead server ending the run); retries wait on an Event that stopping
sets, and a Retry-After header can ask for at most a minute.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

MAX_REPLY_BYTES = 64 << 20  # a chat completion is kilobytes; more is a broken or hostile server
MAX_RETRY_WAIT = 60.0  # seconds: a longer Retry-After is capped
BACKOFF_SECONDS = 0.5  # the first wait between retries; it doubles each time
CONNECT_SECONDS = 30.0  # a server that has not accepted the connection by then counts as down
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HttpError(Exception):
    """An exchange failed; the message names the reason, never a secret."""


class Unreachable(HttpError):
    """No connection could be made (refused, unknown host, no route, connect timeout): the server is down."""


class Stopped(HttpError):
    """The client was stopped while the exchange ran or waited."""


class _Dropped(HttpError):
    """The connection broke before a whole reply came: worth another try."""


class StreamReader(Protocol):
    """Takes a streamed reply's events (server-sent events) one at a time."""

    def feed(self, data: str) -> bool: ...  # one event's data; True: enough, close the connection

    @property
    def complete(self) -> bool: ...  # the stream said it was over (else it was cut short)


@dataclass
class Reply:
    status: int
    reason: str  # the status line's phrase, as the server sent it
    body: bytes  # empty when the reply was streamed
    retry_after: str | None = None
    retries: int = 0  # how many times the exchange was repeated before this reply
    stream: StreamReader | None = None  # what read a streamed reply (text/event-stream)

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: nesting too deep for the parser
            raise HttpError("the reply is not JSON") from None


class HttpClient:
    """A requests session whose exchanges are bounded end to end and can all be aborted at once."""

    def __init__(self, timeout: float, retries: int = 4, api_key: str | None = None):
        self.timeout = timeout  # seconds for one exchange: connecting, sending, waiting, receiving
        self.retries = retries
        self.session = _session(api_key)
        self._stop = threading.Event()
        self._exchanges: set[_Exchange] = set()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Abort every exchange in flight and every wait between retries, now and from now on."""
        self._stop.set()
        with self._lock:
            running = list(self._exchanges)
        for exchange in running:
            exchange.abort()

    def close(self) -> None:
        """Close the session's pooled connections (kept alive between requests)."""
        self.session.close()

    def request(self, method: str, url: str, body: dict | None = None,
                stream: Callable[[], StreamReader] | None = None) -> Reply:
        """One exchange, repeated after a dropped connection, a 429 or a 5xx (exponential backoff).

        With `stream`, a successful reply sent as server-sent events goes to a new reader from
        `stream()` event by event (each try starts a fresh one); the reader can end the exchange
        early, which closes the connection. Raises Unreachable at once when no connection can be
        made, HttpError when the reply does not come in time or the connection keeps breaking;
        returns the last reply otherwise.
        """
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                reply = self._exchange(method, url, body, stream)
            except _Dropped as exc:
                if last:
                    raise HttpError(f"{exc} (after {self.retries} retries)" if self.retries else str(exc)) from None
                delay = BACKOFF_SECONDS * 2**attempt
            else:
                if reply.status not in RETRY_STATUSES or last:
                    reply.retries = attempt
                    return reply
                delay = retry_delay(reply.retry_after, attempt)
            if self._stop.wait(delay):
                raise Stopped("interrupted")
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _exchange(self, method: str, url: str, body: dict | None, stream) -> Reply:
        exchange = _Exchange(self.timeout)
        with self._lock:  # registered before the stop check: stop() either sees it or was seen
            self._exchanges.add(exchange)
        _current.exchange = exchange
        try:
            if self._stop.is_set():
                raise Stopped("interrupted")
            with self.session.request(method, url, json=body, stream=True,
                                      timeout=(min(CONNECT_SECONDS, self.timeout), self.timeout)) as response:
                reader = stream() if stream is not None and _is_event_stream(response) else None
                data = _read_body(response) if reader is None else _read_events(response, reader)
                if data:  # not events after all: a whole reply under a loose content type
                    reader = None
            if exchange.expired or self._stop.is_set():  # cut mid-headers, http.client sees a short reply
                raise HttpError("cut short")
            return Reply(response.status_code, response.reason or "", data, response.headers.get("Retry-After"),
                         stream=reader)
        except Exception as exc:
            if self._stop.is_set():
                raise Stopped("interrupted") from None
            if exchange.expired:
                raise HttpError(f"no complete reply within {self.timeout:g} s (--timeout)") from None
            raise _classified(exc, self.timeout) from None
        finally:
            _current.exchange = None
            exchange.finish()
            with self._lock:
                self._exchanges.discard(exchange)


class _Exchange:
    """The sockets of one exchange, shut down at its deadline or when the client stops.

    Each socket is watched through a duplicate of its file descriptor: shutting that down ends any
    read or write on the connection (plain or TLS, mid-handshake too) without touching the object
    that requests and urllib3 own.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._handles: list[socket.socket] = []
        self._aborted = False
        self._over = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True  # never keeps the process alive
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        try:
            handle = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        with self._lock:
            if self._over:
                handle.close()
                return
            self._handles.append(handle)
            if self._aborted:
                _shut(handle)

    def abort(self) -> None:
        with self._lock:
            if self._over:  # its connection may be back in the pool, serving another exchange
                return
            self._aborted = True
            for handle in self._handles:
                _shut(handle)

    def _expire(self) -> None:
        self.expired = True
        self.abort()

    def finish(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._over = True
            for handle in self._handles:
                handle.close()
            self._handles.clear()


_current = threading.local()  # the exchange running on this thread, for the connections it opens


def _shut(handle: socket.socket) -> None:
    try:
        handle.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the other side
        pass


class _Watched:
    """A urllib3 connection that hands its socket to the exchange running on this thread."""

    def _new_conn(self):
        sock = super()._new_conn()
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.watch(sock)
        return sock

    def request(self, *args, **kwargs):
        exchange = getattr(_current, "exchange", None)
        if exchange is not None and self.sock is not None:  # a kept-alive connection from an earlier exchange
            exchange.watch(self.sock)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring connection classes of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _session(api_key: str | None) -> requests.Session:
    session = requests.Session()
    adapter = _WatchedAdapter(pool_maxsize=32, max_retries=0)  # retries are ours: bounded and interruptible
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def _read_body(response: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise HttpError(f"the reply is larger than {MAX_REPLY_BYTES >> 20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_event_stream(response: requests.Response) -> bool:
    """A streamed answer: text/event-stream, or any type but JSON (some servers label streams loosely)."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return response.status_code == 200 and kind != "application/json"


def _read_events(response: requests.Response, reader: StreamReader) -> bytes:
    """Hand each event to the reader as it arrives, until it has enough or the stream ends. Returns
    the bytes read when they held no event at all (a whole reply), else nothing.

    read1 returns whatever has arrived (iter_content would wait for a whole block), so the reader
    sees each token when the server sends it; leaving early closes the connection.
    """
    from .replies import sse_data

    received: list[bytes] = []  # kept until the first event: the reply may be a whole one after all
    size, events = 0, 0

    def arriving():
        nonlocal size
        while data := response.raw.read1(64 * 1024, decode_content=True):  # a proxy may gzip the stream
            size += len(data)
            if size > MAX_REPLY_BYTES:
                raise HttpError(f"the reply is larger than {MAX_REPLY_BYTES >> 20} MB")
            if not events:
                received.append(data)
            yield data

    for event in sse_data(arriving()):
        events += 1
        if reader.feed(event):
            return b""
    if not events:
        return b"".join(received)
    if not reader.complete:  # the server hung up mid-answer without an error: worth another try
        raise _Dropped("the streamed answer ended before it was complete")
    return b""


def retry_delay(retry_after: str | None, attempt: int) -> float:
    """Seconds to wait before the next try: the server's Retry-After (seconds or a date), capped at
    MAX_RETRY_WAIT, else exponential backoff."""
    backoff = min(BACKOFF_SECONDS * 2**attempt, MAX_RETRY_WAIT)
    if not retry_after:
        return backoff
    try:
        seconds = float(retry_after)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return backoff
    if math.isnan(seconds):
        return backoff
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


def _classified(exc: Exception, timeout: float) -> Exception:
    """A requests/urllib3 failure as one of ours; anything else (a bug) is returned as it is."""
    if isinstance(exc, HttpError):
        return exc
    reason = _reason(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(f"no connection within {min(CONNECT_SECONDS, timeout):g} s")
    if isinstance(exc, requests.exceptions.Timeout):
        return HttpError(f"no reply within {timeout:g} s (--timeout)")
    if isinstance(exc, requests.exceptions.ConnectionError) and _any_cause(exc, urllib3.exceptions.NewConnectionError):
        return Unreachable(reason)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.ProtocolError)):  # ProtocolError: a stream read broke off
        return _Dropped(reason)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return HttpError(f"no reply within {timeout:g} s (--timeout)")
    if isinstance(exc, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError)):
        return HttpError(reason)
    return exc


def _causes(exc: BaseException):
    """The exception and what caused it, outermost first (requests wraps urllib3 wraps the OSError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        reason = getattr(exc, "reason", None)
        wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = reason if isinstance(reason, BaseException) else wrapped or exc.__cause__ or exc.__context__


def _any_cause(exc: BaseException, kind: type) -> bool:
    return any(isinstance(cause, kind) for cause in _causes(exc))


def _reason(exc: BaseException) -> str:
    """The innermost system error ("Connection refused"), else the deepest message, on one line."""
    causes = list(_causes(exc))
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    for cause in reversed(causes):
        text = " ".join(str(cause).split())
        if text:
            return text[:200]
    return type(exc).__name__


def redact_url(url: str) -> str:
    """The URL without the user name and password it may carry: http://***@host/v1."""
    netloc = _netloc(url)
    if "@" not in netloc:
        return url
    try:
        return urlunsplit(urlsplit(url)._replace(netloc="***@" + netloc.rpartition("@")[2]))
    except ValueError:  # malformed (http://u:p@[::1/v1): the error naming it must still show it, redacted
        return url.replace(netloc, "***@" + netloc.rpartition("@")[2], 1)


def url_secrets(url: str) -> list[str]:
    """The user name and password in a URL, as written and decoded, to keep out of messages."""
    netloc = _netloc(url)
    if "@" not in netloc:
        return []
    found = [value for value in netloc.rpartition("@")[0].split(":", 1) if value]
    return found + [unquote(value) for value in found]


def _netloc(url: str) -> str:
    """The URL's host part, also when urlsplit refuses it (a malformed IPv6 address raises ValueError,
    and the messages about such a URL must not turn into an internal error)."""
    try:
        return urlsplit(url).netloc
    except ValueError:
        rest = url.partition("//")[2]
        return re.split(r"[/?#]", rest, maxsplit=1)[0]


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
