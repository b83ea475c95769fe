"""Decoding steps through the Qwen3 layers with a preallocated key/value cache.

A decoding step feeds one token per row. Through `Qwen3Model.forward` (model/qwen3.py, transformers'
operations) each step also rebuilds masks and position tensors, and the prefill's `KVCache` copies
every layer's whole cache (`torch.cat`) to append one position: on CPU that was a quarter of a
step. Here the step calls the same submodules (projections, norms, rotary embedding, MLP) in the
same order, and each new key/value is written into room reserved up front. With the same attention
call (SDPA) as transformers, its numbers are bit-identical to the transformers path; on CPU in
float32 attention is computed by plain products instead (faster for one query position), equal to
float32 rounding (tests/test_decoder.py).

Prefill runs `Qwen3Model.forward` (with the DeepStack injection); its cache is then copied once into a
`StaticCache` for the decoding loop.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from .qwen3 import KVCache, Qwen3Model, apply_rotary_pos_emb, rotate_half

GROWTH = 256  # positions reserved at a time


class StaticCache:
    """Keys and values of every layer, the first `length` positions filled: values (B, kv_heads,
    capacity, head_dim); keys the same, or (B, kv_heads, head_dim, capacity) where `keys_transposed`.

    On CPU in float32 the keys are kept transposed: attention's scores are then a plain product of
    the query with a contiguous block, about twice as fast as through a transposed view (2 threads,
    5 rows, ~1,000 positions: 60 us against 119 us a layer). SDPA (GPU, half precision) takes keys
    as transformers stores them. Rows of a left-padded batch share `length`; their padding is masked
    by the caller.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int, keys_transposed: bool = False):
        self.keys, self.values, self.length = keys, values, length
        self.keys_transposed = keys_transposed

    @classmethod
    def from_dynamic(cls, cache: KVCache, room: int) -> StaticCache:
        """A copy of `cache` with space reserved for `room` more positions (at most GROWTH at first:
        most answers stop long before --max-new-tokens, and the room costs memory on every row)."""
        room = min(room, GROWTH)
        first = cache.layers[0].keys
        transposed = first.device.type == "cpu" and first.dtype == torch.float32
        keys = [_with_room(layer.keys.transpose(-1, -2) if transposed else layer.keys, room, transposed)
                for layer in cache.layers]
        values = [_with_room(layer.values, room) for layer in cache.layers]
        return cls(keys, values, first.shape[-2], transposed)

    @property
    def capacity(self) -> int:
        return self.values[0].shape[-2]

    def batch_select_indices(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (finished sequences leave; the rest decode on at the smaller size).
        Named as KVCache's method, so the decoding loop takes either."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]

    def append(self, index: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one position's key/value (B, kv_heads, 1, head_dim) for layer `index`; all filled
        positions, as views (keys transposed where the cache keeps them so)."""
        if self.length >= self.capacity:  # grown by half: copies stay few while unused room stays small
            room = max(GROWTH, self.length // 2)
            self.keys = [_with_room(self.filled_keys(k, self.length), room, self.keys_transposed) for k in self.keys]
            self.values = [_with_room(v[:, :, : self.length], room) for v in self.values]
        end = self.length + 1
        keys, values = self.keys[index], self.values[index]
        if self.keys_transposed:
            keys[..., self.length : end] = key.transpose(-1, -2)
        else:
            keys[:, :, self.length : end] = key
        values[:, :, self.length : end] = value
        return self.filled_keys(keys, end), values[:, :, :end]

    def filled_keys(self, keys: torch.Tensor, end: int) -> torch.Tensor:
        return keys[..., :end] if self.keys_transposed else keys[:, :, :end]


def _with_room(states: torch.Tensor, room: int, positions_last: bool = False) -> torch.Tensor:
    """A copy of `states` with `room` more positions (dim -2, or the last dim where `positions_last`)."""
    dim = -1 if positions_last else -2
    shape = list(states.shape)
    length = shape[dim]
    shape[dim] += room
    grown = states.new_empty(shape)
    grown.narrow(dim, 0, length).copy_(states)
    return grown


def supported(lm: Qwen3Model) -> bool:
    """Whether `decode_step` computes what the transformers path computes for this model: SDPA attention
    and no sliding-window layers (no MOSS-Audio checkpoint has them)."""
    return lm.config.attention == "sdpa" and not lm.has_sliding_layers


@torch.inference_mode()
def decode_step(lm: Qwen3Model, token_ids: torch.Tensor, cache: StaticCache, positions: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One new token per row (B, 1); returns the normed last hidden state (B, H).

    Without padding every row is at position `cache.length`. With left-padded rows, `attention_mask`
    (B, length + 1) marks real tokens and `positions` (B, 1) continues each row's own count.
    """
    if positions is None:
        positions = torch.full((1, 1), cache.length, dtype=torch.long, device=token_ids.device)
    hidden = lm.embed_tokens(token_ids)
    cos, sin = lm.rotary_emb(hidden, positions)
    lean = cache.keys_transposed  # CPU, float32
    keep = None if attention_mask is None else attention_mask[:, None, None, :].bool()
    if lean and attention_mask is not None:  # each row's first real position (rows are left-padded)
        keep = (attention_mask.shape[1] - attention_mask.sum(-1)).tolist()
    for index, layer in enumerate(lm.layers):
        hidden = hidden + _attention(layer.self_attn, _norm(layer.input_layernorm, hidden, lean), cos, sin, cache,
                                     index, keep)
        hidden = hidden + _mlp(layer.mlp, _norm(layer.post_attention_layernorm, hidden, lean))
    cache.length += 1
    return _norm(lm.norm, hidden, lean)[:, -1]


def _attention(attn, hidden: torch.Tensor, cos, sin, cache: StaticCache, index: int, keep) -> torch.Tensor:
    """Qwen3Attention.forward for one query position. SDPA gets the arguments transformers' SDPA path
    passes (`enable_gqa` without a mask; with one, `keep` (B, 1, 1, L), the query heads grouped by
    key/value head); on CPU in float32 the products below stand in for it, `keep` then each row's
    first real position, or None where no row is padded."""
    batch = hidden.shape[0]
    shape = (batch, 1, -1, attn.head_dim)
    lean = cache.keys_transposed
    joined = getattr(attn, "joined", None) if lean else None
    if joined is not None and (batch == 1 or joined.several_rows):
        query, key, value = _joined_query_key_value(attn, joined, hidden, cos, sin)
    else:
        query = _norm(attn.q_norm, _linear(attn.q_proj, hidden).view(shape), lean).transpose(1, 2)
        key = _norm(attn.k_norm, _linear(attn.k_proj, hidden).view(shape), lean).transpose(1, 2)
        value = _linear(attn.v_proj, hidden).view(shape).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
    keys, values = cache.append(index, key, value)
    if cache.keys_transposed and keep is not None:
        out = torch.cat([_attention_by_products(query[row : row + 1], keys[row : row + 1, ..., start:],
                                                values[row : row + 1, :, start:], attn.scaling, None)
                         for row, start in enumerate(keep)])
    elif cache.keys_transposed:
        out = _attention_by_products(query, keys, values, attn.scaling, None)
    elif keep is None:
        out = F.scaled_dot_product_attention(query, keys, values, scale=attn.scaling, enable_gqa=True)
    else:
        grouped = query.reshape(batch, keys.shape[1], -1, attn.head_dim)
        out = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=keep, scale=attn.scaling)
    out = out.reshape(batch, -1, 1, attn.head_dim).transpose(1, 2).reshape(batch, 1, -1)
    return _linear(attn.o_proj, out)


def _joined_query_key_value(attn, joined, hidden: torch.Tensor, cos, sin):
    """Query, key and value (B, heads, 1, head_dim) from the joined projection (model/joining.py): one
    product, the query and key heads normed as one block (RMSNorm without its weight, then each
    head's weight: the same operations on the same numbers) and rotated as one."""
    heads = joined.project(hidden).view(hidden.shape[0], 1, -1, attn.head_dim)
    query_and_key = heads[:, :, : joined.query_heads + joined.key_heads]
    normed = F.rms_norm(query_and_key, (attn.head_dim,), None, attn.q_norm.variance_epsilon).mul_(joined.norm_weight)
    normed = normed.transpose(1, 2)
    rotated = normed * cos.unsqueeze(1) + rotate_half(normed) * sin.unsqueeze(1)  # apply_rotary_pos_emb's sums
    value = heads[:, :, joined.query_heads + joined.key_heads :].transpose(1, 2)
    return rotated[:, : joined.query_heads], rotated[:, joined.query_heads :], value


def _mlp(mlp, hidden: torch.Tensor) -> torch.Tensor:
    """Qwen3MLP.forward, with the product taken in place; the gate and up products as one where they
    are joined (model/joining.py)."""
    joined = getattr(mlp, "joined", None)
    if joined is not None and (hidden.shape[0] == 1 or joined.several_rows):
        both = joined.project(hidden)
        size = both.shape[-1] // 2
        return _linear(mlp.down_proj, mlp.act_fn(both[..., :size]).mul_(both[..., size:]))
    return _linear(mlp.down_proj, mlp.act_fn(_linear(mlp.gate_proj, hidden)).mul_(_linear(mlp.up_proj, hidden)))


def _linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """module(x), straight to the kernel for a plain nn.Linear (a step makes ~60 such calls: the module
    call's own overhead was a few percent of a small model's step). Quantized layers keep their own.

    Several float32 rows on CPU go to oneDNN's kernel instead of BLAS: a step's product is bound by
    reading the weights once, which oneDNN does whatever the rows, while MKL's product for 2-8 rows
    took 2-3x as long as for one (a 1024x3072 layer at 5 rows: 0.81 ms against 2.48 ms, one thread).
    One row keeps BLAS, the product the official code decodes with, to the bit. Several rows were
    never bit-equal to one row through BLAS either; oneDNN rounds each row the same at any count.
    """
    if type(module) is nn.Linear:
        return plain_product(x, module.weight, module.bias)
    return module(x)


def plain_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) through the kernel `_linear` picks for the rows of x."""
    if x.shape[0] > 1 and _onednn_rows(x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return one_row_linear(x, weight, bias)


def one_row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias), for one row of x on CPU in float32 on every thread.

    MKL runs a one-row product on one thread whatever torch's thread count (2 threads, the `small`
    model's 2048x512 layer: 10 GB/s of weights read, the 151,936x512 output layer 9.5 GB/s), while a
    decoding step is bound by reading the weights. The weight's rows are cut into one block per
    thread and multiplied as a batch (`torch.bmm`, which MKL runs a block per thread): 18-19 GB/s on
    those layers, 25-29 at 4B's shapes, close to oneDNN's 19-27. Each output is the same dot product
    over the same row as in the one-row call, and was bit-equal to it at every shape measured;
    `_splits_bit_equal` checks it once per shape on the real weight, so a BLAS where it is not keeps
    the one-row call and the official code's bits.
    """
    parts = _parts(x, weight, bias)
    if parts < 2 or not _splits_bit_equal(weight, parts):
        return F.linear(x, weight, bias)
    return _by_parts(x, weight, parts)


