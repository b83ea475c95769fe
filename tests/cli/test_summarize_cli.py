"""`moss summarize` through the stand-in server: the batch rules of the other commands (folders, -o,
--all, manifests, --skip-existing, --errors, a bad file among good ones, JSON Lines on stdout), the
transcript reused from -o only when it is of the same recording, and a hostile digest repaired."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from support.fake_server import FakeMoss, FakeServer, completion, phrase_file, request_parts
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.timeref import seconds_of

runner = CliRunner()
OUTPUTS = ("md", "digest.json", "chapters.vtt", "ffmetadata", "chapters.txt", "html")


DIGEST_PROMPTS: list[str] = []


def hostile_digest(n: int, body: dict, headers: dict):
    """The digest request answered from the transcript lines in its prompt: chapters a second after every
    third sentence (not on a sentence start), out of order, one past the end, one without a time."""
    _, text = request_parts(body)
    if "Write a digest" not in text:
        return None  # transcripts and notes: the stand-in server's own answers, per window
    DIGEST_PROMPTS.append(text)
    starts = [seconds_of(clock) for clock in re.findall(r"^\[([\d:]+)\] phrase", text, re.MULTILINE)]
    chapters = [{"start": f"{int(s + 1) // 60}:{int(s + 1) % 60:02d}", "title": f"part {i}", "gist": "g"}
                for i, s in enumerate(starts[::3])]
    chapters = chapters[::-1] + [{"start": "59:00", "title": "past the end"}, {"title": "no time"}]
    digest = {"kind": "meeting", "short_summary": "Short.", "summary": "Long.", "chapters": chapters,
              "key_points": ["k"], "action_items": [{"who": "Ann", "what": "call", "when": "0:05"}],
              "decisions": ["d"]}
    return 200, completion("Sure! Here it is:\n```json\n" + json.dumps(digest) + "\n```")


@pytest.fixture
def server():
    DIGEST_PROMPTS.clear()
    with FakeServer(FakeMoss(override=hostile_digest)) as running:
        yield running


def summarize(server, *args, code=0):
    result = runner.invoke(app, ["summarize", *map(str, args), "--server", server.url, "--min-chapter-seconds", "5"])
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.output
    return result


def recordings(folder, lengths=(40.0, 55.0)):
    folder.mkdir(parents=True, exist_ok=True)
    return [phrase_file(folder / f"r{i}.wav", length, seed=i) for i, length in enumerate(lengths)]


def kinds_asked(server) -> list[str]:
    kinds = []
    for request in server.fake.requests:
        text = request["text"]
        kinds.append("transcript" if "sentence-level" in text else "notes" if "take notes" in text
                     else "digest" if "Write a digest" in text else "other")
    return kinds


def test_a_folder_with_a_bad_file_every_output_and_skip_existing(server, tmp_path):
    (first, truth), (second, _) = recordings(tmp_path / "in")
    (tmp_path / "in" / "bad.wav").write_text("not audio\n" * 30)
    out, errors = tmp_path / "out", tmp_path / "errors.jsonl"
    result = summarize(server, tmp_path / "in", "--all", "-o", out, "--errors", errors, code=1)
    assert [json.loads(line)["input"] for line in errors.read_text().splitlines()] == [str(tmp_path / "in" / "bad.wav")]
    for stem in ("r0", "r1"):
        for extension in OUTPUTS:
            assert (out / f"{stem}.{extension}").is_file() and (out / f".{stem}.{extension}.moss.json").is_file()
    assert (out / "index.html").is_file()
    assert "past the end" in result.stderr and "out of order" in result.stderr  # repaired, said
    data = json.loads((out / "r0.digest.json").read_text())
    chapters = data["digest"]["chapters"]
    assert chapters[0]["start"] == 0.0 and len(chapters) >= 2
    for chapter in chapters[1:]:  # snapped to a sentence's start (as the transcript has it), not a second after
        assert min(abs(chapter["start"] - p.start) for p in truth) <= 0.006
    assert all(b["start"] - a["start"] >= 5 for a, b in zip(chapters, chapters[1:]))
    assert chapters[-1]["end"] == data["duration"] and "past the end" not in json.dumps(chapters)
    assert (out / "r0.chapters.txt").read_text().splitlines()[0] == "00:00 " + chapters[0]["title"]
    asked = len(server.fake.requests)
    again = summarize(server, tmp_path / "in", "--all", "-o", out, "--skip-existing", code=1)  # bad.wav fails again
    assert len(server.fake.requests) == asked and "skipped" in again.stderr
    summarize(server, first, "--all", "-o", out, "--skip-existing", "--kind", "lecture")  # another kind: made again
    assert len(server.fake.requests) > asked
    assert json.loads((out / "r0.digest.json").read_text())["digest"]["kind"] == "lecture"


def test_several_recordings_on_stdout(server, tmp_path):
    (first, _), (second, _) = recordings(tmp_path / "in")
    lines = [json.loads(line) for line in summarize(server, first, second, "--json", "-q").stdout.splitlines()]
    assert [line["audio"] for line in lines] == [str(first), str(second)]
    assert all(line["task"] == "summarize" and line["digest"]["chapters"] for line in lines)
    markdown = summarize(server, first, second, "-q").stdout
    assert markdown.count("==> ") == 2 and markdown.count("\n## Chapters\n") == 2
    assert summarize(server, first, second, "--chapters-vtt", code=2).stderr.count("\n") == 1  # needs -o


def test_the_transcript_from_o_is_reused_only_for_the_same_recording(server, tmp_path):
    (first, _), (second, _) = recordings(tmp_path / "in")
    out = tmp_path / "out"
    made = runner.invoke(app, ["transcribe", str(first), "--json", "-o", str(out), "-q", "--server", server.url])
    assert made.exit_code == 0, made.stderr
    server.fake.requests.clear()
    summarize(server, first, "-o", out, "--json", "-q")
    assert "transcript" not in kinds_asked(server) and "notes" in kinds_asked(server)
    assert (out / "r0.json").read_text().count('"task": "transcribe"') == 1  # left as it was
    # r0's transcript and manifest under r1's name: not r1's content, so r1 is transcribed itself
    shutil.copy(out / "r0.json", out / "r1.json")
    shutil.copy(out / ".r0.json.moss.json", out / ".r1.json.moss.json")
    server.fake.requests.clear()
    summarize(server, second, "-o", out, "--json", "-q", "--overwrite")
    assert "transcript" in kinds_asked(server)
    assert "phrase 0." in DIGEST_PROMPTS[-1]


def test_a_translated_transcript_is_reused_in_its_original_words(tmp_path):
    """transcribe --translate fr --json -o DIR keeps each sentence's original beside its translation:
    summarize reads the recording's own words from it, as it would have transcribed them."""
    from support.translator import good_answer, is_translation_request

    def translating(n, body, headers):
        _, text = request_parts(body)
        return (200, completion(good_answer(text))) if is_translation_request(text) else hostile_digest(n, body, headers)

    (first, _), = recordings(tmp_path / "in", lengths=(40.0,))
    out = tmp_path / "out"
    DIGEST_PROMPTS.clear()
    with FakeServer(FakeMoss(override=translating)) as running:
        made = runner.invoke(app, ["transcribe", str(first), "--json", "--translate", "fr", "-o", str(out), "-q",
                                   "--server", running.url])
        assert made.exit_code == 0, made.stderr
        assert "«PHRASE 0.»" in (out / "r0.json").read_text()
        running.fake.requests.clear()
        summarize(running, first, "-o", out, "--json", "-q")
        assert "transcript" not in kinds_asked(running)
    assert "] phrase 0." in DIGEST_PROMPTS[-1] and "«" not in DIGEST_PROMPTS[-1]


