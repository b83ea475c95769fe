"""Packing a large int8 layer for FBGEMM in blocks of rows, one block per thread at a time.

FBGEMM packs a weight on one core, reading the row-major weight a column at a time: one cache line in
each of the block's rows. Blocks whose lines stay in a core's L2 cache pack about twice as fast; on
this project's 2-core machine (1 MB of L2 a core) the 151,936x512 output layer took, on one core,
1.2 s whole, 0.62-0.75 s as 4 blocks of 37,984 rows and 0.39-0.43 s as 8 blocks of 18,992 (a
151,936x2560 one: 2.6-2.8 s as 4 blocks, 1.9 s as 8). Dynamic quantization takes its input's grid
from the input alone, so each block's product is the whole layer's for those rows, and the blocks'
products, side by side, are the whole one; each more block costs a one-row step about 0.02 ms (8
blocks 2.39 ms, 4 blocks 2.31 ms, medians of 7).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from .allocator import release_freed_memory

BLOCK_ROWS = 19_000  # at most, in a layer packed in blocks
BLOCKED_FROM = 32768  # rows: a vocabulary-sized layer; smaller ones pack in a few milliseconds


class PackingStopped(Exception):
    pass


def packed_in_blocks(rows: int, pack: Callable[[slice], object], stop: threading.Event | None = None) -> list:
    """pack(rows) for consecutive blocks of `rows` of near-equal size, at most BLOCK_ROWS each (one block
    below BLOCKED_FROM), on up to torch's thread count of threads; `stop` set: PackingStopped before
    the next block."""
    count = block_count(rows)
    bounds = [rows * k // count for k in range(count + 1)]
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


def fbgemm_packed(integers: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None):
    """FBGEMM's packed form of int8 rows (N, K) with one float scale per row (zero points 0)."""
    with warnings.catch_warnings():  # PyTorch announces the end of quantized tensors, which FBGEMM still takes
        warnings.simplefilter("ignore")  # (once per process: on the first, here)
        weight = torch._make_per_channel_quantized_tensor(
            integers, scales.double(), torch.zeros(integers.shape[0], dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(weight, bias)


def block_count(rows: int) -> int:
    return -(-rows // BLOCK_ROWS) if rows >= BLOCKED_FROM else 1


def blocks_product(x: torch.Tensor, packed: list) -> torch.Tensor:
    """x times the layer packed by packed_in_blocks: FBGEMM's dynamically quantized product with each
    block (reduce_range), side by side along the last dimension."""
    parts = [torch.ops.quantized.linear_dynamic(x, block, True) for block in packed]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
