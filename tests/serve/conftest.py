"""A moss server on an ephemeral loopback port, in this process, on the stand-in server or the tiny checkpoint."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

import uvicorn
from support.fake_server import FakeServer

from moss_cli.engine.factory import EngineSpec
from moss_cli.serve.admission import remove_root
from moss_cli.serve.http import ServeSettings, create_app
from moss_cli.serve.work import Worker


class Serving:
    """uvicorn serving the app in a thread; `url` is its base URL, `worker` and `app` what it runs."""

    def __init__(self, worker: Worker, settings: ServeSettings = ServeSettings()):
        self.worker = worker
        self.app = create_app(worker, settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_config=None,
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def slots(self):
        return self.app.state.slots


@pytest.fixture(autouse=True, scope="session")
def _upload_root_removed():
    """The upload folder a test process made is removed after, as `moss serve` removes its own."""
    yield
    remove_root()


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
