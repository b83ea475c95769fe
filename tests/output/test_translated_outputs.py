"""Writers and cue layout for translated results: the translation alone, or under the original (bilingual)."""

import io

import pysubs2

from moss_cli.output.subtitles import CueLayout, cues_for
from moss_cli.output.writers import get_writer
from moss_cli.results import Event, Result, Segment
from moss_cli.text import display_width

LONG = ("this sentence is said much too fast and it goes on and on about the weather and the trains and the "
        "people waiting for them on the platform")
CHINESE = "这句话说得太快了，它一直在讲天气、火车和站台上等车的人们，讲了很久很久，没有停下来的意思。"


def translated(segments, bilingual: bool) -> Result:
    return Result("transcribe", "talk.wav", 30.0, "m", segments=segments, translated_to="zh", bilingual=bilingual)


def written(result: Result, extension: str, layout: CueLayout = CueLayout()) -> str:
    file = io.StringIO()
    get_writer(extension, layout).write(result, file)
    return file.getvalue()


def test_a_long_translation_is_shared_out_over_the_originals_cues_in_order():
    result = translated([Segment(1.0, 9.0, CHINESE, original=LONG)], bilingual=True)
    cues = cues_for(result)
    assert len(cues) >= 2
    assert all(cue.lines and cue.translation for cue in cues)  # each cue: its part of both
    shared = "".join("".join(piece.text for line in cue.translation for piece in line) for cue in cues)
    assert shared == CHINESE  # every character once, in order
    assert " ".join(" ".join(piece.text for piece in cue.pieces) for cue in cues) == LONG
    assert all(display_width(piece_line) <= 42 for cue in cues for piece_line in cue.text.split("\n"))
    assert cues[0].start_ms == 1000 and cues[-1].end_ms >= 9000


def test_the_translation_alone_is_laid_out_on_its_own_text():
    result = translated([Segment(1.0, 9.0, CHINESE, original=LONG)], bilingual=False)
    cues = cues_for(result, CueLayout(max_line_width=20))
    assert "".join(cue.text.replace("\n", "") for cue in cues) == CHINESE
    assert all(len(cue.lines) <= 2 and not cue.translation for cue in cues)
    assert all(display_width(line) <= 20 for cue in cues for line in cue.text.split("\n"))


def test_bilingual_ass_puts_the_translation_under_the_original():
    result = translated([Segment(1.0, 3.0, "你好。", original="Hello {there}.")], bilingual=True)
    events = pysubs2.SSAFile.from_string(written(result, "ass")).events
    assert [event.text for event in events] == ["Hello \\{there\\}.\\N你好。"]


def test_bilingual_text_of_events_keeps_the_times_on_the_original_line():
    result = Result("events", "street.wav", 10.0, "m", events=[Event(0.0, 4.0, "ein Hund bellt", original="a dog barks")],
                    translated_to="de", bilingual=True)
    assert written(result, "txt") == "0.00 - 4.00: a dog barks\n             ein Hund bellt\n"
    assert written(result, "tsv") == "start\tend\toriginal\ttext\n0\t4000\ta dog barks\tein Hund bellt\n"


def test_a_translated_result_shows_only_the_translation_without_bilingual():
    result = translated([Segment(1.0, 3.0, "你好。", original="Hello.", speaker="S1")], bilingual=False)
    assert written(result, "txt") == "[S1] 你好。\n"
    assert "Hello" not in written(result, "srt") and "Hello" not in written(result, "vtt")
    assert written(result, "tsv") == "start\tend\tspeaker\ttext\n1000\t3000\tS1\t你好。\n"


ARABIC = "قالت BBC إن القطارات تأخرت."  # an Arabic sentence with a Latin name in it, a full stop at its end


def test_ass_lines_in_a_right_to_left_script_are_embedded_right_to_left():
    """libass lays an event out left to right (the style's Encoding 1): an Arabic line would show its full
    stop on the wrong side. Each line written mostly in a right-to-left script is embedded right to left
    (U+202B ... U+202C); the original's left-to-right line stays as it is. Checked by eye in libass."""
    result = translated([Segment(1.0, 4.0, ARABIC, original="The BBC said the trains were late.")], bilingual=True)
    result.translated_to = "ar"
    [event] = pysubs2.SSAFile.from_string(written(result, "ass")).events
    original, translation = event.text.split("\\N")
    assert original == "The BBC said the trains were late."
    assert translation == f"\u202b{ARABIC}\u202c"
    hebrew = translated([Segment(1.0, 4.0, "{שלום} עולם.", original="hello")], bilingual=False)
    assert pysubs2.SSAFile.from_string(written(hebrew, "ass")).events[0].text == "\u202b\\{שלום\\} עולם.\u202c"


def test_srt_and_vtt_lines_in_a_right_to_left_script_are_embedded_right_to_left():
    """Players turn SubRip into ASS for libass (left to right); browsers take a WebVTT line's direction
    from its first letter, here the Latin name: the same embedding puts each right to left."""
    segments = [Segment(1.0, 4.0, ARABIC, original="The BBC said the trains were late.", speaker="S1")]
    result = translated(segments, bilingual=True)
    for extension in ("srt", "vtt"):
        lines = written(result, extension).splitlines()
        rtl = [line for line in lines if "القطارات" in line]
        assert len(rtl) == 1 and rtl[0].startswith("\u202b") and rtl[0].endswith("\u202c"), extension
        assert all("\u202b" not in line for line in lines if line not in rtl)
