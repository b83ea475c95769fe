"""Subtitle layout and timing: invariants over long transcripts, and each rule on its own."""

import io
import random
import re

import pysubs2
import pytest
import srt
import webvtt
from support.transcripts import chinese_words, english_words, sentence_result, word_result

from moss_cli.output.linebreak import is_sentence, make_atoms
from moss_cli.output.subtitles import CueLayout, cues_for, word_marks, word_steps
from moss_cli.output.writers import get_writer
from moss_cli.results import Event, Result, Segment, Word, seconds_to_ms
from moss_cli.text import NO_BREAK_AFTER, NO_BREAK_BEFORE, display_width, is_unspaced, join_words, split_text

TEN_MINUTES = 600.0
_TIMESTAMP = re.compile(r"<(\d\d):(\d\d):(\d\d)\.(\d{3})>")


def render(result, extension, layout=CueLayout()):
    buffer = io.StringIO()
    get_writer(extension, layout).write(result, buffer)
    return buffer.getvalue()


def assert_rules(result: Result, layout: CueLayout, *, readable: bool = True):
    """Every rule a subtitler checks. `readable`: the speech leaves room for the minimum duration and
    reading speed everywhere, so those hold for every cue; False: a cue may be shorter or faster
    only when it already runs up to the next cue (or the end of the audio); None: neither checked."""
    cues = cues_for(result, layout)
    gap, longest = seconds_to_ms(layout.min_gap_seconds), seconds_to_ms(layout.max_seconds)
    shortest, end_of_audio = seconds_to_ms(layout.min_seconds), seconds_to_ms(result.duration)
    for index, cue in enumerate(cues):
        lines = cue.text.split("\n")
        assert 1 <= len(lines) <= layout.max_lines, cue
        assert all(0 < display_width(line) <= layout.max_line_width for line in lines), cue
        assert not any(is_unspaced(a) and is_unspaced(b) for a, b in re.findall(r"(\S) (\S)", cue.text)), cue
        if readable is not None:  # breaks only a line too narrow for a word and its punctuation forces
            assert not any(line[0] in NO_BREAK_BEFORE for line in lines[1:]), cue
            assert not any(line[-1] in NO_BREAK_AFTER for line in lines[:-1]), cue
        if len(lines) > 1 and readable is not None:  # no line holding a single word, unless it is a sentence
            atoms = [make_atoms(list(line), layout.max_line_width) for line in cue.lines]
            assert all(len(line) > 1 or is_sentence([a for l in atoms for a in l], sum(map(len, atoms[:k])))
                       for k, line in enumerate(atoms)), cue
        duration = cue.end_ms - cue.start_ms
        assert 0 < duration <= longest, cue
        following = cues[index + 1] if index + 1 < len(cues) else None
        assert following is None or following.start_ms >= cue.start_ms, (cue, following)
        if result.task == "events" and following is not None and (following.start_ms < cue.end_ms or
                                                                  following.start_ms - cue.start_ms <= gap):
            continue  # sounds at the same time (or too close to part): their cues overlap or touch
        assert following is None or following.start_ms - cue.end_ms >= gap, (cue, following)
        at_limit = cue.end_ms == (end_of_audio if following is None else following.start_ms - gap)
        fast = layout.max_cps and cue.chars / duration * 1000 > layout.max_cps + 0.01
        if readable is None:
            continue
        if readable:
            assert duration >= shortest and not fast, cue
        else:
            assert (duration >= shortest and not fast) or at_limit or duration == longest, cue
    return cues


def assert_every_word_once(result: Result, cues):
    """Word mode: the cues hold exactly the words, in order, each once."""
    words = [w.word for s in result.segments for w in s.words]
    assert [piece.text for cue in cues for piece in cue.pieces] == words


def assert_text_kept(result: Result, cues):
    """No character lost or added (spaces aside: lines break where they were)."""
    def bare(text):
        return re.sub(r"\s", "", text)

    assert bare("".join(c.text for c in cues)) == bare("".join(s.text for s in result.segments))


