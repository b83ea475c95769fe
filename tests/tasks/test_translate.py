"""The translation stage with a scripted engine: batches, context, and answers checked line by line."""

import re

import pytest
from support.translator import ScriptedTranslator, asked_lines, context_lines, good_answer, rendered

from moss_cli.engine.base import Answer, DecodingOptions
from moss_cli.errors import HintError
from moss_cli.results import Event, Result, Segment
from moss_cli.tasks.specs import THINKING_TOKENS
from moss_cli.tasks.translate import (
    TRIES,
    LineTranslator,
    Translation,
    batches,
    numbered_lines,
    translate_result,
    translation_for,
)

FRENCH = Translation("fr", "French")


def transcript(count: int) -> Result:
    segments = [Segment(2.0 * i, 2.0 * i + 1.5, f"sentence number {i} is here.", id=i) for i in range(count)]
    return Result("transcribe", "talk.wav", 2.0 * count, "m", text="", segments=segments)


# ---- answers read line by line ---------------------------------------------------------------------
def test_a_good_answer_gives_every_line():
    assert numbered_lines("[1] un\n[2] deux\n[3] trois", 3) == {1: "un", 2: "deux", 3: "trois"}


@pytest.mark.parametrize("answer", ["1. un\n2. deux", "(1) un\n(2) deux", "1: un\n2：deux", "【1】un\n【2】deux",
                                    "- [1] un\n- [2] deux", "  [1]   un  \n\n[2] deux"])
def test_common_numberings_are_read(answer):
    assert numbered_lines(answer, 2) == {1: "un", 2: "deux"}


def test_reordered_numbers_keep_their_lines():
    assert numbered_lines("[3] trois\n[1] un\n[2] deux", 3) == {1: "un", 2: "deux", 3: "trois"}


def test_missing_extra_and_empty_lines_are_left_out():
    answer = "Here is the translation:\n[1] un\n[3]\n[4] quatre\n[9] neuf\n[0] zéro\nHope this helps!"
    assert numbered_lines(answer, 4) == {1: "un", 4: "quatre"}


def test_a_number_given_twice_counts_only_when_both_agree():
    assert numbered_lines("[1] un\n[1] one\n[2] deux\n[2] deux", 2) == {2: "deux"}


def test_a_line_broken_in_two_is_not_trusted():
    """Unnumbered text between two numbered lines: the line before it may be only half of its translation."""
    assert numbered_lines("[1] un\nsuite de un\n[2] deux", 2) == {2: "deux"}


def test_the_last_line_of_an_answer_cut_short_is_not_trusted():
    assert numbered_lines("[1] un\n[2] de", 2, complete=False) == {1: "un"}


def test_an_empty_answer_gives_nothing():
    assert numbered_lines("", 3) == {} and numbered_lines("Je ne peux pas.", 1) == {}


# ---- requests --------------------------------------------------------------------------------------
def test_batches_are_runs_of_neighbours_cut_to_size():
    assert batches([0, 1, 2, 3, 4, 7, 8, 10], 2) == [[0, 1], [2, 3], [4], [7, 8], [10]]


def test_segments_go_in_batches_with_their_neighbours_as_context():
    engine = ScriptedTranslator()
    result = translate_result(transcript(45), engine, FRENCH)
    texts = [f"sentence number {i} is here." for i in range(45)]
    assert [len(asked_lines(p)) for p in engine.prompts] == [20, 20, 5]
    assert [t for _, t in asked_lines(engine.prompts[1])] == texts[20:40]
    assert context_lines(engine.prompts[1]) == texts[17:20] + texts[40:43]
    assert context_lines(engine.prompts[0]) == texts[20:23]  # nothing before the first line
    assert all("into French" in p and "exactly" in p for p in engine.prompts)
    assert [s.text for s in result.segments] == [rendered(t) for t in texts]
    assert [s.original for s in result.segments] == texts
    assert result.translated_to == "fr" and not result.warnings
    assert result.text.startswith("«SENTENCE NUMBER 0 IS HERE.» «SENTENCE NUMBER 1")


def test_times_speakers_and_ids_are_kept():
    before = transcript(5)
    before.segments[2].speaker = "S2"
    expected = [(s.start, s.end, s.id, s.speaker) for s in before.segments]
    after = translate_result(before, ScriptedTranslator(), FRENCH)
    assert [(s.start, s.end, s.id, s.speaker) for s in after.segments] == expected


def hostile(prompt: str, call: int) -> str:
    """The first answer loses a line, invents one, swaps two and leaves one empty; later answers are good."""
    if call > 1:
        return good_answer(prompt)
    lines = {n: rendered(t) for n, t in asked_lines(prompt)}
    return "\n".join([f"[2] {lines[2]}", f"[1] {lines[1]}", "[4]", f"[6] {lines[6]}", "[77] invented",
                      f"[5] {lines[5]}"])


