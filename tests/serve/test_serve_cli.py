"""The `moss serve` and `moss mcp` commands: the missing extra named in one line, a server others can
reach without a key said loudly, the settings handed to uvicorn; the access log keeps no key."""

from __future__ import annotations

import importlib.util
import logging

import httpx2
import pytest
from support.serving import Serving
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.cli.serving import is_loopback
from moss_cli.serve.http import ServeSettings

runner = CliRunner()


@pytest.mark.parametrize("command", [["serve"], ["mcp", "--allow", "."]])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, command):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("fastapi", "mcp") else real(name, *a))
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"moss: error: this command needs {'fastapi' if command[0] == 'serve' else 'mcp'}: "
        'pip install -e ".[serve]" (or pip install "moss-cli[serve]")']


@pytest.fixture
def uvicorn_runs(monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    return seen


def test_an_open_bind_without_a_key_is_said_loudly(fake, uvicorn_runs):
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9123", "--server", fake.url])
    assert result.exit_code == 0, result.stderr
    assert "WARNING: listening on 0.0.0.0 WITHOUT an API key" in result.stderr
    assert uvicorn_runs["host"] == "0.0.0.0" and uvicorn_runs["port"] == 9123
    assert uvicorn_runs["app"].state.settings.api_key is None


def test_the_settings_reach_the_server(fake, uvicorn_runs):
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--api-key", "k", "--max-concurrency", "3",
                                 "--max-queue", "5", "--max-upload-mb", "1", "--request-timeout", "9",
                                 "--server", fake.url])
    assert result.exit_code == 0 and "WARNING" not in result.stderr
    assert uvicorn_runs["host"] == "0.0.0.0" and uvicorn_runs["app"].state.settings == ServeSettings(
        "k", 1024 * 1024, 3, 5, 9.0)
    assert uvicorn_runs["app"].state.worker.spec.jobs == 3  # the upstream takes as many requests at once


def test_an_empty_key_is_refused(fake, uvicorn_runs):
    result = runner.invoke(app, ["serve", "--api-key", " ", "--server", fake.url])
    assert result.exit_code == 2 and "--api-key: give a non-empty key" in result.stderr and not uvicorn_runs


def test_a_missing_model_ends_before_serving(tmp_path, uvicorn_runs):
    result = runner.invoke(app, ["serve", "-m", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and result.stderr.startswith("moss: error:") and not uvicorn_runs


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                            ("::", False), ("example.org", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_access_log_keeps_no_key_or_audio(remote_worker, caplog, tmp_path):
    from support.fake_server import phrase_file

    path, _ = phrase_file(tmp_path / "a.wav", 3.0, gaps=(0.3, 0.5))
    with caplog.at_level(logging.INFO, logger="moss.serve"), \
            Serving(remote_worker, ServeSettings(api_key="sekrit-key")) as serving:
        reply = httpx2.post(serving.url + "/v1/audio/transcriptions?x=1", files={"file": ("a.wav", path.read_bytes())},
                            headers={"Authorization": "Bearer sekrit-key"}, timeout=30)
        assert reply.status_code == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "moss.serve"]
    assert any(" POST /v1/audio/transcriptions 200 " in line for line in lines)
    assert not any("sekrit" in line or "x=1" in line or "RIFF" in line for line in lines)


def test_moss_serve_runs_logs_and_cleans_up(fake, tmp_path):
    """The real command in a process of its own: it answers, logs each request on stderr, and on
    Ctrl-C stops with exit 0 leaving nothing in the temporary folder."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from support.fake_server import phrase_file
    from support.paths import REPO

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tmp_path / "tmp"
    temp.mkdir()
    path, _ = phrase_file(tmp_path / "a.wav", 3.0, gaps=(0.3, 0.5))
    server = subprocess.Popen([sys.executable, "-m", "moss_cli.cli", "serve", "--port", str(port), "--server", fake.url],
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temp)})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx2.get(url + "/health").json()["status"] == "ok"
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "moss serve did not start"
                time.sleep(0.1)
        reply = httpx2.post(url + "/v1/audio/transcriptions", files={"file": ("a.wav", path.read_bytes())},
                            data={"response_format": "text"}, timeout=30)
        assert reply.status_code == 200 and reply.text.startswith("phrase 0.")
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(30)
    log = server.stderr.read()
    assert code == 0, log
    assert "moss: model moss-fake ready" in log and " POST /v1/audio/transcriptions 200 " in log
    assert [p.name for p in temp.iterdir() if p.name.startswith("moss")] == []  # (a library leaves a .ses file)