# ---- long transcripts: every rule, every word ----------------------------------------------------------
LONG = {
    "english": lambda seed: english_words(TEN_MINUTES, seed),
    "chinese": lambda seed: chinese_words(TEN_MINUTES, seed),
    "chinese-characters": lambda seed: chinese_words(TEN_MINUTES, seed, words=False),
}


@pytest.mark.parametrize("language", LONG)
@pytest.mark.parametrize("seed", [1, 2])
def test_ten_minutes_of_words_keep_every_rule_and_word(language, seed):
    result = word_result(LONG[language](seed), TEN_MINUTES)
    layout = CueLayout(words=True)
    cues = assert_rules(result, layout)
    assert_every_word_once(result, cues)
    assert len(cues) >= len(result.segments) and sum(len(c.pieces) for c in cues) / len(cues) >= 3
    assert [c.start_ms for c in cues] == sorted({c.start_ms for c in cues})  # strictly increasing


@pytest.mark.parametrize("language", LONG)
def test_ten_minutes_of_sentences_keep_every_rule_and_character(language):
    result = sentence_result(LONG[language](3), TEN_MINUTES)
    assert_text_kept(result, assert_rules(result, CueLayout()))


@pytest.mark.parametrize("layout", [
    CueLayout(max_line_width=20, max_lines=1, max_seconds=3.0),
    CueLayout(max_line_width=32, max_lines=3, max_seconds=5.0, min_seconds=1.2, min_gap_seconds=0.2, max_cps=12),
])
@pytest.mark.parametrize("language", ["english", "chinese"])
def test_other_limits_hold_too(layout, language):
    """Tighter limits than the speech allows everywhere: hard rules always, soft ones where there is room."""
    result = word_result(LONG[language](4), TEN_MINUTES)
    assert_every_word_once(result, assert_rules(result, CueLayout(**{**layout.__dict__, "words": True}),
                                                readable=False))
    sentences = sentence_result(LONG[language](4), TEN_MINUTES)
    assert_text_kept(sentences, assert_rules(sentences, layout, readable=False))


def test_fast_speech_without_pauses_keeps_the_hard_rules():
    """30 characters a second, words back to back: cues cannot be slow enough, but stay valid."""
    words, now = [], 0.0
    for index in range(400):
        text = f"word{index % 7}" + ("." if index % 9 == 8 else "")
        words.append(Word(text, now, now + 0.18))
        now += 0.18
    result = word_result(words, now)
    assert_every_word_once(result, assert_rules(result, CueLayout(words=True), readable=False))


