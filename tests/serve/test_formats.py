"""OpenAI's response shapes made from a Result: pure functions, no server."""

from __future__ import annotations

from moss_cli.results import ChunkResult, Result, Segment, Word
from moss_cli.serve.formats import Deltas, diarized, transcript_body, verbose
from moss_cli.text import join_words


def result(*texts: str, speakers=None) -> Result:
    segments = [Segment(i * 2.0, i * 2.0 + 1.5004, text, [Word(text, i * 2.0, i * 2.0 + 1.5004)], id=i,
                        speaker=(speakers or [None] * len(texts))[i]) for i, text in enumerate(texts)]
    return Result("transcribe", "a.wav", 9.0, "m", text=join_words(list(texts)), segments=segments)


def test_deltas_add_up_to_the_text_in_spaced_and_unspaced_scripts():
    for texts in (["Hello there.", "How are you?"], ["你好。", "今天天气很好。", "Yes."], ["こんにちは", "世界"]):
        deltas = Deltas()
        events = [e for text in texts for e in deltas.events(ChunkResult(0, 1, segments=[Segment(0, 1, text)]))]
        assert "".join(e["delta"] for e in events) == join_words(texts)
        assert [e["segment_id"] for e in events] == [f"seg_{i}" for i in range(len(texts))]


def test_verbose_json_words_only_when_asked_and_times_in_milliseconds():
    body = verbose(result("one", "two"), "en", words=False)
    assert "words" not in body and body["segments"][0]["end"] == 1.5 and body["language"] == "en"
    assert set(body["segments"][0]) >= {"id", "seek", "start", "end", "text", "tokens", "temperature",
                                        "avg_logprob", "compression_ratio", "no_speech_prob"}
    assert [w["word"] for w in verbose(result("one", "two"), None, words=True)["words"]] == ["one", "two"]


def test_diarized_segments_carry_their_speakers():
    body = diarized(result("hi", "hello", speakers=["S1", "S2"]))
    assert [(s["id"], s["speaker"], s["type"]) for s in body["segments"]] == [
        ("seg_0", "S1", "transcript.text.segment"), ("seg_1", "S2", "transcript.text.segment")]


def test_json_is_the_text_and_text_is_the_cli_txt():
    assert transcript_body(result("one", "two"), "json", None, False)["text"] == "one two"
    assert transcript_body(result("one", "two"), "text", None, False) == "one\ntwo\n"
