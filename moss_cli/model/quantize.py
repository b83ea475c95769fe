"""Opt-in int8 weights for CPU inference (`--quantize int8`).

PyTorch's dynamic quantization (FBGEMM) stores the LLM's, the adapters' and the output layer's
linear weights as int8 and quantizes activations on the fly; on a CPU those matrix products run
about 4x faster than float32 (measured on this project's machine at 5 rows: the 151,936-row
output layer 117 -> 29 ms, a 1024x4096 layer 1.6 -> 0.36 ms). The audio encoder stays float32: it
is a small share of the time and carries the fine detail. Never the default: greedy tokens can
differ from float32 (the benchmark reports how often they agree).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import MossError

QUANTIZED_PARTS = ("language_model", "audio_adapter", "deepstack_audio_merger_list", "lm_head")


def quantize_int8(model: nn.Module) -> nn.Module:
    """Swap the linear layers of QUANTIZED_PARTS for int8 dynamic ones, in place."""
    if model.device.type != "cpu":
        raise MossError(f"--quantize int8 runs on the CPU only (the model is on {model.device.type})")
    if model.dtype != torch.float32:
        raise MossError(f"--quantize int8 starts from float32 weights, not {str(model.dtype).removeprefix('torch.')}")
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        spec = {name: default_dynamic_qconfig for name in QUANTIZED_PARTS}
        # Linear layers only: the embeddings (which the head may share) stay float32.
        quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8, mapping={nn.Linear: Int8Linear}, inplace=True)
    model.greedy_screen = None  # it screens the float32 head, which int8 replaces
    return model