def _parts(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> int:
    """How many blocks of rows to cut `weight` into for x: 1 where the one-row call stays (a bias, which
    BLAS adds inside its product; several rows; not float32 on CPU; a single thread)."""
    if bias is not None or x.numel() != weight.shape[1] or x.dtype != torch.float32 or x.device.type != "cpu":
        return 1
    if weight.dtype != torch.float32 or not weight.is_contiguous():
        return 1
    return _block_count(weight.shape[0], min(torch.get_num_threads(), 16))


@functools.cache
def _block_count(rows: int, threads: int) -> int:
    """Blocks for a weight of `rows` rows on `threads` threads (asked at every product of a step).
    Blocks of a multiple of 16 rows first: MKL sums a product's last 1-3 rows its own way, so a block
    that ends off a multiple of 4 rounds those rows unlike the whole product (the probe would see it
    and keep the one-row call)."""
    counts = range(threads, 1, -1)
    return next((n for n in counts if rows % (n * 16) == 0), next((n for n in counts if rows % n == 0), 1))


def _by_parts(x: torch.Tensor, weight: torch.Tensor, parts: int) -> torch.Tensor:
    out_features, in_features = weight.shape
    blocks = weight.view(parts, out_features // parts, in_features).transpose(1, 2)
    product = torch.bmm(x.reshape(1, 1, in_features).expand(parts, 1, in_features), blocks)
    return product.reshape(*x.shape[:-1], out_features)


_SPLIT_CHECKED: dict[tuple, bool] = {}


def _splits_bit_equal(weight: torch.Tensor, parts: int) -> bool:
    """Whether the product by blocks gives the one-row product's bits at this shape (a probe row on the
    first weight of each shape, block count and alignment: the order of a kernel's sums depends on
    those, not on the numbers; weights mapped from a file may start off a 64-byte boundary)."""
    key = (tuple(weight.shape), parts, weight.data_ptr() % 64)
    if key not in _SPLIT_CHECKED:
        probe = torch.randn(1, weight.shape[1], generator=torch.Generator().manual_seed(len(_SPLIT_CHECKED)))
        _SPLIT_CHECKED[key] = torch.equal(_by_parts(probe, weight, parts), F.linear(probe, weight))
    return _SPLIT_CHECKED[key]


def _onednn_rows(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu" and onednn_float32()


@functools.cache
def onednn_float32() -> bool:
    """Whether this PyTorch has oneDNN's float32 linear, and it agrees with BLAS on a probe."""
    try:
        weight, x = torch.randn(48, 64), torch.randn(3, 1, 64)
        out = torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
        return torch.allclose(out, F.linear(x, weight), rtol=1e-4, atol=1e-5)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def _norm(norm, x: torch.Tensor, lean: bool) -> torch.Tensor:
    """Qwen3RMSNorm. In float32 `F.rms_norm` runs the same operations in one call, bit-identical
    (tests/test_decoder.py); in half precision it rounds once less, so there the module runs."""
    if lean:
        return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)
    return norm(x)


def _attention_by_products(query, keys, values, scale: float, keep) -> torch.Tensor:
    """One query position's attention on CPU as two batched products and a softmax, the query heads
    grouped by the key/value head they share (no repeated keys); `keys` transposed (B, kv_heads,
    head_dim, L), as the CPU cache keeps them.

    SDPA's fused CPU kernel is built for many query positions: for one it took 2-3x as long (0.47 ms
    against 0.24 ms a layer at 5 rows and 900 positions; 1.3 ms a layer on a 16-head model), 12% of
    a whole decoding step. The numbers agree with it to float32 rounding, not to the bit.

    Rows of a left-padded batch are computed one by one over their own positions (decode_step): with
    the padding masked instead, how far a row was padded changed the sums' order and their last bits,
    and continuous batching pads every row that joins. One answer in 64 (random `small` checkpoint,
    ten-second clips) then broke a near tie differently from the same request alone; computed row by
    row, all 64 agree (a batch's linear layers still round some last bits differently from one row).
    """
    batch, heads, _, dim = query.shape
    grouped = query.reshape(batch, keys.shape[1], heads // keys.shape[1], dim)
    scores = torch.matmul(grouped, keys).mul_(scale)
    if keep is not None:
        scores.masked_fill_(~keep, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), values).reshape(batch, heads, 1, dim)
