"""summarize's task: window notes at file times, the final prompt bounded however long the recording,
and the model's digest read back with every shape error repaired or dropped with a warning."""

import json
import random
import re

import pytest
from support.fake_server import phrase_recording
from support.scripted import ScriptedEngine

from moss_cli.engine.base import Answer
from moss_cli.results import Segment
from moss_cli.tasks.digest import (
    NOTES_CHARS,
    TRANSCRIPT_CHARS,
    DigestSettings,
    bounded_notes,
    summarize,
    transcript_text,
)
from moss_cli.tasks.digest_shape import DigestShape, read_digest, read_time, snap
from moss_cli.tasks.hints import parse_language
from moss_cli.tasks.pipeline import Pipeline, PipelineOptions
from moss_cli.tasks.recording import Recording
from moss_cli.timeref import seconds_of

STARTS = (0.8, 12.3, 25.0, 41.7, 58.2, 77.9, 95.5)
SHAPE = DigestShape(100.0, STARTS, 10.0, "meeting")


def answer(chapters, **fields):
    return json.dumps({"kind": "meeting", "short_summary": "Short.", "summary": "Long.", "chapters": chapters,
                       "key_points": ["a"], "action_items": [], "decisions": [], **fields})


def assert_well_formed(chapters, shape=SHAPE):
    """Inside the recording, in order, snapped (the first at 0), each at least the least length."""
    assert chapters, "no chapters"
    assert chapters[0].start == 0.0
    for chapter in chapters[1:]:
        assert chapter.start in shape.sentence_starts
    for chapter, after in zip(chapters, chapters[1:]):
        assert chapter.end == after.start and after.start - chapter.start >= shape.min_chapter_seconds
    assert chapters[-1].end == shape.duration
    if len(chapters) > 1:
        assert shape.duration - chapters[-1].start >= shape.min_chapter_seconds


def test_a_clean_digest_is_read_as_it_is_with_times_snapped():
    digest, warnings = read_digest(answer([{"start": "0:00", "title": "Hello", "gist": "greetings"},
                                           {"start": "0:26", "title": "Budget", "gist": "money"},
                                           {"start": "1:18", "title": "Plans", "gist": "next"}],
                                          action_items=[{"who": "Ann", "what": "send it", "when": "0:42"}],
                                          decisions=["ship"]), SHAPE)
    assert warnings == []
    assert [(c.start, c.end, c.title, c.gist) for c in digest.chapters] == [
        (0.0, 25.0, "Hello", "greetings"), (25.0, 77.9, "Budget", "money"), (77.9, 100.0, "Plans", "next")]
    assert [(a.who, a.what, a.said_at) for a in digest.action_items] == [("Ann", "send it", 42.0)]
    assert digest.decisions == ["ship"] and digest.key_points == ["a"] and digest.kind == "meeting"


@pytest.mark.parametrize("chapters, dropped", [
    ([{"start": "1:18", "title": "C"}, {"start": "0:00", "title": "A"}, {"start": "0:40", "title": "B"}], 0),
    ([{"title": "no time"}, {"start": "zero", "title": "words"}, {"start": "0:00", "title": "A"}], 2),
    ([{"start": "0:00", "title": "A"}, {"start": "9:59", "title": "past"}, {"start": -5, "title": "before"}], 2),
    ([{"start": "0:00", "title": "A"}, {"start": "0:03", "title": "too soon"}, {"start": "0:10", "title": "B"},
      {"start": "0:14", "title": "same sentence"}], 2),
    ([{"start": "0:00", "title": "A"}, {"start": "1:35", "title": "at the very end"}], 1),
    ([{"start": 0, "title": "A"}, {"start": 41.5, "title": "seconds"}, {"start": "[00:58]", "title": "bracket"}], 0),
    ([{"start": "0:30", "title": "late first"}, {"start": None, "title": "null"}, "not an object", {"gist": "g"}], 2),
])
def test_hostile_chapters_are_repaired_or_dropped_with_a_warning(chapters, dropped):
    digest, warnings = read_digest(answer(chapters), SHAPE)
    assert_well_formed(digest.chapters)
    assert len(warnings) >= dropped
    assert all(isinstance(w, str) and w for w in warnings)


