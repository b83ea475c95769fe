"""`moss ask` over several recordings: -Q/--questions, JSON Lines in input order, the batch behaviour of
the other commands (bad files, --errors, --jobs, --shard), and the single form kept as it was."""

import json

import soundfile as sf
from support.corpus import speech
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli import MossAudio
from moss_cli.cli.app import app

runner = CliRunner()


def recordings(folder, seconds=(3.0, 4.0)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, length in enumerate(seconds):
        paths.append(folder / f"r{index}.wav")
        sf.write(paths[-1], speech(length, index), 16_000, subtype="PCM_16")
    return paths


def moss(*args, input=None):
    result = runner.invoke(app, ["ask", *map(str, args)], input=input)
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    return result


def lines(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_tiny_model_several_recordings_bad_file_in_the_middle(tiny_checkpoint, tmp_path, monkeypatch):
    first, second = recordings(tmp_path / "in")
    bad = tmp_path / "in" / "bad.wav"
    bad.write_text("not audio\n" * 30)
    shared = []  # recordings whose questions went through the one-encode, one-prefill path
    real = MossAudio.ask_questions
    monkeypatch.setattr(MossAudio, "ask_questions",
                        lambda self, audio, questions, *a, **k: shared.append(len(questions)) or real(self, audio, questions, *a, **k))
    model = ("-m", tiny_checkpoint, "--max-new-tokens", 6)
    result = moss(first, bad, second, "-Q", "First?", "-Q", "Second?", *model, "--errors", tmp_path / "e.jsonl")
    assert result.exit_code == 1
    records = lines(result)
    assert [(r["audio"], r["question"]) for r in records] == [
        (str(first), "First?"), (str(first), "Second?"), (str(second), "First?"), (str(second), "Second?")]
    assert shared == [2, 2]
    errors = [line for line in result.stderr.splitlines() if line.startswith("moss: error:")]
    assert errors == [f"moss: error: {bad}: not an audio or video file"]
    assert [json.loads(line)["input"] for line in (tmp_path / "e.jsonl").read_text().splitlines()] == [str(bad)]
    assert "2 done, 0 skipped, 1 failed" in result.stderr
    for path, pair in ((first, records[:2]), (second, records[2:])):  # the same answers as the single form
        single = moss(path, "First?", "Second?", "--json", "-q", *model)
        assert single.exit_code == 0 and lines(single) == pair
        assert set(pair[0]) >= {"audio", "question", "answer", "raw_answer", "finish_reason", "model"}


def test_questions_file_stdin_and_one_recording_as_text(tiny_checkpoint, tmp_path):
    (path,) = recordings(tmp_path / "in", (3.0,))
    model = ("-m", tiny_checkpoint, "--max-new-tokens", 5, "-q")
    asked = tmp_path / "questions.txt"
    asked.write_text("# about the call\nFirst?\n\n  Second?  \n", encoding="utf-8")
    old = moss(path, "First?", "Second?", *model)
    from_file = moss(path, "--questions", asked, *model)
    from_stdin = moss(path, "--questions", "-", *model, input="First?\nSecond?\n")
    mixed = moss(path, "-Q", "First?", "--questions", "-", *model, input="Second?\n")
    assert old.exit_code == from_file.exit_code == from_stdin.exit_code == mixed.exit_code == 0
    assert old.stdout == from_file.stdout == from_stdin.stdout == mixed.stdout  # answers, a blank line between
    assert old.stdout.count("\n\n") >= 1 and not old.stdout.startswith("{")


def test_stand_in_server_folder_jobs_shards_and_a_time_past_the_end(tmp_path):
    short, long = recordings(tmp_path / "in", (6.0, 30.0))
    (tmp_path / "in" / "m.wav").write_bytes(b"")  # empty: fails between the two, in sorted order
    with FakeServer() as server:
        result = moss(tmp_path / "in", "-Q", "What is said at 0:20?", "-Q", "Who?", "--server", server.url,
                      "--jobs", 3, "-q")
        parts = [moss(tmp_path / "in", "-Q", "Who?", "--server", server.url, "--shard", f"{k}/2", "-q") for k in (1, 2)]
        whole = moss(tmp_path / "in", "-Q", "Who?", "--server", server.url, "-q")
    assert result.exit_code == 1
    assert [(r["audio"], r["question"]) for r in lines(result)] == [(str(long), "What is said at 0:20?"),
                                                                    (str(long), "Who?")]
    assert all(r["answer"].startswith("heard") for r in lines(result))
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("moss: error:"))
    assert len(errors) == 2 and str(tmp_path / "in" / "m.wav") in errors[0]
    assert errors[1].startswith(f"moss: error: {short}: the question asks about") and "past the end" in errors[1]
    assert sorted(r["audio"] for part in parts for r in lines(part)) == sorted(r["audio"] for r in lines(whole))
    assert len(lines(whole)) == 2


def test_usage_errors(tmp_path):
    (path,) = recordings(tmp_path / "in", (3.0,))
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing\n\n")
    cases = [([path], "needs a question"), ([path, "-Q", "Hi?", "--html"], "--html is for one recording"),
             (["-", "--questions", "-"], "both want stdin"), ([path, "--questions", empty], "no questions"),
             ([path, "--questions", tmp_path / "absent.txt"], "cannot read the questions"),
             ([path, "-Q", "Hi?", "-o", tmp_path / "out"], "only with --html")]
    for args, reason in cases:
        result = moss(*args, "-m", tmp_path / "no-model")
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and reason in result.stderr


def test_an_empty_question_is_a_usage_error_before_anything_runs(tmp_path):
    (clip,) = recordings(tmp_path, (1.0,))
    with FakeServer() as server:
        for args in ([clip, ""], [clip, "Who speaks?", "  "], [clip, "-Q", " "], [clip, clip, "-Q", "Why?", "-Q", ""]):
            result = moss(*args, "--server", server.url)
            assert result.exit_code == 2, args
            assert result.stderr.strip() == 'moss: error: a question is empty: give its words (moss ask FILE "What is said?")'
        assert server.fake.requests == []