def test_ten_minutes_of_word_vtt_reads_back_with_word_times_in_order():
    result = word_result(english_words(TEN_MINUTES, 5), TEN_MINUTES)
    layout = CueLayout(words=True)
    captions = webvtt.from_buffer(io.StringIO(render(result, "vtt", layout))).captions
    cues = cues_for(result, layout)
    assert len(captions) == len(cues)
    spoken = []
    for caption, cue in zip(captions, cues):
        times = [((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms) for h, m, s, ms in _TIMESTAMP.findall(caption.raw_text)]
        start, end = seconds_to_ms(caption.start_in_seconds + caption.start_time.milliseconds / 1000), None
        end = seconds_to_ms(caption.end_in_seconds + caption.end_time.milliseconds / 1000)
        assert times == sorted(set(times)) and all(start < t < end for t in times)
        assert len(times) == len(cue.pieces) - 1  # every word after the first carries its time
        spoken += caption.text.split()
    assert spoken == [w.word for s in result.segments for w in s.words]


ODD_WORDS = ["hello", "world,", "the", "a", "x" * 60, "今天", "，", "「", "」", "。", "안녕", "ちょっと", "ー", "(", ")",
             "e\u0301t\u00e9", "&", "<b>", "-->", "…", "Yes.", ""]


def odd_result(rng: random.Random) -> Result:
    """Awkward input: zero-length and touching words, huge words, lone punctuation, mixed scripts."""
    if rng.random() < 0.3:
        events = [Event(a, a + rng.choice([0, 0.01, 1, 10, 40]), " ".join(rng.choices(ODD_WORDS, k=rng.randint(1, 30))))
                  for a in sorted(rng.uniform(0, 50) for _ in range(rng.randint(0, 8)))]
        return Result("events", "e.wav", 100.0, "m", events=events)
    segments, now = [], rng.uniform(0, 2)
    for _ in range(rng.randint(0, 10)):
        texts = rng.choices(ODD_WORDS, k=rng.randint(1, 25))
        if rng.random() < 0.5:
            words = []
            for text in texts:
                length = rng.choice([0.0, 0.01, 0.05, 0.2, 3.0])
                words.append(Word(text, round(now, 3), round(now + length, 3)))
                now += length + rng.choice([0, 0, 0.02, 0.3, 1.5])
            segments.append(Segment(words[0].start, words[-1].end, join_words([w.word for w in words]), words))
        else:
            length = rng.choice([0.01, 0.5, 8, 30])
            segments.append(Segment(now, now + length, " ".join(texts)))
            now += length + rng.choice([0, 0.05, 2])
    return Result("transcribe", "t.wav", now, "m", segments=segments)


def test_awkward_input_keeps_the_hard_rules():
    """Rules that hold whatever the input: lines, widths, longest cue, gaps, order, text kept, valid files."""
    for seed in range(120):
        rng = random.Random(seed)
        result = odd_result(rng)
        longest = rng.choice([1.0, 3.0, 7.0])
        layout = CueLayout(max_line_width=rng.choice([4, 10, 42]), max_lines=rng.choice([1, 2, 3]),
                           max_seconds=longest, min_seconds=rng.choice([0, min(longest, 0.833)]),
                           min_gap_seconds=rng.choice([0, 0.066, 0.5]), max_cps=rng.choice([0, 5, 20]),
                           words=rng.random() < 0.5, highlight_words=rng.random() < 0.3)
        cues = assert_rules(result, layout, readable=None)
        if result.task == "transcribe":
            assert_text_kept(result, cues)
        list(srt.parse(render(result, "srt", layout)))  # each file reads back
        webvtt.from_buffer(io.StringIO(render(result, "vtt", layout)))
        assert len(pysubs2.SSAFile.from_string(render(result, "ass", layout)).events) == len(cues)


# ---- line breaking -----------------------------------------------------------------------------------
def one_segment(text: str, start=0.0, end=6.0, **layout) -> list[str]:
    result = Result("transcribe", "x.wav", end + 5, "m", segments=[Segment(start, end, text)])
    return [c.text for c in cues_for(result, CueLayout(**layout))]


def test_one_line_when_it_fits():
    assert one_segment("The weather is nice today.") == ["The weather is nice today."]


def test_lines_are_balanced_and_break_after_punctuation():
    text = "I went to the market yesterday, and the bread there was fresh and warm."
    assert one_segment(text) == ["I went to the market yesterday,\nand the bread there was fresh and warm."]


def test_breaks_before_a_conjunction_rather_than_after_an_article():
    text = "We walked all the way back home through the park because nobody had money"
    lines = one_segment(text)[0].split("\n")
    assert lines == ["We walked all the way back home", "through the park because nobody had money"]
    assert not lines[0].endswith(" the")


def test_no_orphan_word_on_a_line():
    text = "This sentence is just a little bit too long for one line of forty-two"
    lines = one_segment(text)[0].split("\n")
    assert len(lines) == 2 and all(len(line.split()) >= 3 for line in lines)
    # greedy filling would leave "forty-two" alone on the second line
    assert display_width(lines[0]) <= 42


def test_a_long_sentence_splits_at_its_clauses_into_cues():
    text = ("When we finally arrived at the station after a long walk through the rain, "
            "the last train had already left the station and nobody could tell us why.")
    cues = one_segment(text, end=9.0)
    assert len(cues) == 2 and cues[0].endswith("rain,")


def test_a_word_wider_than_a_line_is_cut():
    cues = one_segment("x" * 100, max_line_width=42)
    assert all(display_width(line) <= 42 for cue in cues for line in cue.split("\n"))
    assert "".join(cues).replace("\n", "") == "x" * 100


# ---- scripts -----------------------------------------------------------------------------------------
def test_display_widths():
    assert display_width("hello") == 5
    assert display_width("你好，世界") == 10
    assert display_width("안녕하세요") == 10
    assert display_width("ｶﾀｶﾅ") == 4  # half-width katakana are narrow
    assert display_width("e\u0301") == 1  # a combining accent takes no column


def test_chinese_line_holds_21_characters():
    text = "今天天气很好我们一起去公园散步看到很多孩子在湖边玩耍大家都说这个城市变化非常快"  # 40 characters
    cue, = one_segment(text, end=6.0)
    lines = cue.split("\n")
    assert len(lines) == 2 and all(len(line) <= 21 for line in lines) and "".join(lines) == text


def test_cjk_never_breaks_before_closing_or_after_opening_punctuation():
    text = "他说：「今天天气很好，我们一起去公园散步吧。」大家都同意了，于是我们出发了。"
    for width in range(8, 30):
        for cue in one_segment(text, end=8.0, max_line_width=width, max_lines=3):
            lines = cue.split("\n")
            assert not any(line[0] in "，。」：、" for line in lines[1:]), (width, lines)
            assert not any(line[-1] in "「（" for line in lines[:-1]), (width, lines)


def test_japanese_small_kana_and_long_vowel_mark_stay_attached():
    text = "ちょっとコーヒーを飲みに行きませんか。きょうはとてもいいてんきですね。"
    for width in range(6, 24):
        for cue in one_segment(text, end=8.0, max_line_width=width, max_lines=4):
            assert not any(line[0] in "ょっゃゅーぁぃ。" for line in cue.split("\n")[1:])


def test_no_space_is_joined_into_chinese_or_japanese_but_korean_keeps_its_spaces():
    assert join_words(["今天", "天气", "很好", "。"]) == "今天天气很好。"
    assert join_words(["コーヒー", "を", "飲みます"]) == "コーヒーを飲みます"
    assert join_words(["안녕하세요", "여러분", "반갑습니다", "."]) == "안녕하세요 여러분 반갑습니다."
    assert join_words(["我", "用", "Python", "写", "代码", "。", "Hello"]) == "我用 Python 写代码。Hello"
    assert join_words(["(", "see", "above", ")", ",", "fine"]) == "(see above), fine"


def test_korean_words_keep_spaces_in_word_cues():
    words = [Word("안녕하세요", 0.0, 0.8), Word("여러분", 0.9, 1.3), Word("오늘은", 1.4, 1.8), Word("날씨가", 1.9, 2.3),
             Word("좋네요.", 2.4, 3.0)]
    result = word_result(words, 5.0)
    assert result.segments[0].text == "안녕하세요 여러분 오늘은 날씨가 좋네요."
    srt_text = render(result, "srt", CueLayout(words=True))
    assert "안녕하세요 여러분" in srt_text and "안녕하세요여러분" not in srt_text


def test_korean_breaks_between_words_and_counts_two_columns():
    text = "오늘은 날씨가 정말 좋아서 우리는 공원에 산책을 가기로 했습니다"  # 57 columns wide
    lines = one_segment(text, end=6.0)[0].split("\n")
    assert len(lines) == 2 and all(display_width(line) <= 42 for line in lines)
    assert " ".join(lines) == text  # broken at a space, no syllable split


def test_split_text_keeps_spaces_between_latin_words_only():
    assert split_text("我用Python 写代码。") == [("我", False), ("用", False), ("Python", False), ("写", True),
                                              ("代", False), ("码", False), ("。", False)]
    assert split_text("你好 世界") == [("你", False), ("好", False), ("世", False), ("界", False)]
    assert split_text("hello  big world") == [("hello", False), ("big", True), ("world", True)]


# ---- timing rules ------------------------------------------------------------------------------------
def transcript(*segments, duration=60.0) -> Result:
    return Result("transcribe", "x.wav", duration, "m", segments=[Segment(a, b, t) for a, b, t in segments])


def times(result, **layout):
    return [(c.start_ms, c.end_ms) for c in cues_for(result, CueLayout(**layout))]


def test_short_cue_is_extended_into_the_silence_after_it():
    assert times(transcript((1.0, 1.3, "Yes."), (5.0, 7.0, "Then we left."))) == [(1000, 1833), (5000, 7000)]


def test_extension_stops_a_gap_before_the_next_cue():
    result = transcript((1.0, 1.3, "Yes."), (1.6, 4.0, "Afterwards."))
    assert times(result, max_lines=1, max_line_width=12) == [(1000, 1534), (1600, 4000)]  # too wide to join


def test_short_cue_without_room_joins_its_neighbour():
    cues = cues_for(transcript((1.0, 1.3, "Yes."), (1.4, 4.0, "Then we left the house.")), CueLayout())
    assert [c.text for c in cues] == ["Yes. Then we left the house."] and cues[0].start_ms == 1000


def test_a_gap_shorter_than_two_frames_is_closed_up():
    assert times(transcript((1.0, 3.0, "First sentence here."), (3.02, 5.0, "Second one follows."))) == \
        [(1000, 2954), (3020, 5000)]
    assert times(transcript((1.0, 3.0, "First sentence here."), (3.0, 5.0, "Second one follows.")),
                 min_gap_seconds=0.1) == [(1000, 2900), (3000, 5000)]


def test_closing_a_gap_never_cuts_off_a_word_time():
    """The last word starts 20 ms before the next cue: the next cue starts a little later instead."""
    first = [Word("It", 1.0, 1.4), Word("ends", 1.5, 1.9), Word("here.", 2.0, 2.02)]
    second = [Word("Next", 2.04, 2.5), Word("one", 2.6, 3.0), Word("now.", 3.1, 3.5)]
    result = Result("transcribe", "x.wav", 10.0, "m", segments=[
        Segment(1.0, 2.02, "It ends here.", words=first), Segment(2.04, 3.5, "Next one now.", words=second)])
    cues = cues_for(result, CueLayout(words=True, max_line_width=14, max_lines=1))
    assert [(c.text, c.start_ms, c.end_ms) for c in cues] == [("It ends here.", 1000, 2001), ("Next one now.", 2067, 3500)]
    assert [word_marks(c) for c in cues] == [[None, 1500, 2000], [None, 2600, 3100]]


def test_fast_cue_is_extended_to_its_reading_time():
    text = "This sentence has exactly fifty characters in it.."  # 50 characters: 2.5 s at 20 cps
    assert times(transcript((1.0, 2.0, text))) == [(1000, 3500)]
    assert times(transcript((1.0, 2.0, text)), max_cps=10) == [(1000, 6000)]
    assert times(transcript((1.0, 2.0, text)), max_cps=0) == [(1000, 2000)]


def test_cue_never_longer_than_max_seconds():
    assert times(transcript((0.0, 30.0, "Hmm.")), max_seconds=7.0) == [(0, 7000)]


def test_a_fast_sentence_is_cut_where_its_parts_can_be_read():
    """Quick words then a pause in the middle: the cut goes into the pause, so both halves are readable."""
    words = [Word(w, 0.2 * i, 0.2 * i + 0.18) for i, w in enumerate("one two three four five six,".split())]
    words += [Word(w, 3.0 + 0.2 * i, 3.0 + 0.2 * i + 0.18) for i, w in enumerate("seven eight nine ten eleven.".split())]
    result = Result("transcribe", "x.wav", 10.0, "m", segments=[Segment(0.0, 4.0, "", words=words)])
    cues = cues_for(result, CueLayout(words=True, max_line_width=20))
    assert [c.text for c in cues] == ["one two three\nfour five six,", "seven eight\nnine ten eleven."]
    assert len(cues[0].text) == 28 and cues[0].end_ms == 1400  # 1.18 s of speech, shown for 28 / 20 s


def test_layout_limits_are_checked():
    with pytest.raises(ValueError):
        CueLayout(min_seconds=8.0, max_seconds=7.0)
    with pytest.raises(ValueError):
        CueLayout(max_cps=-1)


# ---- events follow the same rules --------------------------------------------------------------------
def test_events_honour_lines_width_and_max_seconds():
    description = ("a long rumble of heavy traffic passing by on a wet road with horns and a siren far away "
                   "and then a bus stopping nearby")
    result = Result("events", "e.wav", 60.0, "m", events=[Event(0.0, 40.0, description), Event(41.0, 60.0, "rain")])
    for layout in (CueLayout(), CueLayout(max_lines=1, max_seconds=3.0, max_line_width=30)):
        cues = assert_rules(result, layout, readable=False)
        assert re.sub(r"\s", "", "".join(c.text for c in cues)) == re.sub(r"\s", "", description + "rain")
        rain = [c for c in cues if c.text == "rain"]
        assert rain[0].start_ms == 41000 and rain[0].end_ms - rain[0].start_ms == seconds_to_ms(layout.max_seconds)


def test_overlapping_events_stay_overlapping():
    result = Result("events", "e.wav", 30.0, "m", events=[Event(0.0, 12.5, "traffic"), Event(3.25, 4.0, "a dog barks")])
    assert times(result) == [(0, 7000), (3250, 4083)]


# ---- word times inside cues --------------------------------------------------------------------------
def word_cue_result() -> Result:
    words = [Word("Guten", 61.2, 61.5), Word("Tag,", 61.5, 61.9), Word("„Welt“!", 62.0, 62.6)]
    return Result("transcribe", "t.wav", 70.0, "m", segments=[Segment(61.2, 62.6, "Guten Tag, „Welt“!", words=words)])


def test_word_marks_and_steps_cover_the_cue():
    cue = cues_for(word_cue_result(), CueLayout(words=True))[0]
    assert word_marks(cue) == [None, 61500, 62000]
    assert [(a, b, list(r)) for a, b, r in word_steps(cue)] == [(61200, 61500, [0]), (61500, 62000, [1]), (62000, 62600, [2])]


def test_highlight_words_gives_one_cue_per_word_change():
    text = render(word_cue_result(), "vtt", CueLayout(words=True, highlight_words=True))
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert [c.raw_text for c in captions] == ["<u>Guten</u> Tag, „Welt“!", "Guten <u>Tag,</u> „Welt“!",
                                              "Guten Tag, <u>„Welt“!</u>"]
    assert [(c.start, c.end) for c in captions] == [("00:01:01.200", "00:01:01.500"), ("00:01:01.500", "00:01:02.000"),
                                                   ("00:01:02.000", "00:01:02.600")]


def test_ass_karaoke_durations_add_up_to_the_cue():
    subs = pysubs2.SSAFile.from_string(render(word_result(english_words(120, 7), 120.0), "ass", CueLayout(words=True)))
    assert subs.events
    for event in subs.events:
        ticks = [int(k) for k in re.findall(r"\{\\k(\d+)\}", event.text)]
        assert ticks and abs(sum(ticks) * 10 - (event.end - event.start)) <= 10
        assert event.plaintext.replace("\n", " ").split() == re.sub(r"\{[^}]*\}", "", event.text).replace("\\N", " ").split()
