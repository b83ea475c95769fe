"""A moss server (`moss serve`'s app) on an ephemeral loopback port, in a thread of the test's process.

Here, not in tests/serve/conftest.py: a test module importing `conftest` by name gets whichever
conftest.py was imported last under that name (tests/conftest.py's helpers went missing that way)."""

from __future__ import annotations

import threading
import time

import uvicorn

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
