"""Every bad request is a 4xx with an OpenAI-style JSON error naming the problem, never a traceback,
and leaves nothing behind in the upload folder."""

from __future__ import annotations

import httpx2
import numpy as np
import pytest
import soundfile as sf
from support.fake_server import phrase_file
from support.paths import REPO
from support.serving import Serving

from moss_cli.engine.factory import EngineSpec
from moss_cli.serve.admission import upload_root
from moss_cli.serve.http import ServeSettings
from moss_cli.serve.work import Worker

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A server taking uploads up to 64 KiB and audio up to 5 s, on a stand-in upstream."""
    from support.fake_server import FakeServer

    with FakeServer() as upstream:
        worker = Worker(EngineSpec(servers=[upstream.url], timeout=30), max_audio_seconds=5.0)
        with Serving(worker, ServeSettings(max_upload_bytes=LIMIT)) as serving:
            yield serving


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> bytes:
    path, _ = phrase_file(tmp_path_factory.mktemp("a") / "a.wav", 1.5, gaps=(0.1, 0.2))
    return path.read_bytes()


def post(serving, files=None, data=None, route="/v1/audio/transcriptions", **kwargs):
    return httpx2.post(serving.url + route, files=files, data=data, timeout=30, **kwargs)


def assert_error(reply, status: int, code: str, words: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and words in error["message"] and error["type"]
    assert "Traceback" not in reply.text


def test_a_good_upload_passes(strict, wav):
    assert post(strict, {"file": ("a.wav", wav)}).status_code == 200


@pytest.mark.parametrize("content, code, words", [
    (b"this is not audio at all, just words" * 10, "invalid_audio", "clip.wav: "),
    (b"", "empty_file", "empty"),
])
def test_not_audio_and_empty(strict, content, code, words):
    assert_error(post(strict, {"file": ("clip.wav", content)}), 400, code, words)


def test_truncated_files(strict, wav):
    assert_error(post(strict, {"file": ("head.wav", wav[:44])}), 400, "invalid_audio", "head.wav")
    mp3 = (REPO / "tests" / "data" / "stereo44k.mp3").read_bytes()
    assert_error(post(strict, {"file": ("cut.mp3", mp3[:300])}), 400, "invalid_audio", "cut.mp3")


def test_over_the_size_limit(strict, wav):
    big = wav * (LIMIT // len(wav) + 2)
    assert_error(post(strict, {"file": ("big.wav", big)}), 413, "file_too_large", str(LIMIT))


def test_over_the_size_limit_without_a_length(strict, wav):
    """A chunked upload says no length beforehand: it is cut off as it arrives."""
    boundary = "moss-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(LIMIT // len(wav) + 2):
            yield wav
        yield f"\r\n--{boundary}--\r\n".encode()

    reply = post(strict, content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(reply, 413, "file_too_large", "larger")


def test_over_the_audio_length_limit(strict, tmp_path):
    path = tmp_path / "long.flac"  # 6 s of silence: a small upload, too long
    sf.write(path, np.zeros(6 * 16_000, np.float32), 16_000)
    assert_error(post(strict, {"file": ("long.flac", path.read_bytes())}), 400, "audio_too_long", "at most 5 s")


@pytest.mark.parametrize("files, data, code, words", [
    ({"audio": ("a.wav", b"RIFF")}, None, "unknown_field", "'audio'"),
    (None, {"model": "whisper-1"}, "invalid_content_type", "multipart"),
    ({"model": (None, "whisper-1")}, None, "missing_file", "named 'file'"),
    ({"file": (None, "talk.wav")}, None, "missing_file", "not a file"),
    ({"file": ("a.wav", None)}, {"langauge": "en"}, "unknown_field", "'langauge'"),
    ({"file": ("a.wav", None)}, {"response_format": "docx"}, "invalid_response_format", "'docx'"),
    ({"file": ("a.wav", None)}, {"temperature": "hot"}, "invalid_value", "temperature"),
    ({"file": ("a.wav", None)}, {"language": "xx-nonsense-1"}, "invalid_value", "xx-nonsense-1"),
    ({"file": ("a.wav", None)}, {"response_format": "diarized_json", "stream": "true"}, "unsupported_stream", "stream"),
])
def test_wrong_fields(strict, wav, files, data, code, words):
    if files and files.get("file", (None, 1))[1] is None:
        files = {"file": ("a.wav", wav)}
    assert_error(post(strict, files, data), 400, code, words)


def test_a_field_only_for_the_form(strict, wav):
    reply = post(strict, {"file": ("a.wav", wav)}, route="/v1/audio/caption", data={"timestamp_granularities[]": "word"})
    assert_error(reply, 400, "unknown_field", "timestamp_granularities")


@pytest.mark.parametrize("route, data, code", [
    ("/v1/audio/ask", {}, "missing_question"),
    ("/v1/audio/ask", {"question": "  "}, "missing_question"),
    ("/v1/audio/ask", {"question": "Who?", "response_format": "text"}, "invalid_response_format"),
    ("/v1/audio/events", {"response_format": "srt"}, "invalid_response_format"),
])
def test_task_routes_check_their_fields_first(strict, wav, route, data, code):
    assert_error(post(strict, {"file": ("a.wav", wav)}, data, route=route), 400, code, "")


def test_a_malformed_body(strict):
    reply = post(strict, content=b"--x\r\nnot a part header\r\n", headers={"Content-Type": "multipart/form-data"})
    assert_error(reply, 400, "invalid_form", "form")


def test_unknown_routes_and_methods(strict):
    assert_error(httpx2.get(strict.url + "/v1/nothing"), 404, "not_found", "Not Found")
    assert_error(httpx2.get(strict.url + "/v1/audio/transcriptions"), 405, "method_not_allowed", "Not Allowed")


def test_nothing_is_left_behind(strict, wav):
    for content in (b"", b"junk" * 100, wav[:44], wav):
        post(strict, {"file": ("x.wav", content)})
    assert list(upload_root().iterdir()) == [] and strict.slots.admitted == 0


def test_bad_audio_is_a_4xx_when_streaming_too(strict):
    """The stream starts once the audio is open: a file that is not audio is still a plain 400."""
    reply = post(strict, {"file": ("clip.wav", b"not audio" * 50)}, data={"stream": "true"})
    assert_error(reply, 400, "invalid_audio", "clip.wav")
    assert reply.headers["content-type"].startswith("application/json")
