"""Packing in blocks of rows (model/packing.py): a vocabulary-sized int8 layer's blocks give the whole
layer's product, bit for bit, and a stopped build stops."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch import nn

from moss_cli.model import packing
from moss_cli.model.quantize import Int8Linear


def whole_fbgemm_product(layer: Int8Linear, integers: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero_points = torch.zeros(layer.out_features, dtype=torch.long)
        weight = torch._make_per_channel_quantized_tensor(integers, layer.scales.double(), zero_points, 0)
    return torch.ops.quantized.linear_dynamic(x, torch.ops.quantized.linear_prepack(weight, layer.bias), True)


@pytest.mark.parametrize("bias", [False, True])
def test_a_vocabulary_sized_layer_packed_in_blocks_gives_the_whole_layers_product(bias):
    torch.manual_seed(0)
    linear = nn.Linear(48, packing.BLOCKED_FROM + 13, bias=bias)  # blocks of unequal size
    layer = Int8Linear(linear)
    assert len(layer._packed_blocks) == packing.block_count(linear.out_features) == 2
    from moss_cli.model.quantize import int8_rows

    integers = int8_rows(linear.weight.detach())[1]
    for rows in (1, 5):
        x = torch.randn(rows, 48)
        assert torch.equal(layer(x), whole_fbgemm_product(layer, integers, x))


def test_a_small_layer_is_one_block_and_a_stopped_packing_stops():
    assert packing.packed_in_blocks(100, lambda rows: (rows.start, rows.stop)) == [(0, 100)]
    assert packing.packed_in_blocks(packing.BLOCKED_FROM, lambda rows: rows.stop - rows.start) == [
        packing.BLOCKED_FROM // 2] * 2
    vocabulary = packing.packed_in_blocks(151_936, lambda rows: rows.stop - rows.start)
    assert sum(vocabulary) == 151_936 and len(vocabulary) == 8 and max(vocabulary) <= packing.BLOCK_ROWS
    stop = threading.Event()
    stop.set()
    with pytest.raises(packing.PackingStopped):
        packing.packed_in_blocks(packing.BLOCKED_FROM, lambda rows: rows, stop)
