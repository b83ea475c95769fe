"""Speaker labels in every format: JSON fields, VTT voice spans (read back by webvtt-py and by
Chromium), SRT/TXT/ASS `[S1] ` where the speaker changes, a TSV column; cues never mix speakers."""

import io
import json

import pytest
from support.chromium import CHROMIUM, parse_in_chromium

from moss_cli.output.subtitles import CueLayout, cues_for
from moss_cli.output.writers import get_writer
from moss_cli.results import Result, Segment, Word

# Turns close together ("Fine." alone is too short to read: unlabelled, the layout joins it to the
# sentence before), a name with spaces and markup characters, a first turn of two segments.
SEGMENTS = [
    Segment(0.0, 1.5, "Hello there.", [Word("Hello", 0.0, 0.6, "S1"), Word("there.", 0.7, 1.5, "S1")], speaker="S1"),
    Segment(1.6, 2.4, "How are you?", speaker="S1"),
    Segment(2.7, 3.2, "Fine.", speaker="Dr <Who> & co"),
    Segment(3.5, 4.5, "Good to hear.", speaker="S1"),
]


def labelled():
    return Result("transcribe", "talk.wav", 5.0, "m", text="", segments=[s for s in SEGMENTS])


def write(extension, result=None, layout=CueLayout()):
    buffer = io.StringIO()
    get_writer(extension, layout).write(result or labelled(), buffer)
    return buffer.getvalue()


def test_json_has_a_speaker_on_segments_and_words():
    data = json.loads(write("json"))
    assert [s["speaker"] for s in data["segments"]] == ["S1", "S1", "Dr <Who> & co", "S1"]
    assert [w["speaker"] for w in data["segments"][0]["words"]] == ["S1", "S1"]


def test_cues_never_hold_two_speakers():
    from dataclasses import replace

    unlabelled = Result("transcribe", "talk.wav", 5.0, "m", segments=[replace(s, speaker=None) for s in SEGMENTS])
    assert [c.text for c in cues_for(unlabelled)] == ["Hello there.", "How are you? Fine.", "Good to hear."]
    cues = cues_for(labelled(), CueLayout())
    assert [c.text for c in cues] == ["Hello there.", "How are you?", "Fine.", "Good to hear."]
    assert [c.speaker for c in cues] == ["S1", "S1", "Dr <Who> & co", "S1"]


def test_vtt_cues_are_voice_spans():
    import webvtt

    text = write("vtt")
    assert "<v Dr &lt;Who&gt; &amp; co>Fine.</v>" in text
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert [c.voice for c in captions] == ["S1", "S1", "Dr &lt;Who&gt; &amp; co", "S1"]
    assert [c.text for c in captions] == ["Hello there.", "How are you?", "Fine.", "Good to hear."]


@pytest.mark.parametrize("layout", [CueLayout(), CueLayout(words=True), CueLayout(words=True, highlight_words=True)])
def test_vtt_voice_spans_hold_word_times_and_highlights(layout):
    text = write("vtt", layout=layout)
    cues = [block.split("\n", 1)[1] for block in text.strip().split("\n\n")[1:]]
    assert cues and all(c.startswith("<v ") and c.endswith("</v>") for c in cues)


def test_srt_txt_and_ass_mark_where_the_speaker_changes():
    import pysubs2

    subs = [block.split("\n", 2)[2] for block in write("srt").strip().split("\n\n")]
    assert subs == ["[S1] Hello there.", "How are you?", "[Dr <Who> & co] Fine.", "[S1] Good to hear."]
    assert write("txt").splitlines() == ["[S1] Hello there.", "How are you?", "[Dr <Who> & co] Fine.",
                                         "[S1] Good to hear."]
    events = pysubs2.SSAFile.from_string(write("ass")).events
    assert [e.name for e in events] == ["S1", "S1", "Dr <Who> & co", "S1"]
    assert [e.plaintext for e in events] == ["[S1] Hello there.", "How are you?", "[Dr <Who> & co] Fine.",
                                             "[S1] Good to hear."]


def test_tsv_has_a_speaker_column_only_with_speakers():
    rows = [line.split("\t") for line in write("tsv").splitlines()]
    assert rows[0] == ["start", "end", "speaker", "text"]
    assert rows[3] == ["2700", "3200", "Dr <Who> & co", "Fine."]
    plain = Result("transcribe", "talk.wav", 5.0, "m", segments=[Segment(0.0, 1.0, "Hi.")])
    assert write("tsv", plain).splitlines() == ["start\tend\ttext", "0\t1000\tHi."]


def test_unlabelled_results_are_written_as_before():
    plain = Result("transcribe", "talk.wav", 5.0, "m", segments=[Segment(0.0, 1.0, "Hi."), Segment(1.2, 2.0, "Yo.")])
    assert "[" not in write("srt", plain) + write("txt", plain) and "<v" not in write("vtt", plain)
    assert "speaker" not in write("json", plain)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_reads_the_voice_of_every_cue(tmp_path):
    files = {"sentences.vtt": write("vtt"), "words.vtt": write("vtt", layout=CueLayout(words=True))}
    parsed = parse_in_chromium(files, tmp_path)
    for name in files:
        assert [cue["voices"] for cue in parsed[name]] == [["S1"], ["S1"], ["Dr <Who> & co"], ["S1"]], name
