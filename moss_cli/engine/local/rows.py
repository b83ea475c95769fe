"""The decoding batch of continuous batching: the rows' shared key/value cache, their padding and positions.

Rows join and leave between decoding steps. Each row's cache holds only its own tokens, right-aligned:
a batch of rows with different lengths is left-padded to the longest, the padding masked, and each
row's positions counted from its own first token, as a left-padded batch is decoded anywhere else
(engine/local/generation.py). When rows join or leave, the cache is copied once into a new one of the
rows that remain and the rows that join: padding no row needs any more goes then, so the cache is as
long as its longest row, not as long as the run.
"""

from __future__ import annotations

import torch

from ...model import decoder
from ...model.decoder import GROWTH, StaticCache
from ...model.modeling import MossAudioModel

# The prefill's cache, as model.new_cache() makes it: `layers` of .keys/.values, update(), get_seq_length().
PrefillCache = object

# Every layer's (keys, values, keys_transposed): keys (B, kv_heads, L, head_dim), or (B, kv_heads,
# head_dim, L) where transposed; values (B, kv_heads, L, head_dim); the filled positions only.
Layers = list[tuple[torch.Tensor, torch.Tensor, bool]]


def layers_of(cache: PrefillCache | StaticCache) -> Layers:
    if isinstance(cache, StaticCache):
        return [(cache.filled_keys(k, cache.length), v[:, :, : cache.length], cache.keys_transposed)
                for k, v in zip(cache.keys, cache.values)]
    return [(layer.keys, layer.values, False) for layer in cache.layers]


class RunningRows:
    """The cache of the rows being decoded, with each row's length (its real tokens, padding aside)."""

    def __init__(self, model: MossAudioModel):
        self.model = model
        self.cache: PrefillCache | StaticCache | None = None
        self.lengths: list[int] = []
        self.mask: torch.Tensor | None = None  # (B, L) 1 at real tokens; None where no row is padded

    @property
    def size(self) -> int:
        return len(self.lengths)

    def rebuild(self, keep: list[int], joining: Layers | None = None, joining_rows: list[int] = (),
                joining_lengths: list[int] = (), room: int = GROWTH) -> None:
        """Rows `keep` of this batch, then rows `joining_rows` of a prefilled cache (`joining`, left-padded,
        those rows' lengths `joining_lengths`), as one new batch with `room` positions reserved."""
        width = self.cache_length
        sources = [(self.layers, row, width, self.lengths[row]) for row in keep]
        if joining is not None:
            end = joining[0][1].shape[-2]
            sources += [(joining, row, end, n) for row, n in zip(joining_rows, joining_lengths)]
        self.lengths = [length for *_, length in sources]
        if not sources:
            self.cache, self.mask = None, None
            return
        self.cache = self._assembled(sources, room)
        self.mask = self._padding_mask()

    @property
    def cache_length(self) -> int:
        if self.cache is None:
            return 0
        return self.cache.length if isinstance(self.cache, StaticCache) else self.cache.get_seq_length()

    @property
    def layers(self) -> Layers:
        return [] if self.cache is None else layers_of(self.cache)

    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its next token; returns each row's last hidden state (B, H)."""
        device = self.model.device
        ids = torch.tensor([[token] for token in tokens], dtype=torch.long, device=device)
        self.lengths = [n + 1 for n in self.lengths]
        positions = None
        if self.mask is not None:  # positions count each row's own tokens, as generate's padded batches do
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.size, 1)], dim=1)
            positions = torch.tensor([[n - 1] for n in self.lengths], dtype=torch.long, device=device)
        return self.model.step_hidden(ids, self.cache, attention_mask=self.mask, position_ids=positions)

    def _padding_mask(self) -> torch.Tensor | None:
        width = max(self.lengths)
        if all(n == width for n in self.lengths):
            return None
        mask = torch.zeros((self.size, width), dtype=torch.long, device=self.model.device)
        for row, n in enumerate(self.lengths):
            mask[row, width - n :] = 1
        return mask

    def _assembled(self, sources: list[tuple[Layers, int, int, int]], room: int) -> PrefillCache | StaticCache:
        """One cache holding each source row's last `length` positions, right-aligned, zeros before them.
        Where the fast decoding step applies, a StaticCache with `room` free positions (model/decoder.py);
        elsewhere the prefill's kind of cache, as `decoding_cache` gives."""
        width = max(length for *_, length in sources)
        static = decoder.supported(self.model.language_model)
        first = sources[0][0][0][1]
        transposed = static and first.device.type == "cpu" and first.dtype == torch.float32
        room = room if static else 0
        keys, values = [], []
        for layer in range(len(sources[0][0])):
            k, v = _empty_layer(first, len(sources), width + room, transposed)
            for row, (layers, source_row, end, length) in enumerate(sources):
                source_keys, source_values, source_transposed = layers[layer][0], layers[layer][1], layers[layer][2]
                _place(k[row], source_keys[source_row], end, length, width, transposed, source_transposed)
                _place(v[row], source_values[source_row], end, length, width, False, False)
            keys.append(k)
            values.append(v)
        if static:
            return StaticCache(keys, values, width, transposed)
        cache = self.model.new_cache()
        for layer, (k, v) in enumerate(zip(keys, values)):
            cache.update(k, v, layer)
        return cache


def _empty_layer(like: torch.Tensor, rows: int, capacity: int, transposed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    heads, dim = like.shape[1], like.shape[-1]
    keys = like.new_empty((rows, heads, dim, capacity) if transposed else (rows, heads, capacity, dim))
    return keys, like.new_empty((rows, heads, capacity, dim))


def _place(target: torch.Tensor, source: torch.Tensor, end: int, length: int, width: int, transposed: bool,
           source_transposed: bool) -> None:
    """Copy one row's positions [end - length, end) of `source` to [width - length, width) of `target`, and
    zero the padding before them (masked, but a product of zero weight with garbage can be NaN)."""
    taken = source.narrow(-1 if source_transposed else -2, end - length, length)
    if source_transposed != transposed:
        taken = taken.transpose(-1, -2)
    dim = -1 if transposed else -2
    target.narrow(dim, 0, width - length).zero_()
    target.narrow(dim, width - length, length).copy_(taken)
