"""The Qwen3 decoder of MOSS-Audio: transformers' Qwen3 operations, without transformers' model code.

Importing transformers' `modeling_qwen3` pulls in its whole modeling stack (torch._dynamo,
torch.distributed.tensor, scipy...): about 2 s of every start. The modules here carry the same
attribute names (the checkpoint's keys) and run the same operations, in the same order and dtypes,
as transformers' Qwen3Model with SDPA attention: RMSNorm in float32 then cast back, rotary cos/sin
computed in float32, and SDPA called with the arguments transformers' SDPA path passes for each case
(tests/model/test_qwen3.py compares them bit for bit). "eager" attention is kept for the benchmark's
baseline, as transformers' eager path computes it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError
from .config import LanguageConfig

ACTIVATIONS = {"silu": F.silu, "swish": F.silu, "gelu": F.gelu, "relu": F.relu}


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden.to(dtype)


class RotaryEmbedding(nn.Module):
    """cos and sin of each position (default RoPE), computed in float32 and cast to the states' dtype."""

    def __init__(self, config: LanguageConfig):
        super().__init__()
        dim = config.head_dim
        # On the CPU whatever the default device: transformers computes them there too, and a model built
        # on the meta device (loading.py) would otherwise import torch._dynamo for meta arithmetic.
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float, device="cpu") / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)  # (default RoPE scales them by 1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """q, k (B, heads, S, D); cos, sin (B, S, D)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, kv_heads, L, D) -> (B, kv_heads * groups, L, D), each key/value head repeated for its queries."""
    batch, heads, length, dim = states.shape
    if groups == 1:
        return states
    return states[:, :, None].expand(batch, heads, groups, length, dim).reshape(batch, heads * groups, length, dim)


