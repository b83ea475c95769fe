"""One engine shared by several recordings at once: requests from many files fill the same batches.

A run over many short files would otherwise decode one file's few chunks at a time (a 10-second
file is one row of a batch that could hold eight). Each file's pipeline runs in its own thread
and calls `ask_many` as usual; the calls are gathered here and sent to the engine together, up
to its batch width, and every caller gets its own answers back in its own order. Batches give
each row the tokens it would get alone (engine/local/generation.py), so outputs do not change.

A batch goes as soon as it is full, or when every file being worked on is waiting for answers:
a file still decoding its audio or scanning for speech is waited for, never left behind.

An engine that decodes continuously (the local one: `decode_continuously`) is driven by one thread
of its own while there is work: whenever one of its rows finishes, it takes the next request waiting
from any caller (the next file's chunks too), so no row waits for a whole batch to end. Text-only
questions (`ask_text`) join those rows; `ask_questions` runs on that thread between decoding steps.
Remote engines run requests in parallel themselves and get whole batches, as above.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..interrupts import WAIT_SLICE, started
from .base import Answer, DecodingOptions, Engine, RepetitionGuard, Request


@dataclass(eq=False)  # found in the queue by identity: fields would compare the requests' audio arrays
class _Call:
    """One caller's requests, answered as the batches holding them come back."""

    requests: list[Request]
    answers: list[Answer | None] = field(default_factory=list)
    sent: int = 0  # requests taken into a batch so far
    error: BaseException | None = None

    def __post_init__(self):
        self.answers = [None] * len(self.requests)

    @property
    def done(self) -> bool:
        return self.error is not None or all(answer is not None for answer in self.answers)


@dataclass
class _Task:
    """Work that needs the engine to itself (several questions about one recording sharing a prefill)."""

    work: Callable
    result: object = None
    error: BaseException | None = None
    done: bool = False


