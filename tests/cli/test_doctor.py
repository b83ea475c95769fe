"""`moss doctor` and `moss models` through the CLI, over a temporary Hugging Face cache and stand-in servers."""

import hashlib
import json
import os
import shutil
import socket

import pytest
import torch
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.engine.local.engine import resolve_device, resolve_dtype

runner = CliRunner()
TINY_REPO = "OpenMOSS-Team/MOSS-Audio-Tiny-Instruct"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache, repo_id, files: dict, commit=COMMIT, ref="main"):
    """A model repo in the hub cache's own layout: blobs named by content hash, a snapshot of links, a ref."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        data = source.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return repo


@pytest.fixture
def hub_cache(tmp_path, tiny_checkpoint, monkeypatch):
    """HF_HOME with a tiny MOSS-Audio checkpoint and a repo of another kind in its hub cache."""
    cache = tmp_path / "hf-home" / "hub"
    cache_repo(cache, TINY_REPO, {path.name: path for path in tiny_checkpoint.iterdir() if path.is_file()})
    bert = tmp_path / "bert-config.json"
    bert.write_text(json.dumps({"model_type": "bert"}))
    cache_repo(cache, "someone/bert-tiny", {"config.json": bert}, commit="f" * 40)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return cache


def dead_url() -> str:
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def run(*args, code=0, env=None):
    result = runner.invoke(app, list(map(str, args)), env=env)
    assert result.exit_code == code, result.output
    return result


def test_doctor_json_reports_the_cache_device_versions_and_a_server_that_answers(hub_cache, tiny_checkpoint):
    with FakeServer() as server:
        result = run("doctor", "--json", "--server", server.url, "-m", TINY_REPO)
        asked = server.fake.requests
    report = json.loads(result.stdout)
    [moss] = [model for model in report["cache"]["models"] if model["moss_audio"]]
    expected_size = sum(path.stat().st_size for path in tiny_checkpoint.iterdir() if path.is_file())
    assert report["cache"]["path"] == str(hub_cache)
    assert moss["repo_id"] == TINY_REPO and moss["size_bytes"] == expected_size
    assert moss["revisions"] == [f"{COMMIT[:8]} (main)"] and moss["model_type"] == "moss_audio"
    device = resolve_device("auto")
    assert report["device"].split(" ")[0] == str(device) and report["dtype"] == str(resolve_dtype("auto", device))[6:]
    assert report["versions"]["torch"] == torch.__version__ and report["threads"] == torch.get_num_threads()
    assert report["model"] == {"name": TINY_REPO, "status": "in the Hugging Face cache", "found": True}
    assert report["servers"] == [{"url": server.url, "answers": True, "detail": "model moss-fake, vllm",
                                  "seconds": report["servers"][0]["seconds"]}] and report["ok"]
    assert len(asked) == 1 and asked[0]["body"]["max_tokens"] == 1  # check-server's probe, one token


def test_doctor_text_and_a_dead_server_exit_1(hub_cache):
    dead = dead_url()
    with FakeServer() as server:
        result = run("doctor", "--server", server.url, "--server", dead, "--timeout", 2, code=1)
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"  {TINY_REPO}") and f"{COMMIT[:8]} (main)" in line for line in lines)
    assert not any("bert-tiny" in line for line in lines)  # not MOSS-Audio: only counted
    assert "  and 1 other model repo (moss models --all)" in lines
    assert f"server {server.url}: answers" in result.stdout
    assert any(line.startswith(f"server {dead}: does not answer") for line in lines)
    assert "not in the Hugging Face cache (hf download OpenMOSS-Team/MOSS-Audio-4B-Instruct" in result.stdout


def test_doctor_reads_moss_server_and_exits_0_without_servers(hub_cache):
    dead = dead_url()
    assert run("doctor", code=1, env={"MOSS_SERVER": dead}).stdout.count("does not answer") == 1
    assert "server " not in run("doctor", "-m", TINY_REPO).stdout


def test_doctor_bad_server_url_is_a_usage_error(hub_cache):
    result = runner.invoke(app, ["doctor", "--server", "localhost:8000"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "http://" in result.stderr


def test_models_lists_moss_checkpoints_and_with_all_marks_the_others(hub_cache):
    lines = run("models").stdout.splitlines()
    assert lines[0] == f"Hugging Face cache {hub_cache}: 1 MOSS-Audio checkpoint"
    assert lines[1].split()[0] == TINY_REPO and len(lines) == 3
    every = run("models", "--all").stdout
    assert "someone/bert-tiny" in every and "(not MOSS-Audio: bert)" in every
    listed = json.loads(run("models", "--all", "--json").stdout)
    assert [(m["repo_id"], m["moss_audio"]) for m in listed["models"]] == [(TINY_REPO, True), ("someone/bert-tiny", False)]


def test_hf_hub_cache_wins_over_hf_home_and_an_empty_cache_is_said(hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert run("models").stdout == f"Hugging Face cache {tmp_path / 'elsewhere'}: none yet (nothing downloaded)\n"
    shutil.copytree(hub_cache, tmp_path / "elsewhere", symlinks=True)
    assert TINY_REPO in run("models").stdout


def test_hostile_cache_texts_are_printable_and_odd_configs_are_unreadable(hub_cache, tmp_path):
    """Folder names, ref names and config.json are anyone's to write: escape sequences and bidi overrides
    are shown escaped; a FIFO, a huge or a deeply nested config.json is no config (and hangs nothing)."""
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"model_type": "\x1b]0;owned\x07bert\u202egpj.exe"}))
    cache_repo(hub_cache, "evil/\x1b[2Jname\u2066", {"config.json": evil}, commit="e" * 40, ref="ma\x1bin")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    cache_repo(hub_cache, "someone/deep", {"config.json": deep}, commit="d" * 40)
    fifo_repo = cache_repo(hub_cache, "someone/fifo", {}, commit="c" * 40)
    os.mkfifo(fifo_repo / "snapshots" / ("c" * 40) / "config.json")
    every = run("models", "--all").stdout
    assert "\x1b" not in every and "\u202e" not in every and "\u2066" not in every
    assert "evil/\\x1b[2Jname\\u2066" in every and "(ma\\x1bin)" in every
    assert "(not MOSS-Audio: \\x1b]0;owned\\x07bert\\u202egpj.exe)" in every
    listed = {m["repo_id"]: m["model_type"] for m in json.loads(run("models", "--all", "--json").stdout)["models"]}
    assert listed["someone/deep"] is None and listed["someone/fifo"] is None
    assert "\x1b" not in run("doctor", "--json", code=1).stdout  # 1: the default model is not cached here


# ---- the model a run would use, and the released checkpoints ------------------------------------------
RELEASED = ["OpenMOSS-Team/MOSS-Audio-4B-Instruct", "OpenMOSS-Team/MOSS-Audio-4B-Thinking",
            "OpenMOSS-Team/MOSS-Audio-8B-Instruct", "OpenMOSS-Team/MOSS-Audio-8B-Thinking"]


@pytest.fixture
def released_cache(hub_cache, tiny_checkpoint):
    """The 4B Thinking checkpoint complete in the cache, the 8B Instruct as check-server leaves it (no weights)."""
    files = {path.name: path for path in tiny_checkpoint.iterdir() if path.is_file()}
    cache_repo(hub_cache, RELEASED[1], files, commit="a" * 40)
    cache_repo(hub_cache, RELEASED[2], {name: path for name, path in files.items() if not name.endswith(".safetensors")},
               commit="b" * 40)
    return hub_cache


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("moss models --available asked the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_doctor_exits_1_when_the_model_a_run_would_use_is_missing(released_cache, tiny_checkpoint, tmp_path):
    missing = run("doctor", code=1)  # the default, 4B Instruct, is not cached
    assert ("model (--model OpenMOSS-Team/MOSS-Audio-4B-Instruct): not in the Hugging Face cache "
            "(hf download OpenMOSS-Team/MOSS-Audio-4B-Instruct, or use --server)") in missing.stdout
    assert "model (--model 4b-thinking): in the Hugging Face cache" in run("doctor", "-m", "4b-thinking").stdout
    weightless = run("doctor", "-m", "8b", code=1).stdout  # a tokenizer-only snapshot cannot run
    assert "in the Hugging Face cache without model.safetensors or model.safetensors.index.json" in weightless
    assert "model (--model " + str(tiny_checkpoint) + "): a local directory" in run("doctor", "-m", tiny_checkpoint).stdout
    assert "a local directory lacking config.json" in run("doctor", "-m", tmp_path, code=1).stdout
    assert json.loads(run("doctor", "--json", code=1).stdout)["model"]["found"] is False
    assert run("doctor", code=1, env={"MOSS_MODEL": "8b-thinking"}).exit_code == 1
    with FakeServer() as server:  # a run would use the server: the local model is not needed
        assert json.loads(run("doctor", "--json", "--server", server.url).stdout)["ok"] is True


def test_models_available_lists_the_released_checkpoints_cached_or_not_offline(released_cache, no_network):
    lines = run("models", "--available").stdout.splitlines()
    assert lines[0] == f"Released MOSS-Audio checkpoints (bf16 sizes; cache {released_cache}):"
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == RELEASED
    assert [" ".join(row[1:row.index("GB") - 1]) for row in rows] == [
        "-m 4b (default)", "-m 4b-thinking", "-m 8b", "-m 8b-thinking"]
    assert [row[row.index("GB") - 1] for row in rows] == ["10.4", "10.4", "18.0", "18.0"]
    statuses = [" ".join(row[row.index("GB") + 1:]) for row in rows]
    assert statuses == [f"not cached: hf download {RELEASED[0]}", "cached",
                        f"partly cached, lacks model.safetensors or model.safetensors.index.json: hf download {RELEASED[2]}",
                        f"not cached: hf download {RELEASED[3]}"]
    listed = json.loads(run("models", "--available", "--json").stdout)
    assert listed["cache"] == str(released_cache)
    assert [(m["repo_id"], m["short_name"], m["size_bytes"], m["cached"], m["default"]) for m in listed["available"]] == [
        (RELEASED[0], "4b", 10_400_000_000, False, True), (RELEASED[1], "4b-thinking", 10_400_000_000, True, False),
        (RELEASED[2], "8b", 18_000_000_000, False, False), (RELEASED[3], "8b-thinking", 18_000_000_000, False, False)]
    chosen = json.loads(run("models", "--available", "--json", env={"MOSS_MODEL": "8b-thinking"}).stdout)
    assert [m["default"] for m in chosen["available"]] == [False, False, False, True]


def test_models_available_and_all_are_one_or_the_other(hub_cache):
    result = runner.invoke(app, ["models", "--available", "--all"])
    assert result.exit_code == 2 and result.stderr == (
        "moss: error: --available lists the released checkpoints, --all the cache: give one\n")


def test_doctor_says_whether_speaker_labels_are_installed(hub_cache, monkeypatch):
    import importlib.util

    assert "speaker labels (--speakers): installed (resemblyzer)" in run("doctor", "-m", TINY_REPO).stdout
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "webrtcvad" else found(name, *a))
    report = json.loads(run("doctor", "-m", TINY_REPO, "--json").stdout)  # not a failure: an optional part
    assert report["speakers"] == "not installed (webrtcvad missing): pip install 'moss-cli[speakers]'"
    assert report["ok"] is True
