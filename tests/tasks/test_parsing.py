import math

import pytest

from moss_cli.tasks.parsing import parse_bracketed, parse_events, parse_time, strip_times


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


# ---- answers an attacker (or a broken model) could send: every parser runs in linear time ------------
ADVERSARIAL = {
    "64 spaces then x": "x" + " " * 64 + "x",  # the old loop regex never finished on this
    "52 trailing spaces": "ok" + " " * 52,
    "a whitespace run": " \t\n" * 70_000,
    "a 200 KB events line": "1" + " " * 200_000 + "x",
    "a 200 KB events description": "1.0 - 2.0: " + "a " * 100_000,
    "a bracket then spaces": "[1" + " " * 200_000 + "x",
    "a bracket then digits": "[" + "1" * 200_000,
    "unclosed think tags": "<think>" * 30_000,
    "many event lines": "1.0 - 2.0: x\n" * 20_000,
    "words squeezed past the end": "[100.0]w[101.0]" * 20_000,
    "escape sequences": "\x1b]" * 100_000,
}
TIMING = """
import json, sys, time
from moss_cli.audio.chunking import Chunk
from moss_cli.engine.base import Answer, split_reasoning
from moss_cli.tasks.parsing import json_object, parse_bracketed, parse_events, strip_times
from moss_cli.tasks.answers import cut_short, events_from, segments_from
from moss_cli.text import printable
from moss_cli.timeref import shift_times
chunk = Chunk(0, 60 * 16000)
steps = {
    "loop detector": lambda s: cut_short(Answer(s, "", s, [], "stop", 0)),
    "sentences": lambda s: segments_from(s, chunk, words=False), "words": lambda s: segments_from(s, chunk, words=True),
    "events": lambda s: events_from(s, chunk), "bracketed": lambda s: parse_bracketed(s, 60.0),
    "event lines": lambda s: parse_events(s, 60.0), "strip": strip_times, "reasoning": split_reasoning,
    "answer times": lambda s: shift_times(s, 600.0, 120.0), "printable": printable, "json": json_object,
}
slowest = {}
for name, text in json.loads(sys.stdin.read()).items():
    for step, run in steps.items():
        started = time.perf_counter()
        run(text)
        slowest[f"{step} on {name}"] = time.perf_counter() - started
print(json.dumps(slowest))
"""


def test_parsers_take_linear_time_on_adversarial_answers():
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TIMING], input=json.dumps(ADVERSARIAL), capture_output=True,
                          text=True, timeout=120)  # the old regexes never return: this is the limit then
    assert done.returncode == 0, done.stderr
    slow = {case: round(seconds, 2) for case, seconds in json.loads(done.stdout).items() if seconds > 1.0}
    assert not slow


def test_events_parse_the_same_after_whitespace_runs():
    out = "  -  [1.5 s]   -   [3 sec] :   a   dog    barks  \n0.00 to 2.00\tbirds\n4 - 5 sirens"
    assert [(e.start, e.end, e.text) for e in parse_events(out, 10.0)] == [
        (0.0, 2.0, "birds"), (1.5, 3.0, "a dog barks"), (4.0, 5.0, "sirens")]
    assert spans("[ 1.0  s ]one[ 2.0 ]") == [(1.0, 2.0, "one")]


def test_json_answers_with_and_without_fences():
    from moss_cli.tasks.parsing import json_object

    assert json_object('```json\n{"a": 1}\n```') == ({"a": 1}, '{"a": 1}')
    assert json_object('Here you are:\n```\n{"a": [1, 2]}\n```\nAnything else?') == ({"a": [1, 2]}, '{"a": [1, 2]}')
    assert json_object('{"a": 1}') == ({"a": 1}, '{"a": 1}')
    assert json_object("[1, 2]") == (None, "[1, 2]") and json_object("a calm voice") == (None, "a calm voice")
    assert json_object("[" * 100_000)[0] is None  # too deep for the parser: text, not a crash
    answer = '{"pitch": NaN, "range": [Infinity, -Infinity, 1e999, 2.5], "n": 3}'
    assert json_object(answer) == ({"pitch": None, "range": [None, None, None, 2.5], "n": 3}, answer)


def test_printable_strips_escape_sequences_and_controls():
    from moss_cli.text import printable

    assert printable("\x1b]52;c;aGk=\x07a\tb\x1b[31mc\x9b2Jd\r\ne\x00\x7f\x85") == "a\tbcd\ne"
    assert printable("x\ud800y\ud83d\ude00") == "x\ufffdy\U0001F600"
    assert printable("John 3:16 [12.5] ünïcödé 中文") == "John 3:16 [12.5] ünïcödé 中文"


@pytest.mark.parametrize("control", [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]])
def test_bidi_overrides_and_isolates_are_removed_from_text_and_shown_in_names(control):
    from moss_cli.text import printable, printable_name

    assert printable(f"file{control}txt.exe שלום‏") == "filetxt.exe שלום‏"
    assert printable_name(f"a{control}b.wav") == f"a\\u{ord(control):04x}b.wav"


@pytest.mark.parametrize("broken", ["nan", "NaN", "inf", "-Infinity", "-5.00", "-0:05", "1e308", "2.5E+400"])
def test_broken_times_never_stay_in_the_text_nor_reach_a_result(broken):
    """What a model writes where it cannot say a time is a time gone wrong: taken out of the text, its
    value repaired from its neighbours (or clamped into the chunk), never NaN or infinite."""
    from moss_cli.audio.chunking import Chunk
    from moss_cli.tasks.answers import segments_from

    texts = [f"[0.00]hello[{broken}][{broken}]world[4.00]", f"[{broken}]hello[2.00][2.00]world[{broken}]",
             f"[0.00]hello[2.00] world[{broken}]", f"[{broken}]hello[{broken}]"]
    for text in texts:
        for words in (False, True):
            segments = segments_from(text, Chunk(0, 10 * 16000), words)
            assert " ".join(s.text for s in segments) == "hello world" or segments[0].text == "hello"
            times = [t for s in segments for t in (s.start, s.end)]
            assert all(math.isfinite(t) and 0 <= t <= 10 for t in times)
    for lines in (f"{broken} - 1.00: a\n1.00 - 2.00: b", f"0.00 - {broken}: a\n1.00 - 2.00: b"):
        events = parse_events(lines, 10.0)  # a broken line dropped, or its time clamped: never in the text
        assert {e.text for e in events} <= {"a", "b"} and "b" in {e.text for e in events}
        assert all(math.isfinite(t) and 0 <= t <= 10 for e in events for t in (e.start, e.end))
    assert strip_times(f"[{broken}]x") == "x"
