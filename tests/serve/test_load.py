"""Load: uploads held at once up to --max-concurrency, a bounded queue behind them and 429 with
Retry-After past it; a client that leaves or a request that runs out of time stops its work; the
upload folder is empty after; memory stays flat over many requests."""

from __future__ import annotations

import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from support.fake_server import FakeMoss, FakeServer, phrase_file
from support.serving import Serving

from moss_cli.engine.factory import EngineSpec
from moss_cli.serve.admission import upload_root
from moss_cli.serve.http import ServeSettings
from moss_cli.serve.work import Worker


class Gate:
    """Holds every upstream request until opened: the uploads stay in flight as long as a test needs."""

    def __init__(self):
        self.open = threading.Event()

    def __call__(self, number, body, headers):
        self.open.wait(30)  # then the stand-in answers as usual (an override returning None)


@pytest.fixture
def wav(tmp_path) -> bytes:
    path, _ = phrase_file(tmp_path / "a.wav", 3.0, gaps=(0.3, 0.5))
    return path.read_bytes()


@pytest.fixture
def gated():
    gate = Gate()
    with FakeServer(FakeMoss(override=gate)) as upstream:
        worker = Worker(EngineSpec(servers=[upstream.url], timeout=30, jobs=2))  # `moss serve`: jobs = concurrency
        worker.start()
        yield gate, upstream.fake, worker
        gate.open.set()


def post(serving, wav, timeout=30.0):
    return httpx2.post(serving.url + "/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, timeout=timeout)


def wait_for(condition, seconds=60.0):  # generous: the machine may be busy with other work
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def uploads() -> list:
    return list(upload_root().iterdir())


def test_the_queue_holds_what_it_can_and_refuses_the_rest(gated, wav):
    gate, upstream, worker = gated
    with Serving(worker, ServeSettings(max_concurrency=2, max_queue=2)) as serving, ThreadPoolExecutor(6) as pool:
        replies = [pool.submit(post, serving, wav) for _ in range(6)]
        try:
            wait_for(lambda: sum(r.done() for r in replies) == 2 and serving.slots.admitted == 4)
            refused = [r.result() for r in replies if r.done()]
            for reply in refused:
                assert reply.status_code == 429 and int(reply.headers["Retry-After"]) >= 1
                assert reply.json()["error"]["code"] == "rate_limit_exceeded"
            wait_for(lambda: len(uploads()) == 4)  # each held upload in a private folder of its own
            assert stat.S_IMODE(upload_root().stat().st_mode) == 0o700
            wait_for(lambda: upstream.in_flight == 2)  # two at once; the other two wait their turn
            time.sleep(0.2)
            assert upstream.in_flight == 2
        finally:
            gate.open.set()  # passed or failed, the held requests go before the server stops
        served = [r.result() for r in replies if r.result().status_code != 429]
    assert [r.status_code for r in served] == [200] * 4
    assert upstream.most_in_flight == 2 and serving.slots.admitted == 0 and uploads() == []


def test_a_client_that_leaves_stops_its_work(gated, wav):
    gate, upstream, worker = gated
    with Serving(worker, ServeSettings(max_concurrency=1)) as serving, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, serving, wav)
        try:
            wait_for(lambda: upstream.in_flight == 1)
            with pytest.raises(httpx2.TimeoutException):
                post(serving, wav, timeout=0.5)  # queued behind the first, then gone
            time.sleep(0.6)  # the server notices within its look interval
        finally:
            gate.open.set()
        assert first.result().status_code == 200
        wait_for(lambda: serving.slots.admitted == 0 and uploads() == [])
    assert upstream.served == 1  # the one that left never reached the model


def test_a_request_past_its_time_is_a_504(gated, wav):
    gate, _, worker = gated
    with Serving(worker, ServeSettings(request_timeout=1.0)) as serving:
        try:
            reply = post(serving, wav)
        finally:
            gate.open.set()
        assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"
        wait_for(lambda: serving.slots.admitted == 0 and uploads() == [])  # its place is free again


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_memory_stays_flat_over_many_uploads(remote_worker, wav):
    with Serving(remote_worker, ServeSettings(max_concurrency=4, max_queue=16)) as serving, \
            ThreadPoolExecutor(8) as pool:
        def round_of(n=12):
            assert all(r.status_code == 200 for r in pool.map(lambda _: post(serving, wav * 1), range(n)))

        round_of()  # the first round warms caches and pools
        before = resident_bytes()
        for _ in range(3):
            round_of()
        grown = resident_bytes() - before
        assert uploads() == []
    assert grown < 24 * 1024 * 1024, f"resident memory grew by {grown / 2**20:.1f} MiB over 36 uploads"


def test_a_stream_left_early_stops_asking(tmp_path):
    """A client that reads the first segment of a long transcript and hangs up: the chunks after it
    are never asked, and its upload is removed."""
    path, _ = phrase_file(tmp_path / "long.wav", 420.0, seed=2)
    slow = FakeMoss(override=lambda number, body, headers: time.sleep(1.0))
    with FakeServer(slow) as upstream:
        worker = Worker(EngineSpec(servers=[upstream.url], timeout=30))
        with Serving(worker) as serving:
            with open(path, "rb") as audio, httpx2.stream(
                    "POST", serving.url + "/v1/audio/transcriptions", files={"file": ("long.wav", audio)},
                    data={"stream": "true"}, timeout=30) as reply:
                assert reply.status_code == 200
                first = next(line for line in reply.iter_lines() if line.startswith("data: "))
                assert '"transcript.text.delta"' in first
            wait_for(lambda: serving.slots.admitted == 0 and uploads() == [])
            asked = slow.served
            time.sleep(0.5)
            assert slow.served == asked < 6  # the whole transcript takes 9 requests; the rest are never asked
