"""Our WebVTT read by a browser's own parser: headless Chromium loads each file as a <track> and
reports every cue it parsed (times, text, inline timestamps). Skipped where Chromium is absent."""

import io
import re

import pytest
from support.chromium import CHROMIUM, parse_in_chromium
from support.transcripts import chinese_words, english_words, sentence_result, word_result

from moss_cli.output.subtitles import CueLayout, cues_for, word_marks
from moss_cli.output.writers import get_writer
from moss_cli.results import Result, Segment

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def render(result, layout):
    buffer = io.StringIO()
    get_writer("vtt", layout).write(result, buffer)
    return buffer.getvalue()


def test_chromium_reads_every_cue_and_word_time(tmp_path):
    english = word_result(english_words(600.0, 11), 600.0)
    chinese = word_result(chinese_words(600.0, 12), 600.0)
    cases = {  # file: (result, layout)
        "en-words.vtt": (english, CueLayout(words=True)),
        "en-sentences.vtt": (sentence_result(english_words(600.0, 11), 600.0), CueLayout()),
        "zh-words.vtt": (chinese, CueLayout(words=True)),
        "en-highlight.vtt": (english, CueLayout(words=True, highlight_words=True)),
        "markup.vtt": (Result("transcribe", "m.wav", 10.0, "m", segments=[
            Segment(0.0, 3.0, "a --> b & <c> d"), Segment(4.0, 6.0, "WEBVTT NOTE")]), CueLayout()),
    }
    parsed = parse_in_chromium({name: render(*case) for name, case in cases.items()}, tmp_path)
    for name, (result, layout) in cases.items():
        browser = parsed[name]
        if layout.highlight_words:
            assert len(browser) == sum(len(s.words) for s in result.segments), name
            continue
        cues = cues_for(result, layout)
        assert len(browser) == len(cues), name
        for seen, cue in zip(browser, cues):
            assert round(seen["start"] * 1000) == cue.start_ms and round(seen["end"] * 1000) == cue.end_ms
            assert re.sub(r"<[^>]*>", "", seen["text"]) == cue.text.replace("&", "&amp;").replace("<", "&lt;") \
                .replace(">", "&gt;")
            marks = [m for m in word_marks(cue) if m is not None]
            assert len(seen["marks"]) == len(marks), (name, seen)  # each inline time parsed as a timestamp
