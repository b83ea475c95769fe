"""The remote engine at scale, against stand-in servers on 127.0.0.1: streamed answers and loops,
request-size limits, time markers, Thinking checkpoints, several servers (one dying), shards,
and the prompt check."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
import srt
from support.fake_server import FakeMoss, FakeServer, phrase_file
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.engine.loops import trim_loop

runner = CliRunner()
TOLERANCE = 0.006


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("scale") / "two.wav", 120.0, seed=3)


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("scale") / "ten.wav", 600.0, seed=1)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    from moss_cli.engine.remote import http as http_client

    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", 0.01)  # retries still happen, without seconds of waiting


def moss(*args, code=0, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result


def chat_requests(fake: FakeMoss) -> list[dict]:
    return [r["body"] for r in fake.requests]


def assert_complete(subtitles: str, truth):
    cues = list(srt.parse(subtitles))
    assert [c.content for c in cues] == [f"phrase {p.index}." for p in truth]
    for cue, phrase in zip(cues, truth):
        assert abs(cue.start.total_seconds() - phrase.start) <= TOLERANCE


def repeats_a_phrase(text: str) -> bool:
    return trim_loop(text) != text or re.search(r"(.{3,}?)\s*(?:\1\s*){2,}", text) is not None


# ---- 1. loops stopped early, remotely ----------------------------------------------------------------
@pytest.mark.parametrize("loop", ["la la la ", "[3.00]And so on.[4.00]", "\n0.00 - 1.00: a dog barks"])
def test_a_looping_server_is_cut_off_early_and_no_loop_reaches_the_output(two_minutes, loop):
    path, _ = two_minutes
    fake = FakeMoss(loop=loop)
    with FakeServer(fake) as server:
        result = moss("transcribe", path, "--srt", "--server", server.url)
    assert all(body["stream"] for body in chat_requests(fake))
    assert len(fake.tokens_sent) > 4 and sum(fake.tokens_sent) / len(fake.tokens_sent) <= 150  # of the 300 allowed
    texts = [cue.content for cue in srt.parse(result.stdout)]
    assert texts and not any(repeats_a_phrase(text) for text in texts)
    warnings = [line for line in result.stderr.splitlines() if "looped" in line]
    assert warnings and all(re.match(rf"moss: warning: {re.escape(str(path))}: \d+:\d\d-\d+:\d\d: ", w) for w in warnings)


def test_a_loop_with_rising_timestamps_is_cut_off_too(two_minutes):
    path, _ = two_minutes
    fake = FakeMoss(loop="x")  # replaced below: each copy with later times, as models loop

    def rising():
        second = 0
        while True:
            second += 1
            yield from [f"[{second}.00]", "and", " so", " on", f"[{second + 1}.00]"]

    fake._looping = rising
    with FakeServer(fake) as server:
        result = moss("transcribe", path, "--srt", "--server", server.url)
    assert sum(fake.tokens_sent) / len(fake.tokens_sent) <= 150
    assert not any(repeats_a_phrase(c.content) for c in srt.parse(result.stdout))


@pytest.mark.parametrize("command", [["caption"], ["ask", "What is heard?"]])
def test_caption_and_ask_answers_that_loop_are_cut_where_the_loop_began(wav_file, command):
    fake = FakeMoss(loop=" the same words again")
    with FakeServer(fake) as server:
        args = [command[0], wav_file, *command[1:], "--server", server.url]
        result = moss(*args)
    assert fake.tokens_sent[0] <= 150  # the guard needs ~20; the rest is what the server wrote before it saw the hang-up
    assert result.stdout.count("the same words again") == 1
    assert "looped on a repeated phrase; it was cut where the loop began" in result.stderr


# ---- 2. request-size limits --------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["caption"], ["describe-music"], ["ask", "How many people speak?"]])
def test_long_audio_on_a_server_with_a_small_encoder_cache(ten_minutes, command):
    path, truth = ten_minutes
    fake = FakeMoss(max_audio_seconds=160)
    with FakeServer(fake) as server:
        result = moss(command[0], path, *command[1:], "--server", server.url)
    assert fake.rejected == 1  # one refusal teaches the limit for the rest of the run
    audio = [r for r in fake.requests if r["seconds"] is not None]
    assert len(audio) >= 4 and all(r["seconds"] <= 160 for r in audio)
    assert sorted(i for r in audio for i in r["phrases"]) == [p.index for p in truth]  # the whole file heard
    assert fake.requests[-1]["seconds"] is None and result.stdout.strip() == f"combined {len(audio)}"


# vLLM answers a request that does not fit with HTTP 400, or (0.32, streamed) inside a 200 stream
REFUSALS = pytest.mark.parametrize("in_stream", [False, True], ids=["http-400", "in-stream"])


@REFUSALS
def test_a_question_about_a_time_gets_a_window_that_fits(ten_minutes, in_stream):
    path, truth = ten_minutes
    fake = FakeMoss(max_audio_seconds=100, refuses_in_stream=in_stream)
    with FakeServer(fake) as server:
        result = moss("ask", path, "What is said at 7:30?", "--server", server.url)
    window = fake.requests[-1]
    assert fake.rejected == 1 and len(fake.requests) == 1 and window["seconds"] <= 100
    heard = [p for p in truth if p.index in window["phrases"]]
    assert heard and all(390 <= p.start and p.end <= 510 for p in heard)
    assert result.stdout.startswith("heard ")


@REFUSALS
def test_transcription_chunks_are_cut_to_fit_and_nothing_is_lost(two_minutes, in_stream):
    path, truth = two_minutes
    fake = FakeMoss(max_audio_seconds=40, refuses_in_stream=in_stream)
    with FakeServer(fake) as server:
        result = moss("transcribe", path, "--srt", "--jobs", "3", "--server", server.url)
    assert fake.rejected == 1 and all(r["seconds"] <= 40 for r in fake.requests)
    assert_complete(result.stdout, truth)


def test_max_request_seconds_sets_the_limit_up_front(ten_minutes):
    path, truth = ten_minutes
    fake = FakeMoss(max_audio_seconds=160)
    with FakeServer(fake) as server:
        moss("caption", path, "--max-request-seconds", "150", "--server", server.url)
    audio = [r for r in fake.requests if r["seconds"] is not None]
    assert fake.rejected == 0 and all(r["seconds"] <= 150 for r in audio)
    assert sorted(i for r in audio for i in r["phrases"]) == [p.index for p in truth]


# ---- 3. --no-time-markers ----------------------------------------------------------------------------
def test_no_time_markers_is_carried_to_vllm_and_recorded(wav_file, tmp_path):
    fake = FakeMoss()
    with FakeServer(fake) as server:
        moss("caption", wav_file, "--no-time-markers", "--json", "-o", tmp_path, "--server", server.url)
        moss("caption", wav_file, "--server", server.url)
    carried, default = chat_requests(fake)
    assert carried["mm_processor_kwargs"] == {"enable_time_marker": False} and "mm_processor_kwargs" not in default
    manifest = json.loads((tmp_path / ".clip.json.moss.json").read_text())
    assert manifest["settings"]["engine"]["time_markers"] is False
    assert manifest["settings"]["engine"]["request"] == {"mm_processor_kwargs": {"enable_time_marker": False}}


def test_no_time_markers_is_refused_where_it_cannot_be_carried(wav_file):
    sglang = FakeMoss(models=[{"id": "default", "object": "model", "owned_by": "sglang", "root": "/w/MOSS-Audio"}])
    with FakeServer(sglang) as server:
        result = moss("caption", wav_file, "--no-time-markers", "--server", server.url, code=2)
    assert not sglang.requests and "SGLang" in result.stderr and result.stderr.count("\n") == 1
    gated = FakeMoss(override=lambda n, body, headers: (400, {"error": {"message": "mm_processor_kwargs is not allowed"}})
                     if "mm_processor_kwargs" in body else None)
    other = shutil.copy(wav_file, wav_file.with_name("other.wav"))
    with FakeServer(gated) as server:
        result = moss("caption", wav_file, other, "--no-time-markers", "--server", server.url, code=2)
    assert gated.served == 1  # the run ends there: every request would be refused the same way
    assert result.stderr.count("moss: error") == 1 and "--no-time-markers" in result.stderr
    assert "mm_processor_kwargs" in result.stderr


# ---- 4. Thinking checkpoints -------------------------------------------------------------------------
@pytest.mark.parametrize("root,flags,thinking", [
    ("/models/MOSS-Audio-8B-Thinking", [], True),
    ("/hf/hub/models--OpenMOSS-Team--MOSS-Audio-4B-Thinking/snapshots/" + "a" * 40, [], True),
    ("/models/MOSS-Audio-4B-Instruct", [], False),
    ("/models/MOSS-Audio-8B-Thinking", ["--no-thinking"], False),
    ("/data/ckpt-7", ["--thinking"], True),
    ("/models/MOSS-Audio-8B-Thinking", ["--server-model", "moss"], True),
])
def test_thinking_is_told_by_the_served_path_not_the_name(wav_file, root, flags, thinking):
    fake = FakeMoss(models=[{"id": "moss", "object": "model", "owned_by": "vllm", "root": root}])
    with FakeServer(fake) as server:
        moss("caption", wav_file, "--server", server.url, *flags)
    budget = chat_requests(fake)[0]["max_tokens"]
    assert (budget > 1024) is thinking  # a Thinking checkpoint gets 1024 tokens to reason


# ---- 6. several servers ------------------------------------------------------------------------------
def copies(source, folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(source, folder / f"take{i:02d}.wav")
    return folder


def test_two_servers_share_the_requests(two_minutes, tmp_path):
    path, truth = two_minutes
    a, b = FakeMoss(), FakeMoss()
    with FakeServer(a) as first, FakeServer(b) as second:
        result = moss("transcribe", copies(path, tmp_path / "in", 3), "--srt", "-o", tmp_path / "out",
                      env={"MOSS_SERVER": f"{first.url},{second.url}"})
    total = len(a.requests) + len(b.requests)
    assert len(a.requests) >= total / 4 and len(b.requests) >= total / 4
    for out in (tmp_path / "out").glob("*.srt"):
        assert_complete(out.read_text(), truth)
    counts = re.search(r"requests answered: (\S+) (\d+); (\S+) (\d+)", result.stderr)
    assert counts and {counts.group(1), counts.group(3)} == {first.url, second.url}
    assert int(counts.group(2)) + int(counts.group(4)) == total + 1  # and the model list


def test_a_server_dying_mid_run_leaves_every_output_complete(two_minutes, tmp_path):
    path, truth = two_minutes
    steady, doomed = FakeMoss(), FakeMoss(die_after=2)
    with FakeServer(steady) as first, FakeServer(doomed) as second:
        result = moss("transcribe", copies(path, tmp_path / "in", 4), "--srt", "-o", tmp_path / "out", "--jobs", "3",
                      "--server", first.url, "--server", second.url)
        assert second.dead and 2 <= len(doomed.requests) < len(steady.requests)
    outputs = sorted((tmp_path / "out").glob("*.srt"))
    assert len(outputs) == 4
    for out in outputs:
        assert_complete(out.read_text(), truth)
    assert "set aside" in result.stderr


def test_a_server_that_keeps_failing_is_set_aside(wav_file, tmp_path):
    broken = FakeMoss(override=lambda n, body, headers: (500, {"error": {"message": "engine dead"}}))
    good = FakeMoss()
    with FakeServer(broken) as first, FakeServer(good) as second:
        result = moss("caption", copies(wav_file, tmp_path / "in", 6), "--server", first.url, "--server", second.url)
    assert len(good.requests) == 6 and result.stdout.count("heard") == 6
    assert broken.served <= 2 * 5 + 1  # two failures (each tried 5 times), then it is left alone
    assert re.search(rf"{re.escape(first.url)} \d+, 2 failed, set aside 1x", result.stderr)


def test_a_file_fails_only_when_every_server_failed_it(wav_file, tmp_path):
    refuse = lambda n, body, headers: (400, {"error": {"message": "no thanks"}})
    with FakeServer(FakeMoss(override=refuse)) as first, FakeServer(FakeMoss(override=refuse)) as second:
        moss("caption", wav_file, "--server", first.url, "--server", second.url, "--errors",
             tmp_path / "e.jsonl", code=1)
    error = json.loads((tmp_path / "e.jsonl").read_text())["error"]
    assert f"server {first.url}: HTTP 400 no thanks" in error and f"server {second.url}: HTTP 400 no thanks" in error


def test_every_server_gone_ends_the_run(wav_file):
    with FakeServer() as first, FakeServer() as second:
        urls = [first.url, second.url]
    started = time.monotonic()
    result = moss("caption", wav_file, wav_file, "--server", urls[0], "--server", urls[1], code=2)
    assert time.monotonic() - started < 3
    assert result.stderr.count("moss: error") == 1 and all(url in result.stderr for url in urls)


# ---- 7. shards ---------------------------------------------------------------------------------------
def test_shards_are_disjoint_complete_and_the_same_on_every_machine(wav_file, tmp_path):
    tree = tmp_path / "data"
    for folder in ("a", "b/c"):
        copies(wav_file, tree / folder, 5)
    moved = shutil.copytree(tree, tmp_path / "elsewhere" / "mount")  # another machine mounts it elsewhere
    done = []
    with FakeServer() as server:
        for k in (1, 2, 3):
            moss("caption", tree, "--shard", f"{k}/3", "--json", "-o", tmp_path / f"out{k}", "--server", server.url)
            moss("caption", moved, "--shard", f"{k}/3", "--json", "-o", tmp_path / f"again{k}", "--server", server.url)
            made = sorted(p.relative_to(tmp_path / f"out{k}") for p in (tmp_path / f"out{k}").rglob("take*.json"))
            again = sorted(p.relative_to(tmp_path / f"again{k}") for p in (tmp_path / f"again{k}").rglob("take*.json"))
            assert made == again
            done.append(set(made))
    every = {p.relative_to(tree).with_suffix(".json") for p in tree.rglob("*.wav")}
    assert set.union(*done) == every and sum(len(d) for d in done) == len(every)


def test_shard_usage(wav_file):
    for bad in ("0/2", "3/2", "1-2", "x"):
        assert "--shard" in moss("caption", wav_file, "--shard", bad, code=2).stderr
    from moss_cli.batch.inputs import expand_inputs
    from moss_cli.batch.shards import Shard

    [item] = expand_inputs([str(wav_file)]).files
    empty = next(f"{k}/2" for k in (1, 2) if not Shard(k, 2).holds(item))
    assert "holds none of the 1 inputs" in moss("caption", wav_file, "--shard", empty, "--server", "http://127.0.0.1:9/v1").stderr


# ---- 5. check-server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from moss_cli.model.loading import load_tokenizer

    return load_tokenizer(tiny_checkpoint)


def builds(tokenizer, system="You are a helpful assistant.", markers=None):
    """A server's prompt builder: the local one, or one with another system prompt or fixed markers."""
    from support.fake_server import RATE

    from moss_cli.engine.prompts import PromptBuilder, audio_token_count

    def prompt_ids(body, audio):
        wanted = not body.get("mm_processor_kwargs") if markers is None else markers
        builder = PromptBuilder(tokenizer, time_markers=wanted, system_prompt=system)
        question = body["messages"][-1]["content"][1]["text"]
        return builder.audio_question(question, audio_token_count(audio.size * 100 // RATE)).input_ids

    return prompt_ids


@pytest.mark.parametrize("how", [dict(render=True), dict(token_ids=True), dict()])
def test_check_server_matches_a_faithful_server(tiny_checkpoint, tokenizer, how):
    fake = FakeMoss(prompt_ids=builds(tokenizer), **how)
    with FakeServer(fake) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint)
    assert "match" in result.stdout and "differs" not in result.stdout
    assert ("token for token" in result.stdout) is bool(how) and ("in length" in result.stdout) is (not how)


def test_check_server_compute_compares_the_greedy_answers(tiny_checkpoint, tokenizer):
    """The prompt matches, the answer does or not: a stand-in for vLLM's compiled path, which drops DeepStack
    (the real one is caught in tests/engine/test_vllm_real.py, where a vLLM venv is at hand)."""
    from moss_cli import MossAudio
    from moss_cli.engine.base import DecodingOptions
    from moss_cli.engine.remote.check import ANSWER_TOKENS, PROBE_QUESTION, probe_audio

    local = MossAudio.load(str(tiny_checkpoint), device="cpu", dtype="float32")
    ours = local.ask(probe_audio(), PROBE_QUESTION, DecodingOptions(temperature=0, max_new_tokens=ANSWER_TOKENS)).token_ids
    faithful = FakeMoss(prompt_ids=builds(tokenizer), token_ids=True, answer_ids=ours + [151645])  # vLLM counts the stop
    with FakeServer(faithful) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, "--compute")
    assert f"answer: match: the server's greedy answer is the local engine's (cpu in float32), token for token " \
           f"({len(ours)} tokens)" in result.stdout
    assert faithful.requests[-1]["body"]["temperature"] == 0.0
    compiled = FakeMoss(prompt_ids=builds(tokenizer), token_ids=True, answer_ids=ours[:5] + [ours[5] + 1] + ours[6:])
    with FakeServer(compiled) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, "--compute", code=1)
    assert "answer differs: the greedy answers part at token 5" in result.stdout and "--enforce-eager" in result.stdout
    textual = FakeMoss(prompt_ids=builds(tokenizer), token_ids=True)  # says its prompt ids, not its answer's
    with FakeServer(textual) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, "--compute", code=1)
    assert "answer differs: the server's greedy answer is not the local one (compared as text" in result.stdout
    assert "server: 'heard" in result.stdout
    other = FakeMoss(prompt_ids=builds(tokenizer, system="You are MOSS."), token_ids=True, answer_ids=ours)
    with FakeServer(other) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, "--compute", code=1)
    assert "answer: not compared: the prompts differ" in result.stdout


def test_check_server_names_the_first_difference_and_what_to_change(tiny_checkpoint, tokenizer):
    fake = FakeMoss(prompt_ids=builds(tokenizer, system="You are MOSS."), token_ids=True)
    with FakeServer(fake) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, code=1)
    assert re.search(r"differs: the prompts part at token \d+ ", result.stdout)
    assert "the text before the audio" in result.stdout and "chat template" in result.stdout
    deaf = FakeMoss(prompt_ids=builds(tokenizer, markers=True), render=True)  # ignores mm_processor_kwargs
    with FakeServer(deaf) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, "--no-time-markers", code=1)
    assert "inserts time markers although --no-time-markers" in result.stdout
    counted = FakeMoss(prompt_ids=builds(tokenizer, markers=False))  # SGLang-like: a count only
    with FakeServer(counted) as server:
        result = moss("check-server", server.url, "-m", tiny_checkpoint, code=1)
    assert "leaves out the time markers" in result.stdout
    with FakeServer() as server:
        url = server.url
    assert "cannot reach" in moss("check-server", url, "-m", tiny_checkpoint, code=2).stderr
