"""Batched and prefix-sharing generation give the tokens one-at-a-time decoding gives."""

import pytest
from support.recordings import synthetic_speechlike

from moss_cli import DecodingOptions, RepetitionGuard
from moss_cli.engine.local.engine import Request


def clips():
    return [synthetic_speechlike(s, seed=i) for i, s in enumerate((1.3, 4.0, 6.7, 2.2, 9.1))]


def test_batched_requests_match_single_requests(tiny_engine):
    questions = ["Describe the audio.", "Transcribe the audio.", "What is it?", "Hi", "Is there music playing?"]
    budgets = [5, 9, 7, 12, 3]
    requests = [Request(a, q, DecodingOptions(max_new_tokens=n)) for a, q, n in zip(clips(), questions, budgets)]
    single = [tiny_engine.ask(r.audio, r.question, r.options) for r in requests]
    tiny_engine.batch_size = 4
    try:
        batched = tiny_engine.ask_many(requests)
    finally:
        tiny_engine.batch_size = 1
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]
    assert [a.finish_reason for a in batched] == [a.finish_reason for a in single]
    assert [len(a.token_ids) for a in batched] == budgets  # random weights never say <|im_end|> this soon


def test_batched_encoder_matches_single(tiny_engine):
    from moss_cli.audio.features import log_mel

    mels = [log_mel(a) for a in clips()]
    together = tiny_engine.model.encode_many(mels)
    for mel, state in zip(mels, together):
        alone = tiny_engine.model.encode_audio(mel)
        assert (state.last_hidden - alone.last_hidden).abs().max() < 1e-5
        assert all((a - b).abs().max() < 1e-5 for a, b in zip(state.taps, alone.taps))


def test_guard_stops_rows_independently(tiny_engine):
    guard = RepetitionGuard(max_ngram=4, min_repeats=2, min_span=2)
    requests = [Request(a, "Describe the audio.", DecodingOptions(max_new_tokens=40), guard) for a in clips()[:3]]
    tiny_engine.batch_size = 3
    try:
        batched = tiny_engine.ask_many(requests)
    finally:
        tiny_engine.batch_size = 1
    single = [tiny_engine.ask(r.audio, r.question, r.options, guard) for r in requests]
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]


def test_questions_share_one_prefill(reference_or_tiny):
    engine, audio, cases = reference_or_tiny
    answers = engine.ask_questions(audio, [c["prompt"] for c in cases], DecodingOptions(max_new_tokens=cases[0]["max_new_tokens"]))
    assert [a.token_ids for a in answers] == [c["generated_ids"] for c in cases]


@pytest.fixture
def reference_or_tiny(shared_fixtures):
    """The golden cases that share a recording: their answers, asked together."""
    import json

    from moss_cli import MossAudio

    golden = json.loads((shared_fixtures / "moss-tiny-ref" / "golden.json").read_text())["cases"]
    engine = MossAudio.load(str(shared_fixtures / "moss-tiny-ref"), device="cpu")
    cases = [c for c in golden if c["audio"] == golden[0]["audio"]]
    return engine, shared_fixtures / "audio" / cases[0]["audio"], cases


def test_equal_length_prompts_batch_without_a_mask(tiny_engine, monkeypatch):
    """Same-length prompts share one unmasked prefill; different lengths are prefilled alone."""
    from moss_cli.model.modeling import MossAudioModel

    seen = []
    original = MossAudioModel.prefill_hidden
    monkeypatch.setattr(MossAudioModel, "prefill_hidden", lambda self, ids, *a: seen.append(ids.shape) or original(self, ids, *a))
    audio = [synthetic_speechlike(3.0, seed=s) for s in range(3)]
    requests = [Request(a, "Describe the audio.", DecodingOptions(max_new_tokens=6)) for a in audio]
    single = [tiny_engine.ask(r.audio, r.question, r.options) for r in requests]
    seen.clear()
    tiny_engine.batch_size = 3
    try:
        batched = tiny_engine.ask_many(requests)
        assert len(seen) == 1 and seen[0][0] == 3  # one prefill of three rows
        seen.clear()
        tiny_engine.ask_many([requests[0], Request(audio[1], "Hi", DecodingOptions(max_new_tokens=6))])
        assert [shape[0] for shape in seen] == [1, 1]  # lengths differ: one row at a time
    finally:
        tiny_engine.batch_size = 1
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]


def test_cpu_head_keeps_its_numbers_and_layout(tiny_checkpoint):
    import torch
    from safetensors.torch import load_file

    from moss_cli.engine.local.engine import MossAudio

    model = MossAudio.load(str(tiny_checkpoint), device="cpu").model
    head = model.lm_head.weight
    stored = load_file(str(tiny_checkpoint / "model.safetensors"))["lm_head.weight"]
    assert head.stride(1) == 1 and torch.equal(head, stored)  # row-major, as stored: the screen reads rows
    assert model.greedy_screen is not None
    rows = torch.randn(5, head.shape[1], generator=torch.Generator().manual_seed(0))
    for batch in (rows[:1], rows):  # one row (rows @ head.T) and several (head @ rows.T)
        assert torch.allclose(model.logits(batch), batch @ stored.T, atol=1e-5)
