import pytest
import torch

from moss_cli.engine.base import DecodingOptions, RepetitionGuard, split_reasoning
from moss_cli.engine.local.sampling import TokenSampler


@pytest.mark.parametrize(
    "raw,reasoning,answer",
    [
        ("plain answer", "", "plain answer"),
        ("<think>\n</think>\n\nHello there.", "", "Hello there."),
        ("<think>The speaker is calm.</think>\n\nA calm voice.", "The speaker is calm.", "A calm voice."),
        ("<think>cut off by the token cap", "cut off by the token cap", ""),
        ("opened in the prompt</think>\nAnswer", "opened in the prompt", "Answer"),
        ("  spaced  \n", "", "spaced"),
    ],
)
def test_split_reasoning(raw, reasoning, answer):
    assert split_reasoning(raw) == (reasoning, answer)


def test_repetition_guard():
    guard = RepetitionGuard(max_ngram=8, min_repeats=4, min_span=16)
    assert guard.is_looping([1, 2, 3] + [7, 8, 9] * 6)
    assert guard.is_looping([5] * 16)
    assert not guard.is_looping([5] * 15)
    assert not guard.is_looping(list(range(100)))
    assert not guard.is_looping([1, 2, 1, 2, 1, 2, 3])


def test_decoding_option_validation():
    with pytest.raises(ValueError):
        DecodingOptions(temperature=-1)
    with pytest.raises(ValueError):
        DecodingOptions(top_p=0)
    with pytest.raises(ValueError):
        DecodingOptions(max_new_tokens=0)


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    draws = lambda seed: [TokenSampler(DecodingOptions(temperature=1.0, seed=seed), torch.device("cpu"))(logits) for _ in range(5)]
    assert draws(1) == draws(1)
    greedy = TokenSampler(DecodingOptions(), torch.device("cpu"))(logits)
    assert greedy == int(logits.argmax())
    top1 = TokenSampler(DecodingOptions(temperature=2.0, top_k=1, seed=4), torch.device("cpu"))
    assert all(top1(logits) == greedy for _ in range(10))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 50, 1.0), (0.7, 0, 0.9), (1.3, 20, 0.8), (0.5, 1, 0.5),
                                                     (2.0, 0, 1.0), (1.0, 200_000, 0.95)])
def test_warping_is_transformers_warpers_arithmetic(temperature, top_k, top_p):
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from moss_cli.engine.local.sampling import warped

    options = DecodingOptions(temperature=temperature, top_k=top_k, top_p=top_p, seed=7)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    generator = torch.Generator().manual_seed(int(temperature * 10) + top_k)
    for _ in range(5):
        logits = torch.randn(1, 151_936, generator=generator) * 4
        expected = warpers(None, logits)
        assert torch.equal(warped(logits, options), expected)
        reference = torch.Generator().manual_seed(7)
        draws = [int(torch.multinomial(torch.softmax(expected, dim=-1), 1, generator=reference)) for _ in range(3)]
        sampler = TokenSampler(options, torch.device("cpu"))
        assert [sampler(logits) for _ in range(3)] == draws
