import pytest

from moss_cli.parsing import parse_bracketed, parse_events, parse_time, strip_times


def spans(output, duration=10.0):
    return [(round(s.start, 3), round(s.end, 3), s.text) for s in parse_bracketed(output, duration)]


def test_official_sentence_format():
    out = "[0.00]hello there[2.01][2.01]the weather is nice today[4.32]"
    assert spans(out) == [(0.0, 2.01, "hello there"), (2.01, 4.32, "the weather is nice today")]


def test_word_format():
    assert spans("[0.00]hello[0.42][0.42]there[0.80]") == [(0.0, 0.42, "hello"), (0.42, 0.8, "there")]


def test_missing_brackets_chain_times():
    assert spans("[0.00]hello[2.01]world[4.00]") == [(0.0, 2.01, "hello"), (2.01, 4.0, "world")]
    assert spans("hello[2.0][2.0]world") == [(0.0, 2.0, "hello"), (2.0, 10.0, "world")]


def test_times_past_the_end_are_clamped():
    assert spans("[8.00]late words[14.50]", duration=10.0) == [(8.0, 10.0, "late words")]


def test_overlaps_are_removed_and_order_kept():
    out = "[0.00]one[3.00][2.00]two[5.00][4.50]three[6.00]"
    assert spans(out) == [(0.0, 3.0, "one"), (3.0, 5.0, "two"), (5.0, 6.0, "three")]


def test_reversed_times_are_swapped():
    assert spans("[3.00]backwards[1.00]") == [(1.0, 3.0, "backwards")]


def test_repeated_segments_are_dropped():
    out = "[0.00]same line[2.00][0.00]same line[2.00][1.50]Same line.[3.00][3.00]new[4.00]"
    assert spans(out) == [(0.0, 3.0, "same line"), (3.0, 4.0, "new")]


def test_words_said_twice_in_a_row_are_kept():
    assert spans("[0.00]no[0.40][0.40]no[0.80]") == [(0.0, 0.4, "no"), (0.4, 0.8, "no")]


def test_text_without_time_is_kept_with_the_previous_span():
    out = "[0.00]first[2.00][2.00]second[2.00]"
    result = spans(out)
    assert [t for _, _, t in result] == ["first second"]
    assert result[0][:2] == (0.0, 2.0)


def test_clock_times():
    assert spans("[00:01.5]a[00:03]") == [(1.5, 3.0, "a")]
    assert parse_time("1:02:03") == 3723


@pytest.mark.parametrize("output", ["", "just words, no times", "[] [abc]"])
def test_no_usable_times(output):
    assert parse_bracketed(output, 10.0) == []


def test_strip_times():
    assert strip_times("[0.00] hello [1.00]  world ") == "hello world"


def test_event_lines():
    out = "0.00 - 4.50: birds chirping\n4.50 - 9.00: a car passes\n"
    assert [(e.start, e.end, e.text) for e in parse_events(out, 10.0)] == [
        (0.0, 4.5, "birds chirping"), (4.5, 9.0, "a car passes")]


def test_event_variants_and_repairs():
    out = ("Here are the events:\n"
           "- [00:02 - 00:05] dog barks\n"
           "7s - 12s: thunder\n"
           "3.0 – 1.0: reversed\n"
           "0.00 - 4.50: birds chirping\n"
           "0.00 - 4.50: birds chirping\n")
    events = [(e.start, e.end, e.text) for e in parse_events(out, 10.0)]
    assert events == [(0.0, 4.5, "birds chirping"), (1.0, 3.0, "reversed"), (2.0, 5.0, "dog barks"),
                      (7.0, 10.0, "thunder")]
