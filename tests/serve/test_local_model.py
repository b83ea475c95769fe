"""moss serve on the local engine (a tiny random checkpoint: garbage words, but valid answers in every
shape), several uploads at once sharing the model's batches."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import srt
from support.serving import Serving

from moss_cli.engine.base import DecodingOptions
from moss_cli.engine.factory import EngineSpec
from moss_cli.serve.admission import upload_root
from moss_cli.serve.http import ServeSettings
from moss_cli.serve.work import Worker


@pytest.fixture(scope="module")
def local(tiny_checkpoint):
    worker = Worker(EngineSpec(str(tiny_checkpoint), device="cpu", batch_size=2),
                    DecodingOptions(max_new_tokens=12), token_cap=12)
    worker.start()
    with Serving(worker, ServeSettings(max_concurrency=2)) as serving:
        yield serving
    worker.close()


@pytest.fixture(scope="module")
def client(local):
    return openai.OpenAI(base_url=local.url + "/v1", api_key="unused", max_retries=0)


def test_every_format_from_the_local_model(client, wav_file):
    with open(wav_file, "rb") as audio:
        data = audio.read()
    verbose = client.audio.transcriptions.create(file=("clip.wav", data), model="moss", response_format="verbose_json",
                                                 timestamp_granularities=["word"])
    assert verbose.duration == 5.0 and verbose.text == " ".join(s.text for s in verbose.segments)
    for segment in verbose.segments:
        assert 0 <= segment.start <= segment.end <= 5.0
    plain = client.audio.transcriptions.create(file=("clip.wav", data), model="moss")
    assert isinstance(plain.text, str)
    cues = list(srt.parse(client.audio.transcriptions.create(file=("clip.wav", data), model="moss",
                                                             response_format="srt")))
    assert all(0 <= c.start.total_seconds() <= c.end.total_seconds() <= 5.0 for c in cues)
    events = list(client.audio.transcriptions.create(file=("clip.wav", data), model="moss", stream=True))
    assert events[-1].type == "transcript.text.done"
    assert events[-1].text == "".join(e.delta for e in events[:-1])


def test_uploads_at_once_share_the_model(client, wav_file, local):
    data = wav_file.read_bytes()

    def one(_):
        return client.audio.transcriptions.create(file=("clip.wav", data), model="moss", response_format="verbose_json")

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    # Each its own answer, whole: which requests shared a batch depends on timing, and a random tiny
    # model's near-ties may then tip either way, so the texts are not compared with each other.
    for result in results:
        assert result.duration == 5.0 and result.text == " ".join(s.text for s in result.segments)
        assert all(0 <= s.start <= s.end <= 5.0 for s in result.segments)
    deadline = time.monotonic() + 30
    while local.slots.admitted or list(upload_root().iterdir()):
        assert time.monotonic() < deadline, "uploads left behind"
        time.sleep(0.02)


def test_the_models_route_names_the_checkpoint(client, tiny_checkpoint):
    assert [m.id for m in client.models.list()] == [str(tiny_checkpoint)]  # as the CLI's JSON names the model
