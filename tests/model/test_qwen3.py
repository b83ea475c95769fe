"""moss's own Qwen3 decoder and Whisper encoder layer (model/qwen3.py, model/encoder.py) against
transformers' modules holding the same weights: bit for bit, in float32 and bfloat16, for every case
the engine runs (a prompt, a prompt after a cached prefix, one new position, left-padded rows)."""

from __future__ import annotations

import pytest
import torch
from support.reference_qwen3 import transformers_qwen3
from support.tiny_checkpoint import TinySpec, config_json

from moss_cli.model.config import MossAudioConfig
from moss_cli.model.encoder import EncoderLayer
from moss_cli.model.qwen3 import KVCache, Qwen3Model

DTYPES = [torch.float32, torch.bfloat16]


def both_decoders(dtype: torch.dtype, kv_heads: int = 2):
    spec = TinySpec(hidden=64, intermediate=128, llm_layers=3, heads=4, kv_heads=kv_heads, head_dim=16)
    torch.manual_seed(0)
    ours = Qwen3Model(MossAudioConfig.from_dict(config_json(spec)).language).to(dtype).eval()
    for parameter in ours.parameters():  # norms away from 1, so that a skipped norm would show
        parameter.data.normal_(0, 0.5)
    return ours, transformers_qwen3(ours)


def reference_run(reference, embeds, cache, **kwargs):
    out = reference(inputs_embeds=embeds, cache=cache, use_cache=True, **kwargs)
    return out.last_hidden_state


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_prompt_then_suffix_then_steps_are_bit_identical(dtype, kv_heads):
    from transformers import DynamicCache

    ours, reference = both_decoders(dtype, kv_heads)
    generator = torch.Generator().manual_seed(kv_heads)
    ours_cache, their_cache = KVCache(), DynamicCache(config=reference.config)
    with torch.inference_mode():
        for length in (23, 5, 1, 1):  # prompt; a suffix after a cached prefix; two single positions
            embeds = torch.randn(2, length, 64, generator=generator).to(dtype)
            got = ours(embeds, ours_cache)
            expected = reference_run(reference, embeds, their_cache)
            assert torch.equal(got, expected), f"{length} positions: {(got - expected).abs().max()}"
    assert torch.equal(ours_cache.layers[2].keys, their_cache.layers[2].keys)
    assert torch.equal(ours_cache.layers[2].values, their_cache.layers[2].values)


@pytest.mark.parametrize("dtype", DTYPES)
def test_left_padded_rows_are_bit_identical(dtype):
    from transformers import DynamicCache

    ours, reference = both_decoders(dtype)
    generator = torch.Generator().manual_seed(3)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4], mask[2, :7] = 0, 0
    ours_cache, their_cache = KVCache(), DynamicCache(config=reference.config)
    with torch.inference_mode():
        for length in (12, 1, 1):
            embeds = torch.randn(3, length, 64, generator=generator).to(dtype)
            positions = (mask.sum(-1, keepdim=True) - length + torch.arange(length)).clamp(min=0)
            got = ours(embeds, ours_cache, mask, positions)
            expected = reference_run(reference, embeds, their_cache, attention_mask=mask, position_ids=positions)
            real = mask[:, -length:].bool()  # padded positions' states are never read
            assert torch.equal(got[real], expected[real]), f"{length}: {(got - expected)[real].abs().max()}"
            mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)


def test_deepstack_is_added_after_its_layer_at_audio_positions():
    ours, reference = both_decoders(torch.float32)
    embeds = torch.randn(1, 9, 64)
    audio = torch.zeros(1, 9, dtype=torch.bool)
    audio[0, 2:6] = True
    taps = [torch.randn(4, 64), torch.randn(4, 64)]

    def hook(k):
        def add(_module, _inputs, output):
            hidden = output.clone()
            hidden[audio] = hidden[audio] + taps[k]
            return hidden
        return add

    handles = [reference.layers[k].register_forward_hook(hook(k)) for k in range(2)]
    with torch.inference_mode():
        got = ours(embeds, KVCache(), deepstack=taps, audio_mask=audio)
        expected = reference(inputs_embeds=embeds, use_cache=False).last_hidden_state
        plain = ours(embeds, KVCache())
    for handle in handles:
        handle.remove()
    assert torch.equal(got, expected) and not torch.equal(got, plain)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_encoder_layer_is_whisper_s(dtype, attention):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    spec = TinySpec()
    audio = MossAudioConfig.from_dict(config_json(spec)).audio
    torch.manual_seed(1)
    ours = EncoderLayer(audio).to(dtype).eval()
    for parameter in ours.parameters():
        parameter.data.normal_(0, 0.3)
    config = WhisperConfig(d_model=audio.d_model, encoder_attention_heads=audio.encoder_attention_heads,
                           encoder_ffn_dim=audio.encoder_ffn_dim, activation_function=audio.activation_function)
    config._attn_implementation = attention
    reference = WhisperEncoderLayer(config).to(dtype).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 50, audio.d_model).to(dtype)
    mask = torch.zeros(3, 1, 1, 50, dtype=dtype)
    mask[1, ..., 31:] = torch.finfo(dtype).min  # a short last window, padded
    with torch.inference_mode():
        got = ours(x, mask, fused=attention == "sdpa")
        expected = reference(x, mask)
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert torch.equal(got, expected)
