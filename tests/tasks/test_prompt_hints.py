"""--language, --context and --hotwords: the prompt sent is the official one, then the hint sentences."""

import json

import pytest
from support.fake_server import FakeServer, phrase_file
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.tasks.specs import CAPTION_PROMPT, SENTENCE_PROMPT, WORD_PROMPT

runner = CliRunner()
CHINESE = "The speech is in Chinese: write the transcript in Chinese, in simplified Chinese characters."
TERMS = "Names and terms that may occur, spelled as they should be written: Kubernetes, Jane Doe, etcd."


def run(*args, code=0):
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == code, result.stderr
    return result


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    return phrase_file(tmp_path_factory.mktemp("hints") / "rec.wav", 20.0, seed=3)


@pytest.fixture
def sent_prompts(monkeypatch):
    """The prompt ids each local request decodes from: a spy on the engine's call into generation."""
    from moss_cli.engine.local import engine

    prompts = []
    original = engine.decode_continuously  # the rows every local request goes through

    def spy(model, stop_ids, width, pull, finished):
        def pulled(count):
            jobs = pull(count)
            prompts.extend(job.prompt.input_ids for _, job in jobs)
            return jobs

        return original(model, stop_ids, width, pulled, finished)

    monkeypatch.setattr(engine, "decode_continuously", spy)
    return prompts


def question_ids(tokenizer_folder, question: str) -> list[int]:
    """What the official layout puts after the audio span for `question`, tokenized by the checkpoint."""
    from moss_cli.engine.prompts import PromptBuilder
    from moss_cli.model.loading import load_tokenizer

    return PromptBuilder(load_tokenizer(tokenizer_folder)).question_suffix(question).input_ids


def after_audio(ids: list[int]) -> list[int]:
    from moss_cli.engine.prompts import AUDIO_END_ID

    return ids[ids.index(AUDIO_END_ID) + 1 :]


@pytest.mark.parametrize("words, official", [([], SENTENCE_PROMPT), (["--words"], WORD_PROMPT)])
def test_local_prompt_is_the_official_one_then_the_hint(wav_file, tiny_checkpoint, sent_prompts, words, official):
    run("transcribe", wav_file, *words, "--language", "zh", "--context", "A talk about cluster operations.",
        "--hotwords", "Kubernetes, Jane Doe", "--hotwords", "etcd", "-m", tiny_checkpoint, "--max-new-tokens", 4, "-q")
    hint = f"{CHINESE} Context: A talk about cluster operations. {TERMS}"
    assert sent_prompts and all(after_audio(ids) == question_ids(tiny_checkpoint, f"{official} {hint}")
                                for ids in sent_prompts)


def test_server_gets_the_official_prompt_then_the_hint_and_its_times_are_parsed(phrases):
    path, truth = phrases
    with FakeServer() as server:
        result = run("transcribe", path, "--json", "--language", "Chinese", "--hotwords", "Kubernetes,Jane Doe,etcd",
                     "--server", server.url, "-q")
        texts = [request["text"] for request in server.fake.requests]
    assert texts and set(texts) == {f"{SENTENCE_PROMPT} {CHINESE} {TERMS}"}
    segments = json.loads(result.stdout)["segments"]  # the hint leaves the timestamped format parseable
    assert [s["text"] for s in segments] == [f"phrase {p.index}." for p in truth]
    assert all(abs(s["start"] - p.start) <= 0.006 for s, p in zip(segments, truth))


def test_caption_context_and_a_custom_prompt_get_the_hint_too(wav_file):
    with FakeServer() as server:
        run("caption", wav_file, "--context", "a cello  rehearsal\n(Bach)", "--server", server.url, "-q")
        run("transcribe", wav_file, "--prompt", "Transcribe the audio.", "--language", "de", "--server", server.url, "-q")
        texts = [request["text"] for request in server.fake.requests]
    german = "The speech is in German: write the transcript in German, in Latin script."
    assert texts == [f"{CAPTION_PROMPT} Context: a cello rehearsal (Bach).", f"Transcribe the audio. {german}"]


def test_a_changed_hint_redoes_skipped_outputs(phrases, tmp_path):
    path, _ = phrases
    with FakeServer() as server:
        def transcribe(*hint):
            run("transcribe", path, "--srt", "-o", tmp_path, "--skip-existing", *hint, "--server", server.url, "-q")
            return len(server.fake.requests)

        first = transcribe("--context", "a meeting")
        assert first > 0
        assert transcribe("--context", "a meeting") == first  # same hint: the output is up to date
        assert transcribe("--context", "a board meeting") > first  # the prompt changed: redone
    manifest = json.loads((tmp_path / ".rec.srt.moss.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["prompt"] == f"{SENTENCE_PROMPT} Context: a board meeting."


@pytest.mark.parametrize("value", ["xx", "qaa", "not-a-language"])
def test_an_unknown_language_is_a_one_line_usage_error(wav_file, value):
    result = runner.invoke(app, ["transcribe", str(wav_file), "--language", value])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and repr(value) in result.stderr and "ISO 639" in result.stderr


def test_hints_need_a_prompt_without_its_own_audio_span(wav_file):
    own = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>Hi<|im_end|>\n<|im_start|>assistant\n"
    result = runner.invoke(app, ["transcribe", str(wav_file), "--prompt", own, "--hotwords", "A"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "audio span" in result.stderr
