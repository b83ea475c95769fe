"""transformers' own Qwen3Model holding the weights of moss's decoder (model/qwen3.py): the reference
the tests compare moss's decoder with, bit for bit."""

from __future__ import annotations

import torch


def transformers_qwen3(lm):
    """A transformers Qwen3Model (SDPA attention, as transformers picks for it) with `lm`'s config and weights."""
    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3Model

    ours = lm.config
    config = Qwen3Config(
        vocab_size=ours.vocab_size, hidden_size=ours.hidden_size, intermediate_size=ours.intermediate_size,
        num_hidden_layers=ours.num_hidden_layers, num_attention_heads=ours.num_attention_heads,
        num_key_value_heads=ours.num_key_value_heads, head_dim=ours.head_dim, hidden_act=ours.hidden_act,
        max_position_embeddings=ours.max_position_embeddings, rms_norm_eps=ours.rms_norm_eps,
        rope_theta=ours.rope_theta, attention_bias=ours.attention_bias, pad_token_id=ours.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    weight = lm.embed_tokens.weight
    with torch.device(weight.device):
        reference = Qwen3Model(config).to(weight.dtype)
    reference.load_state_dict(lm.state_dict(), strict=True)
    return reference.eval()
