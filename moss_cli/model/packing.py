"""Packing a large int8 layer for FBGEMM in blocks of rows, one block per thread at a time.

FBGEMM packs a weight on one core: the 151,936-row output layer took 0.8-0.9 s whole on this
project's 2-core machine, 0.33-0.39 s as 4 blocks on 2 threads. Dynamic quantization takes its
input's grid from the input alone, so each block's product is the whole layer's for those rows, and
the blocks' products, side by side, are the whole one (no slower a step: 2.4-2.7 ms against 2.9 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from .allocator import release_freed_memory

BLOCKS = 4
BLOCKED_FROM = 32768  # rows: a vocabulary-sized layer; smaller ones pack in a few milliseconds


class PackingStopped(Exception):
    pass


def packed_in_blocks(rows: int, pack: Callable[[slice], object], stop: threading.Event | None = None) -> list:
    """pack(rows) for BLOCKS consecutive blocks of `rows` (one block below BLOCKED_FROM), on up to
    torch's thread count of threads; `stop` set: PackingStopped before the next block."""
    bounds = [rows * k // BLOCKS for k in range(BLOCKS + 1)] if rows >= BLOCKED_FROM else [0, rows]
    blocks = [slice(start, end) for start, end in zip(bounds, bounds[1:]) if end > start]

    def one(block: slice):
        if stop is not None and stop.is_set():
            raise PackingStopped("packing was stopped")
        return pack(block)

    if len(blocks) == 1:
        return [one(blocks[0])]
    with ThreadPoolExecutor(min(len(blocks), torch.get_num_threads()), thread_name_prefix="moss-pack") as pool:
        packed = list(pool.map(one, blocks))
    # Each packing thread's temporaries were freed into its own glibc arena, which keeps freed memory
    # (model/allocator.py): 160 MB more at the peak of a random `small` model's run until given back.
    release_freed_memory()
    return packed


def blocks_product(x: torch.Tensor, packed: list) -> torch.Tensor:
    """x times the layer packed by packed_in_blocks: FBGEMM's dynamically quantized product with each
    block (reduce_range), side by side along the last dimension."""
    parts = [torch.ops.quantized.linear_dynamic(x, block, True) for block in packed]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
