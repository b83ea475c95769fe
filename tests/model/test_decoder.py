"""The fast decoding step (model/decoder.py) against transformers' own forward pass: bit-identical with
SDPA, float32 rounding apart where attention is computed by products (CPU, float32)."""

from __future__ import annotations

import copy

import pytest
import torch
from support.padding import left_padded_mask
from support.tiny_checkpoint import TinySpec, config_json
from torch.nn import functional as F

from moss_cli.model import decoder
from moss_cli.model.config import MossAudioConfig
from moss_cli.model.decoder import StaticCache
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
    return model.joined_cache(caches, max(lengths)), torch.cat(logits), left_padded_mask(lengths)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lengths", [[37, 37, 37], [37, 20, 45], [9]])
def test_fast_steps_compute_what_the_transformers_forward_does(dtype, lengths):
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
        if dtype == torch.float32:  # attention by plain products on CPU: float32 rounding apart
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            assert torch.equal(got.argmax(-1), expected.argmax(-1))
        else:  # SDPA, as transformers calls it
            assert torch.equal(got, expected), f"step {step}: {(got - expected).abs().max()}"
        tokens = expected.argmax(-1)[:, None]
    assert static.length == dynamic.get_seq_length()
    assert static.capacity > 4 + max(lengths)  # it grew


def test_room_is_reserved_in_steps_not_for_the_whole_token_limit():
    model = random_model(torch.float32)
    dynamic, _, _ = prefilled(model, [10, 10])
    static = model.decoding_cache(dynamic, room=100_000)
    assert static.length == 10 and static.capacity == 10 + decoder.GROWTH


def test_eager_attention_keeps_the_full_forward_path():
    model = random_model(torch.float32)
    model.language_model.config.attention = "eager"
    dynamic, _, _ = prefilled(model, [5])
    assert model.decoding_cache(dynamic, room=8) is dynamic


@pytest.mark.parametrize("masked", [False, True])
def test_attention_by_products_is_sdpa_to_float32_rounding(masked):
    from torch.nn import functional as F

    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 8, 1, 16, generator=generator)
    keys, values = torch.randn(2, 3, 2, 40, 16, generator=generator)
    keep = None
    if masked:
        keep = torch.ones(3, 1, 1, 40, dtype=torch.bool)
        keep[1, ..., :15] = False  # a left-padded row
    expected = F.scaled_dot_product_attention(query, keys, values, attn_mask=keep, scale=0.25, enable_gqa=True)
    got = decoder._attention_by_products(query, keys.transpose(-1, -2).contiguous(), values, 0.25, keep)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)



def test_cpu_float32_cache_keeps_keys_transposed_and_grows_along_positions():
    model = random_model(torch.float32)
    dynamic, _, _ = prefilled(model, [7, 7])
    static = StaticCache.from_dynamic(copy.deepcopy(dynamic), room=1)
    assert static.keys_transposed and static.keys[0].shape[-1] == static.capacity == 8
    torch.testing.assert_close(static.filled_keys(static.keys[0], 7), dynamic.layers[0].keys.transpose(-1, -2))
    key, value = torch.randn(2, 2, 2, 1, 16)
    for _ in range(2):  # the second append finds the cache full: it grows
        keys, values = static.append(0, key, value)
        static.length += 1
    assert static.capacity == 9 + decoder.GROWTH - 1 and keys.shape[-1] == values.shape[-2] == 9
    assert torch.equal(keys[..., -1:], key.transpose(-1, -2)) and torch.equal(keys[..., :7], static.keys[0][..., :7])
    assert torch.equal(static.filled_keys(static.keys[0], 7), dynamic.layers[0].keys.transpose(-1, -2))
    assert not StaticCache.from_dynamic(prefilled(random_model(torch.bfloat16), [5])[0], room=1).keys_transposed


