import html
import io
import json
from pathlib import Path

import pytest
import srt
import webvtt

from moss_cli.output.subtitles import CueLayout, cues_for, format_timestamp
from moss_cli.output.writers import get_writer
from moss_cli.results import Event, Result, Segment, Word
from moss_cli.text import join_words

GOLDEN = Path(__file__).parents[1] / "golden"


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


def timed_words(start: float, text: str, seconds_per_char: float = 0.06, gap: float = 0.05) -> list[Word]:
    """Words spoken one after another from `start`, each lasting by its length."""
    words, now = [], start
    for word in text.split():
        length = 0.1 + seconds_per_char * len(word)
        words.append(Word(word, round(now, 3), round(now + length, 3)))
        now += length + gap
    return words


def word_segments(*sentences: tuple[float, str], seconds_per_char: float = 0.06) -> list[Segment]:
    """Sentences spoken one after another, each after a pause of the given length."""
    segments, now = [], 0.0
    for index, (pause, text) in enumerate(sentences):
        words = timed_words(now + pause, text, seconds_per_char)
        segments.append(Segment(words[0].start, words[-1].end, join_words([w.word for w in words]), words, id=index))
        now = words[-1].end
    return segments


def words() -> Result:
    """`transcribe --words`: a reply, a sentence with a comma, one too long for a cue, a quick answer."""
    segments = word_segments(
        (0.5, "Okay."),
        (0.3, "So we went to the market yesterday, and the bread there was fresh & warm."),
        (1.0, "When we finally arrived at the station after a long walk through the rain the last train "
              "had already left <again> and nobody could tell us why it had gone early."),
        (0.8, "Really?"), (0.2, "Yes."))
    return Result("transcribe", "words.wav", 20.0, "moss-test", text=join_words([s.text for s in segments]),
                  segments=segments)


def chinese() -> Result:
    """Sentences without word times: characters share the time; brackets and full-width punctuation."""
    return Result("transcribe", "zh.wav", 30.0, "moss-test", segments=[
        Segment(0.4, 9.0, "他说：「今天天气很好，我们一起去公园散步吧。」大家都同意了，于是我们出发了。", id=0),
        Segment(9.3, 10.0, "好的！", id=1),
        Segment(11.0, 16.5, "我用 Python 写了一个小程序（很简单），可以自动生成字幕。", id=2),
    ])


def chinese_words() -> Result:
    segments = word_segments(
        (0.4, "今天 天气 很好 ， 我们 一起 去 公园 散步 吧 。"),
        (0.5, "大家 都 说 这个 城市 的 变化 非常 快 ， 人们 互相 帮助 ， 生活 越来越 方便 了 。"),
        seconds_per_char=0.2)
    return Result("transcribe", "zh-words.wav", 12.0, "moss-test", segments=segments)


def japanese() -> Result:
    return Result("transcribe", "ja.wav", 20.0, "moss-test", segments=[
        Segment(0.5, 8.0, "「ちょっとコーヒーを飲みに行きませんか？」と彼女は言った。きょうはとてもいいてんきですね。", id=0),
    ])


def korean_words() -> Result:
    segments = word_segments((0.5, "안녕하세요 여러분 , 오늘은 날씨가 정말 좋아서 우리는 공원에 산책을 가기로 했습니다 ."),
                             seconds_per_char=0.15)
    return Result("transcribe", "ko.wav", 12.0, "moss-test", segments=segments)


WORDS = CueLayout(words=True)
CASES = {  # golden file stem: (result, layout, formats)
    "transcript": (transcript, CueLayout(), ["srt", "vtt", "ass", "json", "tsv", "txt"]),
    "events": (events, CueLayout(), ["srt", "vtt", "ass", "tsv", "json", "txt"]),
    "words": (words, WORDS, ["srt", "vtt", "ass", "json", "tsv"]),
    "words.highlight": (words, CueLayout(words=True, highlight_words=True), ["srt", "vtt"]),
    "zh": (chinese, CueLayout(), ["srt", "vtt", "ass"]),
    "zh-words": (chinese_words, WORDS, ["srt", "vtt", "ass"]),
    "ja": (japanese, CueLayout(), ["srt", "vtt"]),
    "ko-words": (korean_words, WORDS, ["srt", "vtt"]),
}


