"""Several servers behind one engine: each request goes to the one with the fewest in flight; a server
that refuses connections or keeps failing is set aside for a while and its requests go to the others.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .http import redact_url

FAILURES_BEFORE_COOLING = 2  # failed requests in a row (each after its retries) that set a server aside
COOL_SECONDS = 30.0  # the first time aside; it doubles each time, up to MAX_COOL_SECONDS
MAX_COOL_SECONDS = 300.0


@dataclass(eq=False)
class Server:
    """One server's address and how it has been doing this run."""

    url: str
    in_flight: int = 0
    sent: int = 0  # requests given to it
    answered: int = 0
    failed: int = 0  # requests it failed (after its retries)
    failures_in_a_row: int = 0
    times_aside: int = 0
    aside_until: float = 0.0  # monotonic time; before it, the server is only a last resort
    down: str | None = None  # why its latest connection was refused; cleared by an answer
    accepted_seconds: float = 0.0  # the longest audio it has taken in one request
    probe: threading.Lock = field(default_factory=threading.Lock)  # one request longer than that at a time

    @property
    def name(self) -> str:  # how messages show it: no user name or password
        return redact_url(self.url)


class ServerPool:
    """Picks servers for requests and keeps their counts; safe to use from many threads."""

    def __init__(self, urls: list[str], clock=time.monotonic):
        self.servers = [Server(url.rstrip("/")) for url in urls]
        self._clock = clock
        self._lock = threading.Lock()

    def pick(self, tried: set[Server]) -> Server | None:
        """The server for a request's next try: one it has not tried, with the fewest requests in
        flight (then the fewest sent: servers take turns). One set aside is a last resort, and one
        whose connection was refused a moment ago is none. None when no server is left to try."""
        with self._lock:
            now = self._clock()
            untried = [s for s in self.servers if s not in tried]
            ready = [s for s in untried if s.aside_until <= now]
            last_resort = [s for s in untried if s.aside_until > now and s.down is None]
            choices = ready or last_resort
            if not choices:
                return None
            server = min(choices, key=lambda s: (s.in_flight, s.sent))
            server.in_flight += 1
            server.sent += 1
            return server

    def answered(self, server: Server) -> None:
        with self._lock:
            server.in_flight -= 1
            server.answered += 1
            server.failures_in_a_row = 0
            server.down = None

    def released(self, server: Server) -> None:
        """The request ended without an answer that says anything about the server (interrupted,
        refused as too long)."""
        with self._lock:
            server.in_flight -= 1

    def failed(self, server: Server, refused: str | None = None) -> None:
        """The server failed a request after its retries; `refused`: no connection could be made."""
        with self._lock:
            server.in_flight -= 1
            server.failed += 1
            server.failures_in_a_row += 1
            if refused is not None:
                server.down = refused
            if refused is not None or server.failures_in_a_row >= FAILURES_BEFORE_COOLING:
                server.aside_until = self._clock() + min(COOL_SECONDS * 2**server.times_aside, MAX_COOL_SECONDS)
                server.times_aside += 1
                server.failures_in_a_row = 0

    def all_down(self) -> bool:
        """Every server refused its latest connection: nothing is left to send to."""
        with self._lock:
            return all(s.down is not None for s in self.servers)

    def counts(self) -> str:
        """How many requests each server answered, for the run summary."""
        parts = []
        for s in self.servers:
            aside = f", set aside {s.times_aside}x" if s.times_aside else ""
            failed = f", {s.failed} failed" if s.failed else ""
            parts.append(f"{s.name} {s.answered}{failed}{aside}")
        return "requests answered: " + "; ".join(parts)
