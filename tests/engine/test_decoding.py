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