def render(result, extension, layout=CueLayout()):
    buffer = io.StringIO()
    get_writer(extension, layout).write(result, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name,extension", [(name, ext) for name, (_, _, formats) in CASES.items() for ext in formats])
def test_against_golden_files(name, extension):
    make, layout, _ = CASES[name]
    assert render(make(), extension, layout) == (GOLDEN / f"{name}.{extension}").read_text(encoding="utf-8")


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
    assert captions[0].start == "00:00:00.000" and captions[0].end == "00:00:01.944"  # 66 ms before the next
    assert captions[-1].end == "01:02:05.500"
    events_vtt = webvtt.from_buffer(io.StringIO(render(events(), "vtt"))).captions
    assert len(events_vtt) == 2
    assert html.unescape(events_vtt[0].text) == "traffic noise --> rising"  # markup escaped, text intact


def test_text_is_preserved_across_cues():
    cues = cues_for(transcript(), CueLayout())
    joined = "".join(c.text.replace("\n", "").replace(" ", "") for c in cues)
    original = "".join(s.text.replace(" ", "") for s in transcript().segments)
    assert joined == original


def test_word_cues_are_lines_with_each_word_timed():
    result = words()
    cues = cues_for(result, WORDS)
    assert cues[0].text == "Okay. So we went to the market yesterday,\nand the bread there was fresh & warm."
    vtt = render(result, "vtt", WORDS)
    assert "fresh <00:00:06.330>&amp; <00:00:06.540>warm." in vtt  # escaped, and still timed
    assert "<00:00:16.100>&lt;again&gt;" in vtt
    captions = webvtt.from_buffer(io.StringIO(vtt)).captions
    assert [html.unescape(c.text) for c in captions] == [c.text for c in cues]


def test_highlight_words_underlines_each_word_in_turn():
    cues = list(srt.parse(render(words(), "srt", CueLayout(words=True, highlight_words=True))))
    spoken = [w for s in words().segments for w in s.words]
    assert len(cues) == len(spoken)
    for cue, word in zip(cues, spoken):
        assert cue.content.count("<u>") == 1 and f"<u>{word.word}</u>" in cue.content
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))


def test_ass_reads_back_with_pysubs2():
    import pysubs2

    for layout in (CueLayout(), WORDS):
        subs = pysubs2.SSAFile.from_string(render(words(), "ass", layout))
        cues = cues_for(words(), layout)
        assert [e.plaintext for e in subs.events] == [c.text for c in cues]
        assert [(e.start, e.end) for e in subs.events] == [(round(c.start_ms, -1), round(c.end_ms, -1)) for c in cues]
        assert all(("\\k" in e.text) == layout.words for e in subs.events)


def test_layout_options():
    narrow = cues_for(transcript(), CueLayout(max_line_width=20, max_lines=1, max_seconds=3))
    assert all(len(c.text) <= 20 and "\n" not in c.text for c in narrow)


def test_json_is_utf8_not_escaped():
    data = json.loads(render(transcript(), "json"))
    assert set(data) >= {"text", "duration", "model", "segments"}
    assert data["segments"][2]["words"][0] == {"word": "Guten", "start": 61.2, "end": 61.5}
    assert "„Welt“" in render(transcript(), "json")


def test_timestamps_from_integer_milliseconds():
    assert format_timestamp(3_725_500) == "01:02:05,500"
    assert format_timestamp(59_999, ".") == "00:00:59.999"


@pytest.mark.parametrize("extension", ["json", "jsonl", "answers"])
def test_json_outputs_are_valid_json_whatever_numbers_they_hold(extension):
    """NaN and infinities (a model's JSON answer, or a bug) are written as null: strict parsers read it."""
    result = Result("caption", "a.wav", 2.0, "m", text="x", question="q",
                    voice={"pitch": float("nan"), "range": [float("inf"), -float("inf"), 1.5], "ok": {"n": 2}})
    out = io.StringIO()
    get_writer(extension).write(result, out)

    def strict(name):
        raise ValueError(f"{name} is not JSON")

    record = json.loads(out.getvalue(), parse_constant=strict)
    if extension != "answers":
        assert record["voice"] == {"pitch": None, "range": [None, None, 1.5], "ok": {"n": 2}}
