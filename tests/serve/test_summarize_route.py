"""POST /v1/audio/summarize and the MCP `summarize` tool on the stand-in server, whose digest answer is
scripted from the prompt it is sent: both give what `moss summarize --json` (or its Markdown) gives for
the same file and fields, and bad fields are 4xx JSON errors before any audio is sent upstream."""

from __future__ import annotations

import json
import re

import pytest
from support.fake_server import completion, phrase_file, request_parts
from test_mcp import session_calls, structured
from typer.testing import CliRunner

from moss_cli.cli.app import app

CONTEXT = "Weekly sync of the Zorblax team"


def scripted_digest(n: int, body: dict, headers: dict):
    """The digest request answered from its own prompt: a chapter at every third transcript sentence,
    titled with the kind asked and whether the context reached the prompt."""
    _, text = request_parts(body)
    if "Write a digest" not in text:
        return None  # transcripts and notes: the stand-in server's own answers
    starts = re.findall(r"^\[([\d:]+)\] (?:S\d+: )?phrase", text, re.MULTILINE)
    kind = "meeting" if "action_items" in text and "meeting" in text else "other"
    told = "Zorblax" in text
    chapters = [{"start": clock, "title": f"part {i} {kind} told={told}", "gist": "g"}
                for i, clock in enumerate(starts[::3])]
    digest = {"kind": kind, "short_summary": "Short.", "summary": f"Long, {len(starts)} sentences.",
              "chapters": chapters, "key_points": ["k"],
              "action_items": [{"who": "Ann", "what": "call", "when": starts[-1]}], "decisions": ["d"]}
    return 200, completion(json.dumps(digest))


@pytest.fixture
def recording(tmp_path, fake):
    fake.fake.override = scripted_digest
    return phrase_file(tmp_path / "talk.wav", 40.0, seed=7)


def cli(fake, path, *args) -> str:
    result = CliRunner().invoke(app, ["summarize", str(path), *args, "--server", fake.url, "-q"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def post(serving, path, **fields):
    import httpx2

    with open(path, "rb") as audio:
        return httpx2.post(f"{serving.url}/v1/audio/summarize", files={"file": ("talk.wav", audio, "audio/wav")},
                           data=fields, timeout=60)


def test_the_route_gives_the_cli_json_and_markdown(serving, fake, recording):
    path, truth = recording
    fields = {"kind": "meeting", "min_chapter_seconds": "5", "context": CONTEXT, "language": "en"}
    reply = post(serving, path, **fields)
    assert reply.status_code == 200, reply.text
    served = reply.json()
    args = ["--kind", "meeting", "--min-chapter-seconds", "5", "--context", CONTEXT, "--language", "en"]
    expected = json.loads(cli(fake, path, *args, "--json"))
    assert served["audio"] == "talk.wav" and {**served, "audio": None} == {**expected, "audio": None}
    digest = served["digest"]
    assert digest["kind"] == "meeting" and digest["summary"] == f"Long, {len(truth)} sentences."
    assert [c["title"] for c in digest["chapters"]][0] == "part 0 meeting told=True"  # kind and context asked
    starts = [c["start"] for c in digest["chapters"]]
    assert starts[0] == 0 and starts == sorted(starts)  # the first chapter opens the recording, the others
    assert len(starts) > 1 and all(min(abs(s - p.start) for p in truth) < 0.02 for s in starts[1:])  # on sentences
    text = post(serving, path, response_format="text", **fields)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == cli(fake, path, *args)
    assert "## Action items" in text.text and "**Ann**: call" in text.text


def test_context_falls_back_to_openai_s_prompt_and_defaults_hold(serving, fake, recording):
    path, _ = recording
    served = post(serving, path, prompt=CONTEXT).json()
    assert served["digest"]["chapters"][0]["title"].endswith("told=True")
    assert {**served, "audio": None} == {**json.loads(cli(fake, path, "--context", CONTEXT, "--json")), "audio": None}


@pytest.mark.parametrize(("fields", "code", "said"), [
    ({"kind": "lecturee"}, "invalid_value", "kind 'lecturee'"),
    ({"min_chapter_seconds": "soon"}, "invalid_value", "is not a number"),
    ({"min_chapter_seconds": "-3"}, "invalid_value", "0 or more"),
    ({"language": "Qzxvian"}, "invalid_value", "Qzxvian"),
    ({"response_format": "srt"}, "invalid_response_format", "srt"),
    ({"speakers": "several"}, "invalid_value", "several"),
])
def test_bad_fields_are_400_before_any_work(serving, fake, recording, fields, code, said):
    path, _ = recording
    reply = post(serving, path, **fields)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and said in error["message"], error
    assert fake.fake.requests == []  # refused before any audio went upstream


def test_the_docs_list_summarize_s_fields(serving):
    import httpx2

    paths = httpx2.get(serving.url + "/openapi.json").json()["paths"]
    form = paths["/v1/audio/summarize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"kind", "language", "context", "min_chapter_seconds", "voices"} <= set(form["properties"])


def test_the_mcp_tool_gives_the_cli_json(tmp_path, fake):
    fake.fake.override = scripted_digest
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    path, _ = phrase_file(allowed / "talk.wav", 30.0, seed=8)
    names, (digest, wrong) = session_calls(
        ["--allow", str(allowed), "--server", fake.url],
        [("summarize", {"path": str(path), "kind": "meeting", "min_chapter_seconds": 5, "context": CONTEXT}),
         ("summarize", {"path": str(path), "kind": "sermon"})])
    assert "summarize" in names
    expected = json.loads(cli(fake, path, "--kind", "meeting", "--min-chapter-seconds", "5", "--context", CONTEXT,
                              "--json"))
    assert structured(digest) == expected
    assert wrong.is_error and "kind 'sermon'" in wrong.content[0].text


def test_the_upload_page_offers_summarize_and_its_report_shows_the_digest(serving, recording):
    import httpx2

    assert 'value="summarize"' in httpx2.get(serving.url + "/").text
    path, _ = recording
    with open(path, "rb") as audio:
        report = httpx2.post(serving.url + "/report", files={"file": ("talk.wav", audio)},
                             data={"task": "summarize"}, timeout=60)
    assert report.status_code == 200, report.text
    assert "Long, " in report.text and 'data-kind="chapter' in report.text and "data:audio/" in report.text


def captions_and_digest(n: int, body: dict, headers: dict):
    """Speech captions naming the sentences (by peak) each clip holds; the digest as scripted above."""
    from support.fake_server import phrases_in

    audio, text = request_parts(body)
    if "vocal characteristics" not in text:
        return scripted_digest(n, body, headers)
    said = " ".join(str(p.index) for p in phrases_in(audio))
    return 200, completion(json.dumps({name: f"{name} {said}" for name in
                                       ("gender", "age", "accent", "pitch", "speed", "emotion", "tone")}))


def test_voices_through_the_route_are_the_cli_s(serving, fake, tmp_path):
    from support.conversations import two_voice_dialogue

    path, conv = two_voice_dialogue(tmp_path, 8)
    fake.fake.override = captions_and_digest
    reply = post(serving, path, voices="true", speakers="2", min_chapter_seconds="5")
    assert reply.status_code == 200, reply.text
    served = reply.json()
    expected = json.loads(cli(fake, path, "--voices", "--speakers", "2", "--min-chapter-seconds", "5", "--json"))
    assert {**served, "audio": None} == {**expected, "audio": None}
    assert set(served["voices"]["speakers"]) == {"S1", "S2"} and len(served["voices"]["timeline"]) == len(conv.turns)
