"""The factory: a spec picks its backend, is checked before any work, and a missing checkpoint is
reported without torch imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.fake_server import FakeServer

from moss_cli.engine.factory import (
    BACKENDS,
    EngineSpec,
    backend_name,
    loads_weights,
    open_engine,
    recorded_settings,
    redact_url,
    validated,
)
from moss_cli.errors import EngineOptionsError, ModelUnavailableError


def test_servers_pick_the_remote_backend_and_none_the_local_one(tiny_checkpoint):
    from moss_cli.engine.local.engine import MossAudio
    from moss_cli.engine.remote.engine import RemoteEngine

    assert set(BACKENDS) == {"local", "remote"}
    local, remote = EngineSpec(str(tiny_checkpoint), device="cpu", batch_size=1), EngineSpec(servers=["x"])
    assert (backend_name(local), loads_weights(local)) == ("local", True)
    assert (backend_name(remote), loads_weights(remote)) == ("remote", False)
    assert backend_name(EngineSpec(servers=[])) == "local"  # --server given empty: the local model
    assert isinstance(open_engine(local), MossAudio)
    with FakeServer() as server:
        engine = open_engine(EngineSpec(servers=[f" {server.url} , {server.url}"], jobs=3))
        assert isinstance(engine, RemoteEngine)
        assert engine.config.urls == [server.url] and engine.config.concurrency == 3  # listed once, tidied


def test_the_spec_is_checked_before_any_work():
    def refused(**fields):
        with pytest.raises(EngineOptionsError) as error:
            validated(EngineSpec(**fields), fields.pop("prompts", ()))
        return str(error.value)

    assert refused(timeout=float("inf")).startswith("--timeout: need a finite number")
    assert refused(max_request_seconds=float("nan")).startswith("--max-request-seconds: need a finite")
    assert refused(quantize="int4") == "--quantize 'int4': only int8 is supported"
    assert refused(quantize="int8", servers=["http://h/v1"]).startswith("--quantize applies to the local model")
    assert refused(servers=["ftp://u:secret@h/v1"]) == ("--server 'ftp://***@h/v1': need an http:// or https:// URL "
                                                        "with a host, like http://localhost:8000/v1")  # no password
    assert refused(servers=["http://h/v1"], api_key="bad key").startswith("--api-key (or MOSS_API_KEY)")
    with pytest.raises(EngineOptionsError, match="needs the local engine"):
        validated(EngineSpec(servers=["http://h/v1"]), ["<|audio_bos|><|AUDIO|><|audio_eos|> Who?"])
    spec = validated(EngineSpec(servers=["http://h/v1"], api_key=" key\r\n"))
    assert spec.api_key == "key" and spec.servers == ("http://h/v1",)
    assert validated(EngineSpec(servers=None, api_key=" kept ")).servers == ()  # a local run never sends a key


def test_manifests_record_what_shapes_answers_and_no_secret():
    local = recorded_settings(EngineSpec("m", device="cuda", api_key="k", retries=1, threads=2))
    assert local == {"model": "m", "dtype": "auto", "time_markers": True, "server_model": None, "thinking": None,
                     "max_request_seconds": None, "quantize": None}
    remote = recorded_settings(validated(EngineSpec("m", servers=["http://u:pw@b/v1,http://a/v1"],
                                                    time_markers=False)))
    assert "dtype" not in remote and remote["server"] == ["http://***@b/v1", "http://a/v1"]
    assert remote["request"] == {"mm_processor_kwargs": {"enable_time_marker": False}}
    assert redact_url("http://u:pw@b/v1") == "http://***@b/v1"


CHECK = """
import json, sys
from moss_cli.engine.factory import EngineSpec, check_available, validated
outcome = {}
for model in sys.argv[1:]:
    try:
        check_available(validated(EngineSpec(model)))
        outcome[model] = "ok"
    except Exception as exc:
        outcome[model] = type(exc).__name__ + ": " + str(exc)
check_available(validated(EngineSpec(servers=["http://127.0.0.1:9/v1"])))  # a server run: nothing to find
print(json.dumps({"outcome": outcome, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_a_missing_checkpoint_is_reported_without_importing_torch(tmp_path, tiny_checkpoint):
    missing = tmp_path / "no-such-checkpoint"
    done = subprocess.run([sys.executable, "-c", CHECK, str(missing), str(tiny_checkpoint)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["torch"] == []  # the model's imports wait for open_engine
    assert report["outcome"][str(tiny_checkpoint)] == "ok"
    assert report["outcome"][str(missing)].startswith(f"{ModelUnavailableError.__name__}: model '{missing}'")


def test_the_python_api_still_gives_the_local_engine():
    import moss_cli
    from moss_cli.engine.local.engine import EncodedClip, MossAudio

    assert moss_cli.MossAudio is MossAudio and moss_cli.EncodedClip is EncodedClip


@pytest.mark.parametrize("url", ["http://[::1/v1", "http://u:secret@[::1/v1", "http://[::1]:x/v1", "http://[zz]/v1"])
def test_a_malformed_server_url_is_a_usage_error_that_names_it_redacted(url):
    # urlsplit raises ValueError for these; naming the URL in the message must not raise it again.
    with pytest.raises(EngineOptionsError, match="need an http") as error:
        validated(EngineSpec(servers=[url]))
    assert "secret" not in str(error.value)
    assert "secret" not in redact_url(url)
