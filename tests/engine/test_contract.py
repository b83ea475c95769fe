"""The engine contract (engine/base.py Engine): both backends meet all of it, and one rule tells a
Thinking checkpoint by its name, whether the name is a hub id, a folder or a Hugging Face cache snapshot."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from support.fake_server import FakeMoss, FakeServer

from moss_cli.engine.base import DecodingOptions, Engine, Request, is_thinking_checkpoint
from moss_cli.engine.factory import EngineSpec, open_engine

CONTRACT = {"name", "parallelism", "thinking", "max_request_seconds", "where", "ask", "ask_many", "ask_questions",
            "ask_text", "counts", "close"}
SNAPSHOT = "models--OpenMOSS-Team--MOSS-Audio-4B-Thinking/snapshots/" + "0123456789abcdef" * 2 + "01234567"
AUDIO = (0.01 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
SHORT = DecodingOptions(max_new_tokens=2)


def test_the_contract_names_every_member_the_pipeline_and_the_cli_use():
    members = {name for name in vars(Engine) if not name.startswith("_")} | set(Engine.__annotations__)
    assert members == CONTRACT


def answers_every_question(engine):
    """Every request kind of the contract answered, in order and as many as asked."""
    assert engine.ask(AUDIO, "Describe the audio.", SHORT).finish_reason in {"stop", "length", "repetition"}
    assert len(engine.ask_many([Request(AUDIO, "One?", SHORT), Request(AUDIO, "Two?", SHORT)])) == 2
    assert len(engine.ask_questions(AUDIO, ["One?", "Two?", "Three?"], SHORT)) == 3
    assert engine.ask_text("Combine: a, b.", SHORT).raw_text is not None


def test_the_local_engine_meets_the_contract(tiny_engine):
    assert isinstance(tiny_engine, Engine)
    assert tiny_engine.parallelism == 1 and tiny_engine.thinking is False  # moss-tiny: no Thinking in its name
    assert tiny_engine.max_request_seconds is None  # any length fits one request here
    assert tiny_engine.where == "cpu in float32"
    assert tiny_engine.counts() is None
    answers_every_question(tiny_engine)


def test_a_remote_engine_meets_the_contract_and_counts_several_servers():
    with FakeServer() as one, FakeServer() as two:
        engine = open_engine(EngineSpec(servers=[f"{one.url},{two.url}"], jobs=2))
        assert isinstance(engine, Engine)
        assert engine.name == "moss-fake" and engine.parallelism == 2 and engine.thinking is False
        assert engine.max_request_seconds is None and engine.where is None  # nothing said yet; a server's device
        answers_every_question(engine)
        assert engine.counts().startswith("requests answered: ")
        engine.close()
        engine.close()  # safe twice
        single = open_engine(EngineSpec(servers=[one.url]))
        assert single.counts() is None  # one server answered everything: nothing to report
        single.close()


def test_closing_the_local_engine_lets_the_model_go(tiny_checkpoint):
    engine = open_engine(EngineSpec(str(tiny_checkpoint), device="cpu", batch_size=1))
    engine.close()
    engine.close()
    assert engine.model is None and engine.where == "cpu in float32"  # still says where it ran


@pytest.mark.parametrize("name,thinking", [
    ("OpenMOSS-Team/MOSS-Audio-4B-Thinking", True),
    ("OpenMOSS-Team/MOSS-Audio-4B-Instruct", False),
    ("/models/MOSS-Audio-8B-Thinking", True),
    ("/models/MOSS-Audio-8B-Thinking/", True),
    ("C:\\models\\moss-audio-thinking", True),
    ("/data/ckpt-7", False),
    ("/hf/hub/" + SNAPSHOT, True),
    ("/hf/hub/" + SNAPSHOT.replace("Thinking", "Instruct"), False),
    ("/hf/hub/models--OpenMOSS-Team--MOSS-Audio-4B-Thinking", True),
    ("/thinking-runs/models--OpenMOSS-Team--MOSS-Audio-4B-Instruct/snapshots/" + "a" * 40, False),  # the repo says
    ("", False),
])
def test_one_rule_tells_a_thinking_checkpoint(name, thinking):
    assert is_thinking_checkpoint(name) is thinking


@pytest.fixture
def thinking_snapshot(tmp_path, tiny_checkpoint, monkeypatch):
    """The tiny checkpoint as the hub cache holds a Thinking one: a snapshot folder and its ref."""
    hub = tmp_path / "hub"
    snapshot = hub / SNAPSHOT
    shutil.copytree(tiny_checkpoint, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(snapshot.name)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))  # read at each download; the variable only at import
    return snapshot


def test_a_local_model_in_a_cache_snapshot_is_told_thinking_as_a_server_would_be(thinking_snapshot):
    by_path = open_engine(EngineSpec(str(thinking_snapshot), device="cpu", batch_size=1))
    by_hub_id = open_engine(EngineSpec("OpenMOSS-Team/MOSS-Audio-4B-Thinking", device="cpu", batch_size=1))
    told = open_engine(EngineSpec(str(thinking_snapshot), device="cpu", batch_size=1, thinking=False))
    assert by_path.thinking is True and by_hub_id.thinking is True
    assert told.thinking is False  # --no-thinking wins over the name
    fake = FakeMoss(models=[{"id": "moss", "object": "model", "owned_by": "vllm", "root": str(thinking_snapshot)}])
    with FakeServer(fake) as server:
        assert open_engine(EngineSpec(servers=[server.url])).thinking is True  # the same rule, remote
