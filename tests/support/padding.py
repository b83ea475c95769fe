"""Left-padded batches for decoding tests."""

from __future__ import annotations

import torch


def left_padded_mask(lengths: list[int], width: int | None = None) -> torch.Tensor:
    """(rows, width) ones over each row's last `length` positions, zeros (padding) before them."""
    width = max(lengths) if width is None else width
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, width - length :] = 1
    return mask