@pytest.mark.parametrize("shape", [(5, 1, 64), (3, 1, 4, 16), (1, 37, 2560)])
def test_rms_norm_in_one_call_is_bit_identical_to_qwen3s_in_float32(shape):
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    generator = torch.Generator().manual_seed(len(shape))
    norm = Qwen3RMSNorm(shape[-1], eps=1e-6)
    norm.weight.data = torch.randn(shape[-1], generator=generator)
    for scale in (1e-3, 1.0, 1e3):
        x = torch.randn(*shape, generator=generator) * scale
        assert torch.equal(decoder._norm(norm, x, lean=True), norm(x))



def test_more_padding_changes_no_bit_of_a_row():
    """CPU float32: each row's attention runs over its own positions, so how far a row is padded changes
    none of its bits (continuous batching pads every row that joins a longer batch)."""
    model = random_model(torch.float32)
    lengths = [37, 20, 45]
    generator = torch.Generator().manual_seed(1)
    caches, hidden = [], []
    for n in lengths:
        ids = torch.randint(0, model.config.language.vocab_size, (1, n), generator=generator)
        caches.append(model.new_cache())
        hidden.append(model.prefill_hidden(ids, ids < 0, None, caches[-1]))
    tokens = model.logits(torch.cat(hidden)).argmax(-1)[:, None]
    batches = []
    for width in (max(lengths), max(lengths) + 29):  # the same rows, padded further on the left
        mask = left_padded_mask(lengths, width)
        batches.append([StaticCache.from_dynamic(model.joined_cache(caches, width), room=8), mask])
    for _ in range(5):
        got = []
        for batch in batches:
            batch[1] = torch.cat([batch[1], batch[1].new_ones(len(lengths), 1)], dim=1)
            got.append(model.step_hidden(tokens, batch[0], attention_mask=batch[1],
                                         position_ids=batch[1].sum(-1, keepdim=True) - 1))
        assert torch.equal(got[0], got[1])
        tokens = model.logits(got[0]).argmax(-1)[:, None]


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("shape", [(2048, 512), (1536, 512), (512, 1536), (1000, 64), (151936, 64), (7, 33)])
def test_a_one_row_product_on_every_thread_keeps_the_one_row_products_bits(thread_count, threads, shape):
    """model/decoder.one_row_linear cuts the weight's rows into one block per thread: every output is the
    one-row product's, bit for bit (the official code decodes through the one-row product)."""
    thread_count(threads)
    generator = torch.Generator().manual_seed(threads)
    weight = torch.randn(*shape, generator=generator)
    for scale in (1e-3, 1.0, 50.0):
        x = torch.randn(1, 1, shape[1], generator=generator) * scale
        assert torch.equal(decoder.one_row_linear(x, weight), F.linear(x, weight))
    cut = decoder._parts(x, weight, None)
    assert cut > 1 and shape[0] % cut == 0 or shape == (7, 33) and cut == 1


def test_the_one_row_product_stays_where_blocks_would_round_otherwise(thread_count, monkeypatch):
    thread_count(2)
    weight, x = torch.randn(256, 48), torch.randn(1, 48)
    assert decoder._parts(x, weight, torch.zeros(256)) == 1  # a bias: BLAS adds it inside the product
    assert decoder._parts(torch.randn(2, 48), weight, None) == 1  # several rows: oneDNN's
    assert decoder._parts(x, weight.t().contiguous().t(), None) == 1  # column-major: no block view
    thread_count(1)
    assert decoder._parts(x, weight, None) == 1
    thread_count(2)
    # A BLAS whose blocks round differently: the probe sees it and the one-row product stays.
    monkeypatch.setattr(decoder, "_SPLIT_CHECKED", {})
    monkeypatch.setattr(decoder, "_by_parts", lambda x, w, parts: F.linear(x, w) * (1 + 2**-20))
    assert torch.equal(decoder.one_row_linear(x, weight), F.linear(x, weight))
    assert list(decoder._SPLIT_CHECKED.values()) == [False]
