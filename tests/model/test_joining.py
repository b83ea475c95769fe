"""Joined projections (model/joining.py): the CPU float32 decoding step with query/key/value and
gate/up as one product each computes the separate products' numbers, bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from support.padding import left_padded_mask
from support.tiny_checkpoint import TinySpec, config_json

from moss_cli.model import joining
from moss_cli.model.config import MossAudioConfig
from moss_cli.model.decoder import StaticCache
from moss_cli.model.modeling import MossAudioModel


def random_model(**sizes) -> MossAudioModel:
    spec = TinySpec(**{"hidden": 64, "intermediate": 128, "llm_layers": 3, "heads": 4, "kv_heads": 2, "head_dim": 16,
                       **sizes})
    torch.manual_seed(0)
    model = MossAudioModel(MossAudioConfig.from_dict(config_json(spec))).eval()
    for parameter in model.parameters():  # weights off a 64-byte boundary, as a mapped safetensors file leaves them
        parameter.data = _shifted(parameter.data, 2)
    return model


def _shifted(tensor: torch.Tensor, elements: int) -> torch.Tensor:
    buffer = torch.empty(tensor.numel() + 16, dtype=tensor.dtype)
    start = (16 - buffer.data_ptr() % 64 // tensor.element_size() + elements) % 16
    out = buffer[start : start + tensor.numel()].view(tensor.shape)
    out.copy_(tensor)
    return out


def decoded(model: MossAudioModel, lengths: list[int], steps: int = 8) -> list[torch.Tensor]:
    """Each step's hidden states for random prompts of `lengths` (left-padded when they differ)."""
    generator = torch.Generator().manual_seed(sum(lengths))
    caches, hidden = [], []
    for n in lengths:
        ids = torch.randint(0, model.config.language.vocab_size, (1, n), generator=generator)
        caches.append(model.new_cache())
        hidden.append(model.prefill_hidden(ids, ids < 0, None, caches[-1]))
    mask = left_padded_mask(lengths)
    padded = len(set(lengths)) > 1
    cache = StaticCache.from_dynamic(model.joined_cache(caches, max(lengths)) if len(lengths) > 1 else caches[0], room=4)
    tokens = model.logits(torch.cat(hidden)).argmax(-1)[:, None]
    states = []
    for _ in range(steps):
        mask = torch.cat([mask, mask.new_ones(len(lengths), 1)], dim=1)
        states.append(model.step_hidden(tokens, cache, attention_mask=mask if padded else None,
                                        position_ids=mask.sum(-1, keepdim=True) - 1 if padded else None))
        tokens = model.logits(states[-1]).argmax(-1)[:, None]
    return states


@pytest.mark.parametrize("lengths", [[23], [23, 23], [23, 9, 31]])
@pytest.mark.parametrize("threads", [1, 2])
def test_joined_projections_decode_the_separate_projections_numbers_bit_for_bit(thread_count, lengths, threads):
    thread_count(threads)
    separate = random_model()
    joined = copy.deepcopy(separate)
    for mine, theirs in zip(joined.parameters(), separate.parameters()):  # deepcopy realigned them
        mine.data = _shifted(theirs.data, 2)
    assert joining.join_projections(joined.language_model) == 2 * 3  # every layer, both groups
    assert all(hasattr(layer.self_attn, "joined") for layer in joined.language_model.layers)
    for got, expected in zip(decoded(joined, lengths), decoded(separate, lengths)):
        assert torch.equal(got, expected)


def test_the_projections_are_views_of_the_joined_weight_nothing_is_stored_twice():
    model = random_model()
    layer = model.language_model.layers[0]
    before = [p.clone() for p in (layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight, layer.mlp.up_proj.weight)]
    joining.join_projections(model.language_model)
    attn, mlp = layer.self_attn, layer.mlp
    for projection in (attn.q_proj, attn.k_proj, attn.v_proj):
        assert projection.weight.untyped_storage().data_ptr() == attn.joined.weight.untyped_storage().data_ptr()
    assert mlp.gate_proj.weight.untyped_storage().data_ptr() == mlp.joined.weight.untyped_storage().data_ptr()
    assert all(torch.equal(a, b) for a, b in zip(before, (attn.q_proj.weight, attn.k_proj.weight, mlp.up_proj.weight)))
    assert attn.q_proj.weight.data_ptr() % 64 == 8  # where the separate weight started (2 floats past a boundary)


def test_projections_that_would_round_differently_stay_separate(monkeypatch):
    model = random_model()
    monkeypatch.setattr(joining, "_bit_equal", lambda weight, parts, rows: rows > 1)
    assert joining.join_projections(model.language_model) == 0
    assert not any(hasattr(layer.self_attn, "joined") or hasattr(layer.mlp, "joined")
                   for layer in model.language_model.layers)
    layer = model.language_model.layers[0]
    layer.self_attn.k_proj.bias = torch.nn.Parameter(torch.zeros(layer.self_attn.k_proj.out_features))
    monkeypatch.undo()
    joining.join_projections(model.language_model)
    assert not hasattr(layer.self_attn, "joined") and hasattr(layer.mlp, "joined")  # a bias: BLAS adds it inside