def test_usage_errors_are_one_line(server, tmp_path):
    (first, _), = recordings(tmp_path / "in", (20.0,))
    for args in (["--language", "not a language at all"], ["--kind", "sermon"], ["--min-chapter-seconds", "-1"],
                 ["--context", "  "]):
        result = runner.invoke(app, ["summarize", str(first), *args, "--server", server.url])
        assert result.exit_code == 2 and "Traceback" not in result.output, args
    assert server.fake.requests == []


def test_the_local_engine_on_a_tiny_checkpoint_gives_valid_outputs(tiny_checkpoint, wav_file, tmp_path):
    """A random model writes no digest: its text is kept as the summary, with a warning, and every
    output is still written and valid."""
    result = runner.invoke(app, ["summarize", str(wav_file), "-m", str(tiny_checkpoint), "--max-new-tokens", "12",
                                 "-q", "--all", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    data = json.loads((tmp_path / "out" / "clip.digest.json").read_text())
    assert data["task"] == "summarize" and data["digest"]["chapters"] == []
    assert any("not the JSON" in warning for warning in data["warnings"])
    assert (tmp_path / "out" / "clip.chapters.vtt").read_text() == "WEBVTT\n\n"
    assert (tmp_path / "out" / "clip.ffmetadata").read_text().startswith(";FFMETADATA1\ntitle=clip\n")