def test_random_chapters_always_come_out_well_formed():
    rng = random.Random(7)
    for _ in range(300):
        duration = rng.uniform(30, 7200)
        starts = tuple(sorted(rng.uniform(0, duration) for _ in range(rng.randint(0, 40))))
        shape = DigestShape(duration, starts, rng.choice([0.0, 5.0, 60.0, 300.0]), "podcast")
        chapters = [{"start": rng.choice([rng.uniform(-60, duration * 1.2), None, "x", f"{rng.randint(0, 200)}:07"]),
                     "title": f"c{i}"} for i in range(rng.randint(1, 15))]
        digest, _ = read_digest(answer(chapters), shape)
        if not digest.chapters:
            continue
        assert digest.chapters[0].start == 0.0
        for chapter in digest.chapters[1:]:
            assert chapter.start in starts or not starts
        for chapter in digest.chapters:
            assert 0 <= chapter.start < chapter.end <= duration
            if len(digest.chapters) > 1:
                assert chapter.end - chapter.start >= shape.min_chapter_seconds


@pytest.mark.parametrize("text", [
    "```json\n" + answer([{"start": "0:00", "title": "A"}]) + "\n```",
    "Here is the digest:\n" + answer([{"start": "0:00", "title": "A"}]) + "\nI hope it helps.",
])
def test_the_json_is_found_in_prose_or_a_fence(text):
    digest, warnings = read_digest(text, SHAPE)
    assert [c.title for c in digest.chapters] == ["A"] and digest.short_summary == "Short." and warnings == []


PRETTY = json.dumps(json.loads(answer([{"start": "0:00", "title": "A"}], key_points=["run ```make``` first"])), indent=2)


@pytest.mark.parametrize("text", [
    "```json\n" + PRETTY + "\n```",  # a fence inside a string of the fenced JSON
    answer([{"start": "0:00", "title": "A"}]) + "\nTimes are written {m:ss}, as asked.",  # braces after it
    "Plan: {draft} then {check}.\n" + answer([{"start": "0:00", "title": "A"}]),  # braces before it
    "{\"note\": 1}\n" + PRETTY,  # another object before the digest
])
def test_the_json_is_found_around_fences_and_braces(text):
    digest, warnings = read_digest(text, SHAPE)
    assert [c.title for c in digest.chapters] == ["A"] and digest.short_summary == "Short." and warnings == []


def test_chapters_written_as_lines_or_with_another_key_for_the_time_are_read():
    text = answer(["0:00 Welcome", "[0:26] Budget - the costs", "0:42 - Plans", {"time": "1:00", "title": "End"}])
    digest, warnings = read_digest(text, SHAPE)
    assert [(c.start, c.title) for c in digest.chapters] == [
        (0.0, "Welcome"), (25.0, "Budget - the costs"), (41.7, "Plans"), (58.2, "End")]
    assert warnings == []


def test_a_time_repeated_at_the_start_of_a_title_is_taken_off():
    """Models often write the time into the title too: a chapter list would show it twice."""
    text = answer([{"start": "0:00", "title": "0:00 Welcome"}, {"start": "0:25", "title": "[0:25] - Budget"},
                   {"start": "0:42", "title": "1984"}, {"start": "1:00", "title": "1:00"}])
    digest, _ = read_digest(text, SHAPE)
    assert [c.title for c in digest.chapters] == ["Welcome", "Budget", "1984", "1:00"]


@pytest.mark.parametrize("text", [
    "word " * 5000,  # an answer that is no JSON and has no full stop: a ramble, or a script without them
    json.dumps({"summary": "ยาว " * 3000, "chapters": []}),  # Thai writes no full stops
])
def test_a_short_summary_made_from_the_text_stays_short(text):
    digest, _ = read_digest(text, SHAPE)
    assert 0 < len(digest.short_summary) <= 300 and digest.short_summary.endswith("…")
    assert len(digest.summary) > 10_000


@pytest.mark.parametrize("said, kind", [("Meeting.", "meeting"), ("a team meeting", "meeting"),
                                        ("Podcast episode", "podcast"), ("lecture or meeting", "other"),
                                        ("concert", "other"), (None, "other")])
def test_the_kind_the_model_names_is_read_as_one_of_the_kinds(said, kind):
    digest, _ = read_digest(answer([{"start": "0:00", "title": "A"}], kind=said,
                                   action_items=[{"who": "Ann", "what": "call"}]), DigestShape(100.0, STARTS, 10.0, "auto"))
    assert digest.kind == kind and len(digest.action_items) == (kind == "meeting")


def test_points_and_decisions_written_as_objects_keep_their_words():
    text = answer([{"start": "0:00", "title": "A"}], key_points=[{"point": "costs rise"}, {"text": "ship in May"}],
                  decisions=[{"decision": "hire two", "when": "0:40"}])
    digest, _ = read_digest(text, SHAPE)
    assert digest.key_points == ["costs rise", "ship in May"] and digest.decisions == ["hire two"]


