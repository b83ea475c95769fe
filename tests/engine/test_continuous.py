"""Continuous batching: a row that finishes takes the next request, and every answer is the one asked alone."""

import pytest
from support.recordings import synthetic_speechlike

from moss_cli import DecodingOptions
from moss_cli.engine.local.engine import Request
from moss_cli.engine.local.rows import RunningRows

# Clips of very different lengths (12.5 audio tokens a second) and differing answer budgets: with two
# rows, the rows that join meet a running batch both shorter and longer than their prompts.
SECONDS = (1.3, 2.2, 9.1, 1.0, 6.7, 4.0)
BUDGETS = (4, 14, 3, 9, 6, 5)


def requests(options=lambda index, budget: DecodingOptions(max_new_tokens=budget)):
    return [Request(synthetic_speechlike(s, seed=i), "Describe the audio.", options(i, n))
            for i, (s, n) in enumerate(zip(SECONDS, BUDGETS))]


def alone_then_together(engine, asked, rows=2):
    """Each request alone, then all through `rows` rows: (alone, together)."""
    width = engine.batch_size
    engine.batch_size = 1
    try:
        alone = [engine.ask_many([request])[0] for request in asked]
        engine.batch_size = rows
        return alone, engine.ask_many(asked)
    finally:
        engine.batch_size = width


@pytest.fixture
def joins(monkeypatch):
    """(running length, prompt lengths joining it) for every join into a batch that was decoding."""
    seen = []
    original = RunningRows.rebuild

    def rebuild(self, keep, joining=None, joining_rows=(), joining_lengths=(), room=256):
        if keep and joining_lengths:
            seen.append((max(self.lengths[row] for row in keep), list(joining_lengths)))
        return original(self, keep, joining, joining_rows, joining_lengths, room)

    monkeypatch.setattr(RunningRows, "rebuild", rebuild)
    return seen


def assert_same(alone, together):
    assert [a.token_ids for a in together] == [a.token_ids for a in alone]
    assert [a.finish_reason for a in together] == [a.finish_reason for a in alone]
    assert [a.prompt_tokens for a in together] == [a.prompt_tokens for a in alone]


def assert_joined_shorter_and_longer(joins):
    assert any(n < running for running, lengths in joins for n in lengths)
    assert any(n > running for running, lengths in joins for n in lengths)


def test_rows_that_join_mid_decode_get_the_tokens_they_get_alone(tiny_engine, joins):
    alone, together = alone_then_together(tiny_engine, requests())
    assert_same(alone, together)
    assert [len(a.token_ids) for a in together] == list(BUDGETS)  # random weights run to the cap
    assert len(joins) >= 2  # requests waited for a row that was still decoding
    assert_joined_shorter_and_longer(joins)


def test_a_row_that_stops_mid_decode_frees_its_place(tiny_engine, joins, monkeypatch):
    asked = requests()
    plain = tiny_engine.ask_many([asked[1]])[0].token_ids
    stop = next(t for t in plain[3:] if plain.index(t) > 2)  # ends request 1 after a few tokens
    monkeypatch.setattr(tiny_engine, "stop_ids", tiny_engine.stop_ids | {stop})
    alone, together = alone_then_together(tiny_engine, asked)
    assert_same(alone, together)
    assert together[1].finish_reason == "stop" and len(together[1].token_ids) < BUDGETS[1]
    assert joins


def test_sampled_rows_keep_their_seeded_draws(tiny_engine, joins):
    def options(index, budget):  # every other request sampled, each with its own seed
        return DecodingOptions(max_new_tokens=budget, temperature=1.0 if index % 2 else 0.0, seed=index)

    alone, together = alone_then_together(tiny_engine, requests(options), rows=3)
    assert_same(alone, together)
    assert joins


def test_text_only_requests_share_the_rows(tiny_engine):
    asked = requests()[:3] + [Request(None, "Summarise: the cat sat.", DecodingOptions(max_new_tokens=7))]
    alone, together = alone_then_together(tiny_engine, asked)
    assert_same(alone, together)
    assert together[3].token_ids == tiny_engine.ask_text("Summarise: the cat sat.", asked[3].options).token_ids


def test_int8_rows_join_and_run_to_their_own_ends(tiny_checkpoint, joins):
    """int8 quantizes a layer's activations with one scale for the whole batch (model/quantize.py), so a
    row's later tokens may depend on the rows beside it, in any batch: what each row gets alone is its
    prompt's first token (each prompt here is prefilled alone: no two have one length) and its length."""
    from moss_cli import MossAudio

    engine = MossAudio.load(str(tiny_checkpoint), device="cpu", batch_size=1, quantize="int8")
    alone, together = alone_then_together(engine, requests())
    assert [a.token_ids[0] for a in together] == [a.token_ids[0] for a in alone]
    assert [len(a.token_ids) for a in together] == list(BUDGETS)
    assert [a.prompt_tokens for a in together] == [a.prompt_tokens for a in alone]
    assert_joined_shorter_and_longer(joins)


def test_half_precision_rows_join_a_cache_with_keys_as_sdpa_takes_them(tiny_checkpoint, joins, monkeypatch):
    """bfloat16 (a GPU's default): the StaticCache keeps keys untransposed and attention goes through SDPA."""
    from moss_cli import MossAudio

    layouts = []
    original = RunningRows.step
    monkeypatch.setattr(RunningRows, "step", lambda self, tokens: layouts.append(self.cache.keys_transposed)
                        or original(self, tokens))
    engine = MossAudio.load(str(tiny_checkpoint), device="cpu", dtype="bfloat16", batch_size=1)
    alone, together = alone_then_together(engine, requests())
    assert_same(alone, together)
    assert set(layouts) == {False}
    assert_joined_shorter_and_longer(joins)


def test_without_the_fast_step_rows_join_a_dynamic_cache(tiny_engine, joins, monkeypatch):
    from moss_cli.model import decoder

    monkeypatch.setattr(decoder, "supported", lambda lm: False)  # as on a GPU without SDPA
    caches = []
    original = RunningRows.step
    monkeypatch.setattr(RunningRows, "step", lambda self, tokens: caches.append(type(self.cache)) or original(self, tokens))
    alone, together = alone_then_together(tiny_engine, requests())
    assert_same(alone, together)
    assert set(caches) == {type(tiny_engine.model.new_cache())}  # the prefill's kind of cache, grown by joins
    assert_joined_shorter_and_longer(joins)


def test_an_unreadable_file_fails_only_its_own_request(tiny_engine, tmp_path):
    asked = requests()[:3]
    asked[1] = Request(tmp_path / "missing.wav", "Describe the audio.")
    answers = {}
    waiting = list(enumerate(asked))
    tiny_engine.decode_continuously(lambda n: [waiting.pop(0) for _ in range(min(n, len(waiting)))],
                                    answers.__setitem__)
    assert isinstance(answers[1], Exception) and "missing.wav" in str(answers[1])
    assert answers[0].token_ids == tiny_engine.ask_many([asked[0]])[0].token_ids
    assert answers[2].token_ids == tiny_engine.ask_many([asked[2]])[0].token_ids


def test_static_batches_on_request_leave_finished_rows_empty(tiny_engine, joins, monkeypatch):
    """MOSS_CONTINUOUS=0, the benchmark's baseline: batches of batch_size one after another."""
    monkeypatch.setenv("MOSS_CONTINUOUS", "0")
    alone, together = alone_then_together(tiny_engine, requests())
    assert_same(alone, together)
    assert joins == []
