"""Speaker labels on a transcript, from a given timeline of turns: labels, names, splits at changes."""

from moss_cli.results import Segment, Word
from moss_cli.speakers.labels import label_speakers, speaker_at, speech_spans
from moss_cli.speakers.voices import Turn


def words(*timed):
    return [Word(w, a, b) for w, a, b in timed]


def test_segments_and_words_get_the_speaker_heard_most_in_order_of_first_appearance():
    turns = [Turn(0.0, 2.0, 7), Turn(2.4, 4.0, 3), Turn(4.5, 6.0, 7)]
    segments = [Segment(0.1, 1.9, "Hello there."), Segment(2.5, 3.9, "Hi."), Segment(4.6, 5.9, "Well.")]
    labeled = label_speakers(segments, turns)
    assert [s.speaker for s in labeled] == ["S1", "S2", "S1"]
    assert [s.text for s in labeled] == ["Hello there.", "Hi.", "Well."]


def test_names_replace_labels_in_order_of_first_appearance_and_run_out_to_numbers():
    turns = [Turn(0.0, 1.0, 2), Turn(1.5, 2.5, 0), Turn(3.0, 4.0, 1)]
    segments = [Segment(0.0, 1.0, "a"), Segment(1.5, 2.5, "b"), Segment(3.0, 4.0, "c")]
    assert [s.speaker for s in label_speakers(segments, turns, ("Alice", "Bob"))] == ["Alice", "Bob", "S3"]


def test_a_segment_with_words_is_split_between_the_words_where_the_speaker_changes():
    turns = [Turn(0.0, 2.0, 0), Turn(2.3, 5.0, 1)]
    segment = Segment(0.0, 4.8, "Are you ready? Yes I am ready now.", words(
        ("Are", 0.0, 0.4), ("you", 0.5, 0.9), ("ready?", 1.0, 1.9),
        ("Yes", 2.4, 2.8), ("I", 2.9, 3.0), ("am", 3.1, 3.4), ("ready", 3.5, 4.0), ("now.", 4.1, 4.8)))
    first, second = label_speakers([segment], turns)
    assert (first.text, first.start, first.end, first.speaker) == ("Are you ready?", 0.0, 1.9, "S1")
    assert (second.text, second.start, second.end, second.speaker) == ("Yes I am ready now.", 2.4, 4.8, "S2")
    assert [w.speaker for w in first.words + second.words] == ["S1"] * 3 + ["S2"] * 5


def test_a_word_or_two_heard_as_another_voice_does_not_split_a_segment():
    turns = [Turn(0.0, 1.5, 0), Turn(1.5, 1.9, 1), Turn(1.9, 4.0, 0)]  # a 0.4 s stray piece
    segment = Segment(0.0, 4.0, "one two three four", words(
        ("one", 0.0, 0.9), ("two", 1.0, 1.4), ("three", 1.55, 1.85), ("four", 2.0, 4.0)))
    (labeled,) = label_speakers([segment], turns)
    assert labeled.speaker == "S1" and [w.speaker for w in labeled.words] == ["S1"] * 4


def test_without_words_a_segment_is_split_at_the_pause_between_the_turns_and_at_a_sentence_end():
    turns = [Turn(0.0, 2.9, 0), Turn(3.5, 6.0, 1)]
    segment = Segment(0.0, 6.0, "I think it will rain today. Then we stay inside and read.")
    first, second = label_speakers([segment], turns)
    assert (first.start, first.end) == (0.0, 3.2) and (second.start, second.end) == (3.2, 6.0)
    assert first.text == "I think it will rain today." and second.text == "Then we stay inside and read."
    assert (first.speaker, second.speaker) == ("S1", "S2")


def test_without_words_or_a_sentence_end_the_text_is_cut_where_the_time_falls():
    turns = [Turn(0.0, 1.9, 0), Turn(2.1, 4.0, 1)]
    segment = Segment(0.0, 4.0, "aaaa bbbb cccc dddd")  # equal words: the middle falls after bbbb
    first, second = label_speakers([segment], turns)
    assert (first.text, second.text) == ("aaaa bbbb", "cccc dddd")
    assert first.end == second.start == 2.0


def test_three_speakers_in_one_segment_give_three_parts():
    turns = [Turn(0.0, 2.0, 0), Turn(2.2, 4.0, 1), Turn(4.2, 6.0, 2)]
    segment = Segment(0.0, 6.0, "One two three. Four five six. Seven eight nine.")
    parts = label_speakers([segment], turns)
    assert [p.text for p in parts] == ["One two three.", "Four five six.", "Seven eight nine."]
    assert [p.speaker for p in parts] == ["S1", "S2", "S3"]


def test_a_segment_no_turn_covers_gets_the_nearest_speaker():
    turns = [Turn(0.0, 1.0, 0), Turn(5.0, 6.0, 1)]
    assert speaker_at(turns, 4.0, 4.5) == 1 and speaker_at(turns, 1.2, 1.5) == 0


def test_speech_spans_are_the_segments_inside_the_detected_speech():
    segments = [Segment(0.0, 3.0, "a"), Segment(2.8, 6.0, "b"), Segment(8.0, 9.0, "c")]
    regions = [(0.5, 2.0), (2.5, 5.0)]  # nothing detected under the third segment
    assert speech_spans(segments, regions) == [(0.5, 2.0), (2.5, 3.0), (3.0, 5.0), (8.0, 9.0)]


def test_text_without_spaces_is_cut_between_characters():
    turns = [Turn(0.0, 1.9, 0), Turn(2.1, 4.0, 1)]
    first, second = label_speakers([Segment(0.0, 4.0, "今天下雨。我们在家。")], turns)
    assert (first.text, second.text) == ("今天下雨。", "我们在家。")


def test_a_segment_with_fewer_words_than_speakers_stays_whole_with_the_speaker_heard_most():
    turns = [Turn(0.0, 2.0, 0), Turn(3.0, 4.0, 0), Turn(4.2, 12.0, 1)]
    first, second = label_speakers([Segment(0.0, 2.0, "Hello."), Segment(3.0, 12.0, "Absolutely.")], turns)
    assert first.speaker == "S1"
    assert (second.start, second.end, second.text, second.speaker) == (3.0, 12.0, "Absolutely.", "S2")


def test_speakers_matched_to_a_known_voice_carry_its_name_and_the_others_keep_numbers():
    turns = [Turn(0.0, 1.0, 4, "Ben"), Turn(1.5, 2.5, 2), Turn(3.0, 4.0, 4, "Ben"), Turn(4.5, 5.0, 7)]
    segments = [Segment(0.0, 1.0, "a"), Segment(1.5, 2.5, "b"), Segment(3.0, 4.0, "c"), Segment(4.5, 5.0, "d")]
    assert [s.speaker for s in label_speakers(segments, turns)] == ["Ben", "S1", "Ben", "S2"]
    assert [s.speaker for s in label_speakers(segments, turns, ("Cleo",))] == ["Ben", "Cleo", "Ben", "S2"]
