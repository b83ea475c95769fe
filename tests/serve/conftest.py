"""A moss server on an ephemeral loopback port, in this process, on the stand-in server or the tiny checkpoint."""

from __future__ import annotations

import logging
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from support.fake_server import FakeServer
from support.serving import Serving

from moss_cli.engine.factory import EngineSpec
from moss_cli.serve.admission import remove_root
from moss_cli.serve.work import Worker


@pytest.fixture(autouse=True, scope="session")
def _upload_root_removed():
    """The upload folder a test process made is removed after, as `moss serve` removes its own."""
    yield
    remove_root()


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """`moss serve` run in this process (CliRunner) points the root logger at its stderr, which the
    runner closes after: later servers' log lines would go to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _nothing_left_behind(request):
    """After every test, every upload folder is gone (a request's thread may take a moment to end)."""
    yield
    from moss_cli.serve.admission import upload_root

    deadline = time.monotonic() + 30
    while left := list(upload_root().iterdir()):
        assert time.monotonic() < deadline, f"{request.node.name} left uploads behind: {left}"
        time.sleep(0.05)


@pytest.fixture
def fake():
    with FakeServer() as upstream:
        yield upstream


@pytest.fixture
def remote_worker(fake):
    worker = Worker(EngineSpec(servers=[fake.url], timeout=30, jobs=4))
    worker.start()
    yield worker
    worker.close()


@pytest.fixture
def serving(remote_worker):
    with Serving(remote_worker) as running:
        yield running
