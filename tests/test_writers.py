import html
import io
import json
from pathlib import Path

import pytest
import srt
import webvtt

from moss_cli.results import Event, Result, Segment, Word
from moss_cli.subtitles import CueLayout, cues_for, format_timestamp
from moss_cli.writers import get_writer

GOLDEN = Path(__file__).parent / "golden"


def transcript() -> Result:
    words = [Word("Guten", 61.2, 61.5), Word("Tag,", 61.5, 61.9), Word("„Welt“!", 62.0, 62.6)]
    return Result("transcribe", "talk.wav", 3725.5, "moss-test", segments=[
        Segment(0.0, 2.01, "hello there", id=0),
        Segment(2.01, 9.6, "the weather is nice today and it will stay like this for the rest of the week, "
                "they say on the radio", id=1),
        Segment(61.2, 62.6, "Guten Tag, „Welt“!", words=words, id=2),
        Segment(3600.0, 3725.5, "一个小时以后的中文句子没有空格但是很长很长很长很长很长很长很长很长很长很长很长很长很长很长", id=3,
                estimated=True),
    ], text="hello there the weather ...")


def events() -> Result:
    return Result("events", "street.wav", 30.0, "moss-test", events=[
        Event(0.0, 12.5, "traffic noise --> rising"), Event(3.25, 4.0, "a dog barks twice"),
    ], text="0.00 - 12.50: traffic noise")


def render(result, extension, layout=CueLayout()):
    buffer = io.StringIO()
    get_writer(extension, layout).write(result, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name,make,extension", [
    ("transcript", transcript, "srt"), ("transcript", transcript, "vtt"), ("transcript", transcript, "json"),
    ("transcript", transcript, "tsv"), ("transcript", transcript, "txt"),
    ("events", events, "srt"), ("events", events, "vtt"), ("events", events, "tsv"), ("events", events, "json"),
])
def test_against_golden_files(name, make, extension):
    assert render(make(), extension) == (GOLDEN / f"{name}.{extension}").read_text(encoding="utf-8")


def test_srt_reparses_and_keeps_the_layout():
    cues = list(srt.parse(render(transcript(), "srt")))
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    for cue in cues:
        lines = cue.content.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert (cue.end - cue.start).total_seconds() <= 7.0
        assert cue.end > cue.start
    starts = [c.start for c in cues]
    assert starts == sorted(starts)
    assert cues[-1].end.total_seconds() == 3725.5


def test_vtt_reparses_with_webvtt():
    captions = webvtt.from_buffer(io.StringIO(render(transcript(), "vtt"))).captions
    assert captions[0].start == "00:00:00.000" and captions[0].end == "00:00:02.010"
    assert captions[-1].end == "01:02:05.500"
    events_vtt = webvtt.from_buffer(io.StringIO(render(events(), "vtt"))).captions
    assert len(events_vtt) == 2
    assert html.unescape(events_vtt[0].text) == "traffic noise --> rising"  # markup escaped, text intact


def test_text_is_preserved_across_cues():
    cues = cues_for(transcript(), CueLayout())
    joined = "".join(c.text.replace("\n", "").replace(" ", "") for c in cues)
    original = "".join(s.text.replace(" ", "") for s in transcript().segments)
    assert joined == original


def test_word_cues_one_per_word():
    result = transcript()
    cues = cues_for(result, CueLayout(word_cues=True))
    word_cues = [c for c in cues if 61 <= c.start_ms / 1000 <= 63]
    assert [(c.start_ms, c.end_ms, c.text) for c in word_cues] == [
        (61200, 61500, "Guten"), (61500, 61900, "Tag,"), (62000, 62600, "„Welt“!")]


def test_layout_options():
    narrow = cues_for(transcript(), CueLayout(max_line_chars=20, max_lines=1, max_seconds=3))
    assert all(len(c.text) <= 20 and "\n" not in c.text for c in narrow)


def test_json_is_utf8_not_escaped():
    data = json.loads(render(transcript(), "json"))
    assert set(data) >= {"text", "duration", "model", "segments"}
    assert data["segments"][2]["words"][0] == {"word": "Guten", "start": 61.2, "end": 61.5}
    assert "„Welt“" in render(transcript(), "json")


def test_timestamps_from_integer_milliseconds():
    assert format_timestamp(3_725_500) == "01:02:05,500"
    assert format_timestamp(59_999, ".") == "00:00:59.999"
