"""`moss summarize --speakers/--voices` through the stand-in server: the transcript behind the digest
labelled (the digest request hears who said what), each speaker's voice profile and each sentence's
emotion and tone in the digest's JSON, as a lane on its page and a Voices section in its Markdown,
described as `transcribe --voices` describes them; a transcript reused from -o only when its speakers
were found as asked now."""

from __future__ import annotations

import json
import re

import pytest
from support.conversations import two_voice_dialogue
from support.fake_server import FakeServer, completion, request_parts
from test_speakers_cli import captions_of_what_is_heard
from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()
PROFILE = {"gender", "age", "accent", "pitch", "speed", "emotion", "tone"}
SCRIPTED: list[str] = []  # the prompts of the requests answered by the script


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory):
    return two_voice_dialogue(tmp_path_factory.mktemp("talk"), 12)


def digest_naming_speakers(number: int, body: dict, headers: dict):
    """The digest answered from its prompt: an action item for the speaker of the last transcript line
    (none when the lines name no speaker); speech captions as the transcribe tests script them."""
    _, text = request_parts(body)
    SCRIPTED.append(text)  # the stand-in lists only the requests it answers itself
    if "Write a digest" not in text:
        return captions_of_what_is_heard(number, body, headers)
    said = re.findall(r"^\[([\d:]+)\] (?:(S\d): )?phrase", text, re.MULTILINE)
    digest = {"kind": "meeting", "short_summary": "Short.", "summary": "Long.",
              "chapters": [{"start": said[0][0], "title": "all", "gist": "g"}], "key_points": [],
              "action_items": [{"who": said[-1][1] or None, "what": "call", "when": said[-1][0]}], "decisions": []}
    return 200, completion(json.dumps(digest))


def summarize(server, *args, code=0):
    result = runner.invoke(app, ["summarize", *map(str, args), "--server", server.url, "-q", "--kind", "meeting",
                                 "--min-chapter-seconds", "5"])
    assert result.exit_code == code, result.stderr
    return result


def asked(server, what: str) -> int:
    return sum(what in text for text in [request["text"] for request in server.fake.requests] + SCRIPTED)


def cleared(server) -> None:
    server.fake.requests.clear()
    SCRIPTED.clear()


def test_voices_in_the_json_the_page_and_the_markdown(dialogue, tmp_path):
    path, conv = dialogue
    with FakeServer() as server:
        server.fake.override = digest_naming_speakers
        summarize(server, path, "--speakers", "2", "--voices", "--json", "--html", "--md", "-o", tmp_path)
    output = json.loads((tmp_path / "dialogue.digest.json").read_text())
    voices = output["voices"]
    assert set(voices["speakers"]) == {"S1", "S2"}
    assert all(set(profile) == PROFILE for profile in voices["speakers"].values())
    timeline = voices["timeline"]
    assert len(timeline) == len(conv.turns) and {t["speaker"] for t in timeline} == {"S1", "S2"}
    for entry in timeline:  # each sentence's own mood, its speaker the one whose profile heard it
        sentence = entry["emotion"].split()[1]
        assert entry["tone"] == f"tone {sentence}"
        assert sentence in voices["speakers"][entry["speaker"]]["emotion"].split()[1:]
    last = timeline[-1]
    assert output["digest"]["action_items"][0]["who"] == last["speaker"]  # the digest heard who said it
    page = (tmp_path / "dialogue.html").read_text()
    assert page.count('data-kind="mood-box"') == len(timeline)
    markdown = (tmp_path / "dialogue.md").read_text()
    section = markdown.split("## Voices\n\n", 1)[1].splitlines()
    assert [line.split("**")[1] for line in section] == list(voices["speakers"])
    profile = voices["speakers"]["S1"]
    assert section[0] == "- **S1**: " + "; ".join(f"{key}: {profile[key]}" for key in profile)


def test_voices_alone_find_the_speakers_and_nothing_without(dialogue):
    path, _ = dialogue
    with FakeServer() as server:
        server.fake.override = digest_naming_speakers
        voiced = json.loads(summarize(server, path, "--voices", "--json").stdout)
        plain = summarize(server, path, "--json").stdout
        markdown = summarize(server, path).stdout
    assert set(voiced["voices"]["speakers"]) == {"S1", "S2"}
    assert "voices" not in json.loads(plain) and json.loads(plain)["digest"]["action_items"][0]["who"] is None
    assert "## Voices" not in markdown


def test_a_reused_transcript_must_have_its_speakers_found_as_asked(dialogue, tmp_path):
    path, conv = dialogue
    with FakeServer() as server:
        server.fake.override = digest_naming_speakers
        made = runner.invoke(app, ["transcribe", str(path), "--speakers", "2", "--json", "-o", str(tmp_path),
                                   "--server", server.url, "-q"])
        assert made.exit_code == 0, made.stderr
        cleared(server)
        summarize(server, path, "--speakers", "2", "--voices", "--json", "-o", tmp_path)
        assert asked(server, "sentence-level") == 0  # reused: its labels are those asked
        assert asked(server, "vocal characteristics") == 2 + len(conv.turns)  # profiles and moods all the same
        reused = json.loads((tmp_path / "dialogue.digest.json").read_text())
        assert set(reused["voices"]["speakers"]) == {"S1", "S2"}
        cleared(server)
        summarize(server, path, "--speakers", "3", "--json", "--overwrite", "-o", tmp_path)
        assert asked(server, "sentence-level") > 0  # asked otherwise: transcribed anew
        assert asked(server, "vocal characteristics") == 0