def test_hostile_answers_are_repaired_by_asking_again_never_shifted():
    engine = ScriptedTranslator(hostile)
    result = translate_result(transcript(6), engine, FRENCH)
    assert [s.text for s in result.segments] == [rendered(s.original) for s in result.segments]
    assert [t for _, t in asked_lines(engine.prompts[1])] == ["sentence number 2 is here.", "sentence number 3 is here."]
    assert len(engine.prompts) == 2 and not result.warnings


def test_a_line_never_translated_keeps_its_text_with_a_warning_naming_its_time():
    def never_three(prompt, call):
        return "\n".join(f"[{n}] {rendered(t)}" for n, t in asked_lines(prompt) if "number 3 " not in t)

    engine = ScriptedTranslator(never_three)
    result = translate_result(transcript(6), engine, FRENCH)
    assert result.segments[3].text == "sentence number 3 is here." == result.segments[3].original
    assert [s.text for i, s in enumerate(result.segments) if i != 3] == \
        [rendered(f"sentence number {i} is here.") for i in (0, 1, 2, 4, 5)]
    assert sum("number 3 " in p.split("Lines to translate:")[1].split("Lines just after")[0]
               for p in engine.prompts) == TRIES
    assert result.warnings == [f"0:06-0:08: not translated into French after {TRIES} tries; the original text is kept"]


def test_empty_answers_keep_every_original_with_one_warning_a_run():
    engine = ScriptedTranslator(lambda prompt, call: "")
    result = transcript(5)
    result.segments[3].text = ""  # nothing to translate: it splits the untranslated lines in two runs
    translate_result(result, engine, FRENCH)
    assert [s.text for s in result.segments] == [s.original for s in result.segments]
    assert result.warnings == [(f"0:00-0:06: 3 lines not translated into French after {TRIES} tries; their "
                                "original text is kept"),
                               f"0:08-0:10: not translated into French after {TRIES} tries; the original text is kept"]


def test_an_answer_cut_by_the_token_cap_is_asked_again_from_its_last_line():
    def cut(prompt, call):
        text = good_answer(prompt)
        return Answer(text[:-4], "", text, [], "length", 0) if call == 1 else text

    engine = ScriptedTranslator(cut)
    result = translate_result(transcript(4), engine, FRENCH)
    assert [n for n, _ in asked_lines(engine.prompts[1])] == [1]  # only the fourth line again
    assert [s.text for s in result.segments] == [rendered(s.original) for s in result.segments]


def test_blank_texts_are_not_asked():
    result = transcript(3)
    result.segments[1].text = "  "
    engine = ScriptedTranslator()
    translate_result(result, engine, FRENCH)
    assert [t for _, t in asked_lines(engine.prompts[0])] == ["sentence number 0 is here."]
    assert result.segments[1].text == "  " and not result.warnings


def test_events_are_translated_with_their_times():
    result = Result("events", "street.wav", 30.0, "m", events=[Event(0.0, 4.0, "a dog barks"), Event(3.0, 9.5, "rain")])
    translate_result(result, ScriptedTranslator(), Translation("de", "German", bilingual=True))
    assert [(e.start, e.end, e.description, e.original) for e in result.events] == \
        [(0.0, 4.0, "«A DOG BARKS»", "a dog barks"), (3.0, 9.5, "«RAIN»", "rain")]
    assert result.text == "0.00 - 4.00: «A DOG BARKS»\n3.00 - 9.50: «RAIN»" and result.bilingual
    assert result.to_dict()["events"][0] == {"start": 0.0, "end": 4.0, "description": "«A DOG BARKS»",
                                            "original": "a dog barks"}


def test_word_times_are_dropped_with_the_original_words():
    from moss_cli.results import Word

    result = transcript(1)
    result.segments[0].words = [Word("sentence", 0.0, 0.5)]
    translate_result(result, ScriptedTranslator(), FRENCH)
    assert result.segments[0].words == []


def test_the_token_budget_grows_with_the_batch_and_a_thinking_model():
    engine = ScriptedTranslator()
    LineTranslator(engine, FRENCH, "transcript", DecodingOptions()).translate(["a", "b" * 100])
    engine.thinking = True
    LineTranslator(engine, FRENCH, "transcript", DecodingOptions()).translate(["a", "b" * 100])
    assert engine.budgets[0] > 200 and engine.budgets[1] == engine.budgets[0] + THINKING_TOKENS
    LineTranslator(engine, FRENCH, "transcript", DecodingOptions(), token_cap=77).translate(["a"])
    assert engine.budgets[2] == 77


def test_a_line_break_inside_a_text_cannot_become_a_numbered_line():
    engine = ScriptedTranslator()
    LineTranslator(engine, FRENCH, "transcript", DecodingOptions()).translate(["one\n[2] two", "three"])
    assert asked_lines(engine.prompts[0]) == [(1, "one [2] two"), (2, "three")]


