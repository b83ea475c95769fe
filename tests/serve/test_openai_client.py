"""POST /v1/audio/transcriptions as the official openai client calls it, every response format and
streaming, on the stand-in server (which answers with the phrases it hears, at their true times);
the other task routes return what `moss <task> --json` writes."""

from __future__ import annotations

import json

import openai
import pytest
import srt
import webvtt
from support.conversations import best_mapping_accuracy, two_voice_dialogue
from support.fake_server import phrase_file
from support.serving import Serving
from typer.testing import CliRunner

from moss_cli.cli.app import app


@pytest.fixture
def recording(tmp_path):
    return phrase_file(tmp_path / "talk.wav", 16.0, seed=3)


@pytest.fixture
def client(serving):
    return openai.OpenAI(base_url=serving.url + "/v1", api_key="unused", max_retries=0)


def transcribe(client, path, **fields):
    with open(path, "rb") as audio:
        return client.audio.transcriptions.create(file=audio, model="whisper-1", **fields)


def cli_json(fake, path, *args) -> dict:
    """What `moss <args> --json` writes for the same file on the same upstream."""
    result = CliRunner().invoke(app, [*args, str(path), "--json", "--server", fake.url, "-q"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_is_the_transcript(client, recording):
    path, truth = recording
    result = transcribe(client, path)
    assert result.text == " ".join(f"phrase {p.index}." for p in truth)
    assert result.usage.seconds == 16.0


def test_text_srt_and_vtt_are_what_the_cli_writes(client, recording, fake):
    path, truth = recording
    text = transcribe(client, path, response_format="text")
    assert text.splitlines() == [f"phrase {p.index}." for p in truth]
    cues = list(srt.parse(transcribe(client, path, response_format="srt")))
    assert [c.content for c in cues] == [f"phrase {p.index}." for p in truth]
    for cue, phrase in zip(cues, truth):
        assert abs(cue.start.total_seconds() - phrase.start) < 0.02 and abs(cue.end.total_seconds() - phrase.end) < 0.02
    vtt = transcribe(client, path, response_format="vtt")
    assert [c.text for c in webvtt.from_string(vtt)] == [f"phrase {p.index}." for p in truth]
    written = CliRunner().invoke(app, ["transcribe", str(path), "--vtt", "--server", fake.url, "-q"])
    assert written.stdout == vtt


def test_verbose_json_has_segments_and_words_when_asked(client, recording):
    path, truth = recording
    plain = transcribe(client, path, response_format="verbose_json")
    assert [s.text for s in plain.segments] == [f"phrase {p.index}." for p in truth] and plain.words is None
    assert [s.id for s in plain.segments] == list(range(len(truth))) and plain.duration == 16.0
    worded = transcribe(client, path, response_format="verbose_json", timestamp_granularities=["word"],
                        language="en")
    assert worded.language == "en"
    assert [w.word for w in worded.words] == [f"w{p.index}{k}" for p in truth for k in "abc"]
    starts = [w.start for w in worded.words]
    assert starts == sorted(starts) and all(w.start < w.end for w in worded.words)
    assert abs(worded.words[0].start - truth[0].start) < 0.02 and abs(worded.words[-1].end - truth[-1].end) < 0.02


def test_language_and_prompt_reach_the_model(client, recording, fake):
    path, _ = recording
    transcribe(client, path, language="de", prompt="A talk about\nKubernetes")
    asked = fake.fake.requests[-1]["text"]
    assert "German" in asked and "Kubernetes" in asked


def test_stream_sends_a_delta_per_segment_then_the_text(client, recording):
    path, truth = recording
    with open(path, "rb") as audio:
        events = list(client.audio.transcriptions.create(file=audio, model="whisper-1", stream=True))
    deltas, done = events[:-1], events[-1]
    assert [e.type for e in deltas] == ["transcript.text.delta"] * len(truth)
    assert done.type == "transcript.text.done" and done.text == "".join(e.delta for e in deltas)
    assert done.text == transcribe(client, path).text
    assert [round(e.start, 1) for e in deltas] == [round(p.start, 1) for p in truth]


def test_diarized_json_labels_the_speakers(fake, remote_worker, tmp_path):
    path, conv = two_voice_dialogue(tmp_path, 8)
    with Serving(remote_worker) as serving:
        client = openai.OpenAI(base_url=serving.url + "/v1", api_key="unused", max_retries=0)
        result = transcribe(client, path, response_format="diarized_json", extra_body={"speakers": "2"})
    assert [s.text for s in result.segments] == [f"phrase {i}." for i in range(len(conv.turns))]
    labels = [s.speaker for s in result.segments]
    assert best_mapping_accuracy(labels, [t.voice for t in conv.turns]) >= 0.8


def test_models_and_health(client, serving):
    assert [m.id for m in client.models.list()] == ["moss-fake"]
    import httpx2

    assert httpx2.get(serving.url + "/health").json()["status"] == "ok"


@pytest.mark.parametrize("task", ["events", "caption", "describe-music"])
def test_task_routes_return_the_cli_json(serving, fake, recording, task):
    import httpx2

    path, _ = recording
    with open(path, "rb") as audio:
        reply = httpx2.post(f"{serving.url}/v1/audio/{task}", files={"file": ("talk.wav", audio, "audio/wav")},
                            timeout=30)
    assert reply.status_code == 200, reply.text
    served = reply.json()
    expected = cli_json(fake, path, task)
    assert served["audio"] == "talk.wav" and expected["audio"] == str(path)
    assert {**served, "audio": None} == {**expected, "audio": None}


def test_ask_route_answers_each_question(serving, fake, recording):
    import httpx2

    path, truth = recording
    with open(path, "rb") as audio:
        reply = httpx2.post(f"{serving.url}/v1/audio/ask", files={"file": ("talk.wav", audio)},
                            data={"question": ["Who speaks?", "What is said?"]}, timeout=30)
    answers = reply.json()
    assert [a["question"] for a in answers] == ["Who speaks?", "What is said?"]
    heard = "heard " + ",".join(str(p.index) for p in truth)  # the stand-in server names what it hears
    assert all(a["answer"] == heard for a in answers) and answers[0]["audio"] == "talk.wav"


def test_an_api_key_is_required_when_set(remote_worker, recording):
    from moss_cli.serve.http import ServeSettings

    path, _ = recording
    with Serving(remote_worker, ServeSettings(api_key="s3cret")) as serving:
        wrong = openai.OpenAI(base_url=serving.url + "/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            transcribe(wrong, path)
        assert refused.value.body["code"] == "invalid_api_key"
        right = openai.OpenAI(base_url=serving.url + "/v1", api_key="s3cret", max_retries=0)
        assert transcribe(right, path).text.startswith("phrase 0.")


def test_the_upload_page_and_its_report(serving, recording):
    import httpx2

    page = httpx2.get(serving.url + "/")
    assert page.status_code == 200 and 'type="file"' in page.text and "/report" in page.text
    path, _ = recording
    with open(path, "rb") as audio:
        report = httpx2.post(serving.url + "/report", files={"file": ("talk.wav", audio)}, data={"task": "transcribe"},
                             timeout=30)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "phrase 0." in report.text and "talk.wav" in report.text and "data:audio/" in report.text


def test_docs_describe_each_route_s_form(serving):
    import httpx2

    paths = httpx2.get(serving.url + "/openapi.json").json()["paths"]
    form = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and {"response_format", "timestamp_granularities[]", "stream"} <= set(
        form["properties"])
    asked = paths["/v1/audio/ask"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "question" in asked["properties"]