def test_a_single_action_item_given_as_an_object_is_kept():
    digest, _ = read_digest(answer([{"start": "0:00", "title": "A"}],
                                   action_items={"who": "Ann", "what": "call Ben", "when": "0:30"}), SHAPE)
    assert [(a.who, a.what, a.said_at) for a in digest.action_items] == [("Ann", "call Ben", 30.0)]


def test_the_longer_summary_keeps_its_paragraphs():
    text = answer([{"start": "0:00", "title": "A"}], summary="They  met.\nThey planned.\n\n\n  Then they   left.\n")
    digest, _ = read_digest(text, SHAPE)
    assert digest.summary == "They met. They planned.\n\nThen they left."
    assert digest.short_summary == "Short."


def test_an_answer_that_is_no_json_is_kept_as_the_summary():
    digest, warnings = read_digest("They talked about the budget. Then they left.", SHAPE)
    assert digest.summary == "They talked about the budget. Then they left."
    assert digest.short_summary == "They talked about the budget." and digest.chapters == []
    assert len(warnings) == 1 and "not the JSON" in warnings[0]


def test_fields_of_the_wrong_type_are_read_or_dropped():
    text = json.dumps({"kind": "podcast", "short_summary": ["Two", "parts."], "summary": 42,
                       "chapters": "0:00 Intro", "key_points": "- one\n- two\n\n", "action_items": [{"what": "x"}]})
    digest, warnings = read_digest(text, DigestShape(100.0, STARTS, 10.0, "auto"))
    assert digest.kind == "podcast" and digest.short_summary == "Two parts." and digest.summary == "42"
    assert digest.key_points == ["one", "two"] and digest.chapters == []
    assert digest.action_items == [] and digest.decisions == []  # a podcast has none
    assert any("chapters are not a list" in w for w in warnings)


def test_action_items_times_outside_are_dropped_and_items_without_words_too():
    digest, warnings = read_digest(answer([{"start": "0:00", "title": "A"}], action_items=[
        {"who": "Ben", "what": "call", "when": "3:00"}, {"who": "Ann", "what": ""}, "write the notes",
        {"who": None, "what": "plan", "when": "1:05"}]), SHAPE)
    assert [(a.who, a.what, a.said_at) for a in digest.action_items] == [
        ("Ben", "call", None), (None, "write the notes", None), (None, "plan", 65.0)]
    assert len(warnings) == 2


@pytest.mark.parametrize("value, seconds", [
    (75, 75.0), ("75", 75.0), ("1:15", 75.0), ("01:15", 75.0), ("[1:15]", 75.0), ("1:02:03", 3723.0),
    ("1 min 15", 75.0), ("12.5", 12.5), ("1m15s", 75.0), ("1:15-2:30", 75.0), ("1:15 – 2:30", 75.0), ("[1:15 - 2:30]", 75.0),
    ("1:15 to 2:30", 75.0), ("00:01:15,500", 75.5), ("-1:15", None), ("1h2m3s", 3723.0), ("2m", 120.0), ("45s", 45.0), (True, None), ("soon", None), (None, None), (float("nan"), None), ([1], None),
])
def test_times_as_models_write_them(value, seconds):
    assert read_time(value) == seconds


def test_snap_takes_the_nearest_sentence_start():
    assert snap(20.0, STARTS) == 25.0 and snap(18.0, STARTS) == 12.3 and snap(200.0, STARTS) == 95.5
    assert snap(7.0, ()) == 7.0


def test_the_transcript_in_the_prompt_is_bounded_by_construction():
    sentences = [Segment(i * 2.0, i * 2.0 + 1.5, "word " * 12) for i in range(20_000)]  # ~11 hours
    text = transcript_text(sentences, TRANSCRIPT_CHARS)
    lines = text.splitlines()
    assert len(text) <= TRANSCRIPT_CHARS and len(lines) > 100
    times = [seconds_of(re.match(r"\[([\d:]+)\]", line).group(1)) for line in lines]
    assert times == sorted(times) and times[-1] > 30_000  # the whole recording, thinned evenly
    short = [Segment(1.0, 2.0, "hello there"), Segment(3.0, 4.0, "  ")]
    assert transcript_text(short, TRANSCRIPT_CHARS) == "[0:01] hello there"