class SharedBatches:
    """An Engine that shares the wrapped one among threads (one a file), batching across them."""

    def __init__(self, engine: Engine, rows: int | None = None):
        self.engine = engine
        self.rows = max(1, rows or engine.parallelism)
        self._state = threading.Condition()
        self._members = 0  # files being worked on (see member())
        self._queue: list[_Call] = []  # calls with requests not yet sent, oldest first
        self._busy = False  # a batch is being decoded
        self._engine_lock = threading.Lock()  # other calls (text-only, several questions) one at a time
        # MOSS_CONTINUOUS=0 (a benchmark's baseline): whole batches, as for remote engines
        continuous = callable(getattr(engine, "decode_continuously", None))
        self._continuous = continuous and os.environ.get("MOSS_CONTINUOUS") != "0"
        self._tasks: list[_Task] = []  # ask_questions calls waiting for the decoding thread
        # Set when the interpreter exits with the decoding thread alive: it takes no more requests and
        # ends, and the exit waits for it (a thread still inside torch at shutdown aborts the process).
        self._stopping = threading.Event()
        self._in_flight: dict[int, tuple[_Call, int]] = {}  # requests handed to the engine, by key
        self._keys = itertools.count()

    # ---- the contract, passed through --------------------------------------------------------
    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def parallelism(self) -> int:
        return self.rows

    @property
    def thinking(self) -> bool:
        return self.engine.thinking

    @property
    def max_request_seconds(self) -> float | None:
        return self.engine.max_request_seconds

    @property
    def where(self) -> str | None:
        return self.engine.where

    def counts(self) -> str | None:
        return self.engine.counts()

    def close(self) -> None:
        self.engine.close()

    def ask(self, audio, question: str, options: DecodingOptions = DecodingOptions(),
            guard: RepetitionGuard | None = None) -> Answer:
        return self.ask_many([Request(audio, question, options, guard)])[0]

    def ask_questions(self, audio, questions: list[str], options: DecodingOptions = DecodingOptions(),
                      guard: RepetitionGuard | None = None) -> list[Answer]:
        return self._alone(lambda: self.engine.ask_questions(audio, questions, options, guard))

    def ask_text(self, question: str, options: DecodingOptions = DecodingOptions(),
                 guard: RepetitionGuard | None = None) -> Answer:
        if self._continuous:  # a request without audio: a text-only question, in a row like any other
            return self.ask_many([Request(None, question, options, guard)])[0]
        return self._alone(lambda: self.engine.ask_text(question, options, guard))

    def _alone(self, work: Callable):
        """`work()` with the engine to itself: under the lock, or on the decoding thread between steps."""
        if not self._continuous:
            with self._engine_lock:
                return work()
        task = _Task(work)
        with self._state:
            self._tasks.append(task)
            self._wait_until(lambda: task.done)
        if task.error is not None:
            raise task.error
        return task.result

    # ---- batching across callers --------------------------------------------------------------
    @contextmanager
    def member(self) -> Iterator[None]:
        """Held while a file is worked on: a batch waits for each member to ask or to leave."""
        with self._state:
            self._members += 1
        try:
            yield
        finally:
            with self._state:
                self._members -= 1
                self._state.notify_all()

    def ask_many(self, requests: list[Request]) -> list[Answer]:
        if not requests:
            return []
        call = _Call(list(requests))
        with self._state:
            self._queue.append(call)
            self._state.notify_all()
            if self._continuous:
                self._wait_until(lambda: call.done)
        while not self._continuous:
            batch = self._next_batch(call)
            if batch is None:
                break
            self._decode(batch)
        if call.error is not None:
            raise call.error
        return list(call.answers)

    def _next_batch(self, call: _Call) -> list[tuple[_Call, int]] | None:
        """Wait until `call` is answered (None) or it is this thread's turn to decode a batch."""
        with self._state:
            while not call.done:
                if not self._busy and self._ready():
                    self._busy = True
                    return self._take()
                self._state.wait(WAIT_SLICE)
        return None

    def _ready(self) -> bool:
        waiting = sum(len(c.requests) - c.sent for c in self._queue)
        asking = len(self._queue)  # each member has at most one call in the queue
        return waiting > 0 and (waiting >= self.rows or asking >= self._members)

    def _take(self, count: int | None = None) -> list[tuple[_Call, int]]:
        """Up to `count` (`rows`) requests, oldest calls first: (call, index in its requests) each."""
        count = self.rows if count is None else count
        batch: list[tuple[_Call, int]] = []
        for call in list(self._queue):
            while call.sent < len(call.requests) and len(batch) < count:
                batch.append((call, call.sent))
                call.sent += 1
            if call.sent == len(call.requests):
                self._queue.remove(call)
            if len(batch) == count:
                break
        return batch

    def _decode(self, batch: list[tuple[_Call, int]]) -> None:
        rows = self._asked(batch)
        with self._state:
            for (call, index), row in zip(batch, rows):
                if isinstance(row, BaseException):
                    call.error = row
                    if call in self._queue:
                        self._queue.remove(call)
                else:
                    call.answers[index] = row
            self._busy = False
            self._state.notify_all()

    def _asked(self, batch: list[tuple[_Call, int]]) -> list[Answer | BaseException]:
        """An answer or an error for each row. An error raised by the whole batch reaches every caller in
        it (the run decides), except an error about one input (`fails_input`, a question the prompt cannot
        hold, say) in a batch of several callers: each caller's rows are then asked again on their own, so
        that it reaches only the caller it is about. The engine raises those before decoding anything."""
        try:
            with self._engine_lock:
                return list(self.engine.ask_many([call.requests[index] for call, index in batch]))
        except BaseException as exc:
            callers = list({id(call): call for call, _ in batch}.values())
            if len(callers) < 2 or not getattr(exc, "fails_input", False):
                return [exc] * len(batch)
        rows: list[Answer | BaseException | None] = [None] * len(batch)
        for caller in callers:
            positions = [p for p, (call, _) in enumerate(batch) if call is caller]
            for position, row in zip(positions, self._asked([batch[p] for p in positions])):
                rows[position] = row
        return rows

    # ---- continuous decoding: one thread drives the engine's rows --------------------------------
    def _wait_until(self, done: Callable[[], bool]) -> None:
        """Wait (holding `_state`) until `done()`, starting the decoding thread whenever there is work
        for it and none runs: calls ready to go (see _ready) or work that needs the engine alone."""
        while not done():
            if not self._busy and (self._tasks or self._ready()):
                self._busy = True
                started(self._drive, name="moss-rows", stop=self._stopping)
            self._state.wait(WAIT_SLICE)

    def _drive(self) -> None:
        """The decoding thread: decode until nothing is ready, then leave (the next call starts it again)."""
        try:
            while True:
                self._run_tasks()
                self.engine.decode_continuously(self._pull, self._deliver)
                with self._state:
                    if self._stopping.is_set() or (not self._tasks and not self._ready()):
                        return
        except BaseException as exc:  # noqa: BLE001 - the model itself failed: every request decoding hears it
            with self._state:
                for call, _ in self._in_flight.values():
                    call.error = call.error or exc
                    if call in self._queue:
                        self._queue.remove(call)
                self._in_flight.clear()
        finally:
            with self._state:
                self._busy = False
                self._state.notify_all()

    def _pull(self, count: int) -> list[tuple[int, Request]]:
        """Up to `count` waiting requests for free rows, from any caller. With no row decoding, only once
        the calls are ready to go, as a batch would be (the first file does not decode alone)."""
        self._run_tasks()
        with self._state:
            if self._stopping.is_set() or (not self._in_flight and not self._ready()):
                return []
            pulled = []
            for call, index in self._take(count):
                key = next(self._keys)
                self._in_flight[key] = (call, index)
                pulled.append((key, call.requests[index]))
            return pulled

    def _deliver(self, key: int, answer: Answer | Exception) -> None:
        """One request's answer, or the error about that request alone (it reaches only its caller)."""
        with self._state:
            call, index = self._in_flight.pop(key)
            if isinstance(answer, BaseException):
                call.error = call.error or answer
                if call in self._queue:
                    self._queue.remove(call)
            else:
                call.answers[index] = answer
            self._state.notify_all()

    def _run_tasks(self) -> None:
        """Work that needs the engine alone, run here between decoding steps (the rows wait meanwhile)."""
        while True:
            with self._state:
                if not self._tasks:
                    return
                task = self._tasks.pop(0)
            try:
                task.result = task.work()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller that asked
                task.error = exc
            with self._state:
                task.done = True
                self._state.notify_all()
