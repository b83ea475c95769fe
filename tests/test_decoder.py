"""The fast decoding step (model/decoder.py) against transformers' own forward pass: bit-identical."""

from __future__ import annotations

import copy

import pytest
import torch

from moss_cli.model import decoder
from moss_cli.model.decoder import StaticCache
from tiny_checkpoint import TinySpec, config_json

from moss_cli.model.config import MossAudioConfig
from moss_cli.model.modeling import MossAudioModel


def random_model(dtype: torch.dtype) -> MossAudioModel:
    spec = TinySpec(hidden=64, intermediate=128, llm_layers=3, heads=4, kv_heads=2, head_dim=16)
    torch.manual_seed(0)
    return MossAudioModel(MossAudioConfig.from_dict(config_json(spec))).to(dtype).eval()


def prefilled(model: MossAudioModel, lengths: list[int]):
    """One cache per prompt of random ids, joined left-padded when the lengths differ."""
    generator = torch.Generator().manual_seed(sum(lengths))
    vocab = model.config.language.vocab_size
    if len(set(lengths)) == 1:
        ids = torch.randint(0, vocab, (len(lengths), lengths[0]), generator=generator)
        cache = model.new_cache()
        return cache, model.prefill(ids, ids < 0, None, cache), None
    caches, logits = [], []
    for n in lengths:
        ids = torch.randint(0, vocab, (1, n), generator=generator)
        caches.append(model.new_cache())
        logits.append(model.prefill(ids, ids < 0, None, caches[-1]))
    width = max(lengths)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, width - n :] = 1
    return model.joined_cache(caches, width), torch.cat(logits), mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lengths", [[37, 37, 37], [37, 20, 45], [9]])
def test_fast_steps_are_bit_identical_to_the_transformers_forward(dtype, lengths):
    model = random_model(dtype)
    assert decoder.supported(model.language_model)
    dynamic, logits, mask = prefilled(model, lengths)
    static = StaticCache.from_dynamic(copy.deepcopy(dynamic), room=4)  # fills up: grows on the way
    positions = None if mask is None else mask.sum(-1, keepdim=True) - 1
    tokens = logits.argmax(-1)[:, None]
    for step in range(12):
        if step == 6 and len(lengths) > 1:  # a row finishes: both caches drop it
            keep = torch.tensor([0, 2])
            dynamic.batch_select_indices(keep)
            static.batch_select_indices(keep)
            tokens, mask = tokens[keep], None if mask is None else mask[keep]
            positions = None if positions is None else positions[keep]
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(len(tokens), 1)], dim=1)
            positions = positions + 1
        expected = model.decode_step(tokens, dynamic, attention_mask=mask, position_ids=positions)
        got = model.decode_step(tokens, static, attention_mask=mask, position_ids=positions)
        assert torch.equal(got, expected), f"step {step}: {(got - expected).abs().max()}"
        tokens = expected.argmax(-1)[:, None]
    assert static.length == dynamic.get_seq_length()
    assert static.capacity > 4 + max(lengths)  # it grew


def test_room_is_reserved_in_steps_not_for_the_whole_token_limit():
    model = random_model(torch.float32)
    dynamic, _, _ = prefilled(model, [10, 10])
    static = model.decoding_cache(dynamic, room=100_000)
    assert static.length == 10 and static.capacity == 10 + decoder.GROWTH


def test_other_attention_kernels_keep_the_transformers_path():
    model = random_model(torch.float32)
    model.language_model.config._attn_implementation = "eager"
    dynamic, _, _ = prefilled(model, [5])
    assert model.decoding_cache(dynamic, room=8) is dynamic
