import pytest

from moss_cli.tasks.asking import relative_question, window_around
from moss_cli.timeref import find_time_span, format_clock, seconds_of, shift_times


@pytest.mark.parametrize("question,start,end", [
    ("what was said at 2:00?", 120, 120),
    ("What happens around 1:02:30", 3750, 3750),
    ("what music plays between 5 and 7 minutes?", 300, 420),
    ("from 1:00 to 2:00, who speaks?", 60, 120),
    ("What happened at 90 seconds?", 90, 90),
    ("at 2 min 30, is there a dog?", 150, 150),
    ("anything in the last 30 seconds?", 1170, 1200),
    ("in the first 2 minutes?", 0, 120),
    ("what is said 10:15 in?", 615, 615),
])
def test_time_spans(question, start, end):
    span = find_time_span(question, 1200)
    assert (span.start, span.end) == (start, end)


@pytest.mark.parametrize("question", ["who speaks first?", "How many speakers are there?", "Describe it in 2 words."])
def test_no_time(question):
    assert find_time_span(question, 1200) is None


def test_seconds_of():
    assert seconds_of("1h 5m") == 3900
    assert seconds_of("7", default_unit="m") == 420
    assert format_clock(3723.4) == "1:02:03" and format_clock(62.5) == "1:02"


def test_shift_times_in_answers():
    text = "At [00:08] a dog barks; at 1:05 a car; [12.50]hello"
    assert shift_times(text, 600, 120) == "At [10:08] a dog barks; at 11:05 a car; [612.50]hello"
    assert shift_times(text, 0, 120) == text


def test_window_and_relative_question():
    span = find_time_span("what was said at 7:30?", 1200)
    window = window_around(span, 1200 * 16_000)
    assert window.offset == 390 and window.duration == 120
    assert relative_question("what was said at 7:30?", span, window.offset) == "what was said at 1:00?"
    edge = window_around(find_time_span("at 0:10", 1200), 1200 * 16_000)
    assert edge.offset == 0 and edge.duration == 120
    ranged = find_time_span("between 5 and 7 minutes?", 1200)
    assert relative_question("between 5 and 7 minutes?", ranged, 240.0) == "between 1:00 and 3:00?"


@pytest.mark.parametrize("question", [
    "What does the preacher say about John 3:16?",
    "Is the score 2:15 at any point?",  # a clock shape alone asks about no time
    "Who mentions the 9:45 train?",
])
def test_clock_shapes_that_are_not_times_asked_about(question):
    assert find_time_span(question, 1200) is None


@pytest.mark.parametrize("question,seconds", [
    ("what is said 10:15 in?", 615), ("what happens at the 7:30 mark?", 450), ("explain [12:05]", 725),
    ("What does John 3:16 mean, as said at 7:30?", 450),
])
def test_clock_times_asked_about(question, seconds):
    assert find_time_span(question, 1200).start == seconds


def test_only_times_inside_the_window_move():
    answer = "At 1:05 the pastor reads John 3:16; at 9:45 (the train) a horn; [00:08] and [12.50]; [300.00]"
    assert shift_times(answer, 390, 120) == (
        "At 7:35 the pastor reads John 3:16; at 9:45 (the train) a horn; [06:38] and [402.50]; [300.00]")
    # a ten-minute window: 9:45 is inside it now, John 3:16 still is no time
    assert shift_times("from 1:00 to 9:45; John 3:16", 600, 600) == "from 11:00 to 19:45; John 3:16"


def test_absurd_times_do_not_crash():
    span = find_time_span(f"what was said at {'9' * 400} seconds?", 1200)
    assert span.start == float("inf")
    assert shift_times(f"[{'9' * 400}] at 99:59:59", 60, 120) == f"[{'9' * 400}] at 99:59:59"