class _Condensing:
    """Stands in for the engine in bounded_notes: each condensing request answers at its word budget."""

    thinking = False

    def __init__(self, words_per_answer=None):
        self.prompts = []
        self.words = words_per_answer

    def ask_text(self, question, options, guard=None):
        self.prompts.append(question)
        asked = int(re.search(r"at most (\d+) words", question).group(1))
        text = " ".join(f"n{i}" for i in range(self.words or asked))  # no loop: words that differ
        return Answer(text, "", text, [], "stop", 0)


@pytest.mark.parametrize("words", [None, 5000])  # a model that keeps to the word count, and one that does not
def test_notes_of_hours_are_condensed_into_the_budget(words):
    engine = _Condensing(words)
    pipeline = Pipeline(engine, PipelineOptions())
    notes = [f"[{i * 8}:00-{i * 8 + 8}:00]\n" + "x" * 1500 for i in range(75)]  # 10 hours of windows
    warnings = []
    text = bounded_notes(pipeline, notes, NOTES_CHARS, warnings)
    assert len(text) <= NOTES_CHARS and engine.prompts
    assert all(len(prompt) < 4 * 1600 + 1000 for prompt in engine.prompts[:19])  # a few windows a request
    assert text.startswith("[0:00-") and "-600:00]" in text  # the spans of the windows condensed together
    assert bool(warnings) == bool(words)  # cut only when condensing did not get there


class _DigestEngine(ScriptedEngine):
    """Notes scripted per window from the phrases it hears (times inside the window); the digest scripted."""

    def __init__(self, digest):
        super().__init__()
        self.digest, self.text_prompts, self.note_windows, self.questions = digest, [], [], []

    def ask(self, audio, question, options, guard=None):
        self.questions.append(question)
        if "take notes" not in question:
            return super().ask(audio, question, options, guard)
        from support.fake_server import phrases_in

        heard = phrases_in(audio)
        self.note_windows.append([p.index for p in heard])
        text = "\n".join(f"at [{int(p.start) // 60}:{int(p.start) % 60:02d}] phrase {p.index}, calm" for p in heard)
        return Answer(text, "", text, [], "stop", 0)

    def ask_text(self, question, options, guard=None):
        self.text_prompts.append(question)
        return Answer(self.digest, "", self.digest, [], "stop", 0)


def test_summarize_listens_in_windows_and_combines_notes_with_the_transcript():
    audio, truth = phrase_recording(90.0, seed=3)
    digest = answer([{"start": "0:00", "title": "A"}, {"start": f"0:{int(truth[4].start) + 2:02d}", "title": "B"}],
                    action_items=[{"who": "Ann", "what": "go", "when": "1:00"}])
    engine = _DigestEngine(digest)
    settings = DigestSettings("meeting", parse_language("de"), "a budget meeting", 10.0)
    pipeline = Pipeline(engine, PipelineOptions(max_request_seconds=30.0))
    result = summarize(pipeline, Recording.from_array("m.wav", audio), settings)
    assert len(engine.note_windows) >= 3  # 90 s in windows of at most 30
    assert sorted(i for window in engine.note_windows for i in window) == [p.index for p in truth]
    prompt = engine.text_prompts[-1]
    for phrase in truth:  # each window's note at its file time, each sentence with its start
        assert f"at [{int(phrase.start) // 60}:{int(phrase.start) % 60:02d}] phrase {phrase.index}" in prompt \
            or f"at [{int(phrase.start) // 60}:{int(phrase.start) % 60 - 1:02d}] phrase {phrase.index}" in prompt
        assert f"phrase {phrase.index}." in prompt
    assert "in German" in prompt and "Context: a budget meeting." in prompt and "at least 10 seconds" in prompt
    assert [c.title for c in result.digest.chapters] == ["A", "B"]
    assert result.digest.chapters[1].start == pytest.approx(truth[4].start, abs=0.02)  # snapped to the sentence
    assert result.digest.language == "de" and result.segments and result.task == "summarize"


def test_a_transcript_given_is_not_made_again():
    audio, truth = phrase_recording(40.0, seed=5)
    engine = _DigestEngine(answer([{"start": "0:00", "title": "A"}]))
    transcript = [Segment(p.start, p.end, f"given {p.index}") for p in truth]
    result = summarize(Pipeline(engine), Recording.from_array("m.wav", audio), DigestSettings(), transcript)
    assert engine.questions and not any("sentence-level" in q for q in engine.questions)  # not transcribed
    assert "given 0" in engine.text_prompts[-1] and result.segments == transcript