class Attention(nn.Module):
    def __init__(self, config: LanguageConfig, index: int):
        super().__init__()
        self.config, self.layer_idx = config, index
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, hidden: torch.Tensor, cos_sin, mask: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """`mask`: None (causal over a prompt with nothing before it, or one new position) or a boolean
        (B, 1, S, L) of the positions each query sees."""
        input_shape = hidden.shape[:-1]
        shape = (*input_shape, -1, self.head_dim)
        query, key, value = self.projections(hidden)
        query = self.q_norm(query.view(shape)).transpose(1, 2)
        key = self.k_norm(key.view(shape)).transpose(1, 2)
        value = value.view(shape).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, *cos_sin)
        key, value = cache.update(key, value, self.layer_idx)
        if self.config.attention == "eager":
            out = self._eager(query, key, value, mask)
        else:
            out = self._sdpa(query, key, value, mask)
        return self.o_proj(out.reshape(*input_shape, -1).contiguous())

    def projections(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The query, key and value projections of `hidden`; one product where an int8 model joined them
        (`qkv_proj`, model/joining.py)."""
        joined = self._modules.get("qkv_proj")
        if joined is None:
            return self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden)
        kv_size = self.config.num_key_value_heads * self.head_dim
        return joined(hidden).split([joined.out_features - 2 * kv_size, kv_size, kv_size], dim=-1)

    def _sdpa(self, query, key, value, mask) -> torch.Tensor:
        """What transformers' sdpa_attention_forward passes: GQA by `enable_gqa` without a mask; with one,
        one query position's heads grouped by key/value head, several positions' keys repeated."""
        positions, groups = query.shape[2], self.num_key_value_groups
        extra = {}
        if groups > 1:
            if mask is None and key.shape[-1] == value.shape[-1] <= 256:
                extra["enable_gqa"] = True
            elif positions == 1:
                batch, heads, _, dim = query.shape
                query = query.reshape(batch, heads // groups, groups, dim)
            else:
                key, value = repeat_kv(key, groups), repeat_kv(value, groups)
        causal = positions > 1 and mask is None
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, scale=self.scaling,
                                             is_causal=causal, **extra)
        return out.reshape(out.shape[0], -1, positions, value.shape[-1]).transpose(1, 2).contiguous()

    def _eager(self, query, key, value, mask) -> torch.Tensor:
        if mask is None:  # transformers' eager path always gets a mask
            mask = causal_mask(query.shape[0], query.shape[2], key.shape[2], None, query.device)
        additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
        additive = additive.masked_fill(~mask, torch.finfo(query.dtype).min)
        key, value = repeat_kv(key, self.num_key_value_groups), repeat_kv(value, self.num_key_value_groups)
        weights = torch.matmul(query, key.transpose(2, 3)) * self.scaling + additive
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        return torch.matmul(weights, value).transpose(1, 2).contiguous()


class MLP(nn.Module):
    def __init__(self, config: LanguageConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        if config.hidden_act not in ACTIVATIONS:
            raise CheckpointError(f"config.json: language_config hidden_act {config.hidden_act!r} is not supported")
        self.act_fn = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = self._modules.get("gate_up_proj")  # an int8 model's gate and up projections as one
        if joined is not None:
            gate, up = joined(x).chunk(2, dim=-1)
            return self.down_proj(self.act_fn(gate) * up)
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: LanguageConfig, index: int):
        super().__init__()
        self.self_attn = Attention(config, index)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden: torch.Tensor, cos_sin, mask, cache: KVCache) -> torch.Tensor:
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), cos_sin, mask, cache)
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class LayerKV:
    """One layer's cached keys and values (B, kv_heads, L, head_dim)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys, self.values = keys, values


class KVCache:
    """Keys and values of every layer, grown by concatenation: the prefill's cache (transformers'
    DynamicCache does the same). Decoding copies it into model/decoder.py's StaticCache."""

    def __init__(self):
        self.layers: list[LayerKV] = []

    def update(self, keys: torch.Tensor, values: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append positions to layer `index`; all its positions."""
        if index == len(self.layers):
            self.layers.append(LayerKV(keys, values))
        else:
            layer = self.layers[index]
            layer.keys = torch.cat([layer.keys, keys], dim=-2)
            layer.values = torch.cat([layer.values, values], dim=-2)
        return self.layers[index].keys, self.layers[index].values

    def get_seq_length(self) -> int:
        return self.layers[0].keys.shape[-2] if self.layers else 0

    def batch_select_indices(self, rows: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keys, layer.values = layer.keys.index_select(0, rows), layer.values.index_select(0, rows)


def causal_mask(batch: int, queries: int, length: int, padding: torch.Tensor | None, device) -> torch.Tensor:
    """(B, 1, S, L) booleans: query i (the last S of L positions) sees key j <= its own position, and
    only real tokens where a padding mask (B, L) is given."""
    offset = length - queries
    seen = torch.arange(length, device=device)[None, :] <= torch.arange(queries, device=device)[:, None] + offset
    seen = seen[None, None].expand(batch, 1, queries, length)
    if padding is not None:
        seen = seen & padding[:, None, None, :].bool()
    return seen


class Qwen3Model(nn.Module):
    """embed_tokens -> layers -> norm, with the rotary embedding shared by the layers."""

    def __init__(self, config: LanguageConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(config, index) for index in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config)

    @property
    def has_sliding_layers(self) -> bool:
        return self.config.has_sliding_layers

    def forward(
        self, embeds: torch.Tensor, cache: KVCache, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None, deepstack: list[torch.Tensor] = (),
        audio_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings (B, S, H) after the `cache`'s positions -> normed hidden states (B, S, H).

        `attention_mask` (B, past + S) marks real tokens of left-padded rows; `deepstack[k]` is added at
        the `audio_mask` positions after layer k (the prefill's DeepStack injection)."""
        past = cache.get_seq_length()
        batch, queries = embeds.shape[:2]
        if position_ids is None:
            position_ids = (torch.arange(queries, device=embeds.device) + past).unsqueeze(0)
        mask = _mask_for(attention_mask, batch, queries, past, embeds.device)
        cos_sin = self.rotary_emb(embeds, position_ids)
        hidden = embeds
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, cos_sin, mask, cache)
            if index < len(deepstack):
                hidden = hidden.clone()
                hidden[audio_mask] = hidden[audio_mask] + deepstack[index].to(hidden.dtype)
        return self.norm(hidden)


def _mask_for(padding: torch.Tensor | None, batch: int, queries: int, past: int, device) -> torch.Tensor | None:
    """None where SDPA's own causal flag (or no mask at all) gives the same attention, as transformers
    decides it: no padded position, and a prompt with nothing before it or a single new position."""
    length = past + queries
    if padding is not None and padding.shape[-1] > length:
        padding = padding[:, :length]
    unpadded = padding is None or bool(padding.all())
    if unpadded and (queries == 1 or past == 0):
        return None
    if past == 0 and bool(padding[:, :queries].all()) and not bool(padding[:, queries:].any()):
        return None
    return causal_mask(batch, queries, length, padding, device)