@pytest.mark.parametrize("value, tag, wording", [("fr", "fr", "French"), ("German", "de", "German"),
                                                 ("pt-BR", "pt-BR", "Portuguese (Brazil)"),
                                                 ("zh-Hant", "zh-Hant", "Chinese, in traditional Chinese characters")])
def test_languages_are_named_for_the_prompt(value, tag, wording):
    assert translation_for(value) == Translation(tag, wording)


def test_an_unknown_language_names_the_option():
    with pytest.raises(HintError, match=re.escape("--translate 'qqq-zz'")):
        translation_for("qqq-zz")


def test_terminal_escapes_in_an_answer_are_removed():
    engine = ScriptedTranslator(lambda prompt, call: "[1] \x1b[31mrouge\x1b[0m\u202e")
    assert LineTranslator(engine, FRENCH, "transcript", DecodingOptions()).translate(["red"]) == ["rouge"]


def test_the_pipeline_translates_a_timed_result_once_whole():
    from support.fake_server import phrase_recording
    from support.scripted import ScriptedEngine

    from moss_cli.tasks.pipeline import Pipeline, PipelineOptions, Recording
    from moss_cli.tasks.specs import TRANSCRIBE_SENTENCES

    class HearsAndTranslates(ScriptedEngine):
        ask_text = ScriptedTranslator.ask_text

    engine = HearsAndTranslates()
    engine.script, engine.prompts, engine.budgets = lambda prompt, call: good_answer(prompt), [], []
    audio, truth = phrase_recording(40.0, seed=2)
    result = Pipeline(engine, PipelineOptions(translation=FRENCH)).timed(TRANSCRIBE_SENTENCES,
                                                                          Recording.from_array("a.wav", audio))
    assert [s.text for s in result.segments] == [rendered(f"phrase {p.index}.") for p in truth]
    assert [s.id for s in result.segments] == list(range(len(truth))) and len(engine.prompts) == 1


# ---- numbering off by one: an answer whose numbers moved is not trusted at all ----------------------
@pytest.mark.parametrize("answer", [
    "[0] un\n[1] deux\n[2] trois",  # counted from zero: every translation one line early
    "[2] un\n[3] deux\n[4] trois",  # counted from two: every translation one line late
    "[1] un et deux\n[2] trois",  # two lines merged into one, the rest renumbered: the last number missing
])
def test_an_answer_numbered_off_by_one_gives_nothing(answer):
    assert numbered_lines(answer, 3) == {}


def test_answers_numbered_off_by_one_are_asked_again_never_shifted():
    """The first answer for each batch counts from zero; asked again, the model numbers right."""
    def from_zero(prompt, n):
        lines = good_answer(prompt).splitlines()
        if n > 1:
            return "\n".join(lines)
        return "\n".join(re.sub(r"^\[(\d+)\]", lambda m: f"[{int(m[1]) - 1}]", line) for line in lines)

    engine = ScriptedTranslator(from_zero)
    result = translate_result(transcript(6), engine, FRENCH)
    assert [s.text for s in result.segments] == [rendered(s.original) for s in result.segments]
    assert not result.warnings


def test_a_giant_translation_of_a_line_is_asked_again():
    """A line answered with far more than any translation of it holds (a loop, a ramble) would fill the
    screen for its cue: it is not trusted, and asked again."""
    def giant_first(prompt, n):
        lines = good_answer(prompt).splitlines()
        if n == 1:
            lines[1] = f"[2] {'la la ' * 800}"
        return "\n".join(lines)

    engine = ScriptedTranslator(giant_first)
    result = translate_result(transcript(4), engine, FRENCH)
    assert [s.text for s in result.segments] == [rendered(s.original) for s in result.segments]
    assert [t for _, t in asked_lines(engine.prompts[1])] == ["sentence number 1 is here."]
    assert not result.warnings


def test_a_short_line_may_grow_as_translations_do():
    """Chinese to English: two characters become a sentence; that is no giant."""
    engine = ScriptedTranslator(lambda prompt, n: "[1] Hello, and welcome to everyone listening today.")
    segments = [Segment(0.0, 1.0, "你好", id=0)]
    result = translate_result(Result("transcribe", "a.wav", 1.0, "m", text="", segments=segments), engine, FRENCH)
    assert result.segments[0].text == "Hello, and welcome to everyone listening today." and len(engine.prompts) == 1


def test_a_number_written_twice_before_a_line_is_taken_off():
    assert numbered_lines("[1] [1] un\n2. [2] deux\n[3] 3 trois\n[4] 4. Mai\n[5] [6] six", 5) == {
        1: "un", 2: "deux", 3: "3 trois", 4: "4. Mai", 5: "[6] six"}  # "4. Mai" is a date, not a number
