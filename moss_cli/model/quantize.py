"""Opt-in int8 weights for CPU inference (`--quantize int8`).

The LLM's, the adapters' and the output layer's linear weights become int8 with one scale per output
channel; activations are quantized on the fly, one scale per call, as PyTorch's dynamic quantization
does. The audio encoder stays float32: it is a small share of the time and carries the fine detail.
Never the default: greedy tokens can differ from float32 (the benchmark reports how often they agree).

Each layer keeps its int8 weights in two kernel layouts, because no one CPU kernel is fast at both
shapes a model asks for (measured on this project's 2-core machine, a 1024x3072 layer):
- a decoding step's few rows: FBGEMM 0.07-0.11 ms at 5 rows, oneDNN 0.12-0.23 ms;
- a prompt's hundreds of rows: oneDNN 2.2-3.2 ms at 900 rows, FBGEMM 6.8-9.2 ms (float32: 24 ms).
Both quantize the activations the same way (reduce_range, per tensor), so the two agree to float
rounding. The output layer only ever sees a few rows and keeps FBGEMM's layout alone.
"""

from __future__ import annotations

import functools
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import torch
from torch import nn

from ..errors import MossError
from ..interrupts import result_of, started
from .joining import join_before_quantizing, mark_quantized_joins, unjoin_projections
from .packing import blocks_product, packed_in_blocks

QUANTIZED_PARTS = ("language_model", "audio_adapter", "deepstack_audio_merger_list", "lm_head")
FEW_ROWS_ONLY = ("lm_head",)  # computed for a prompt's last position only, never for the whole prompt


class Int8Linear(nn.Module):
    """y = x W^T + b with W int8 (per output channel) and x quantized per call (per tensor, 7 bits as
    FBGEMM's `reduce_range` asks, so that its AVX2 kernels cannot saturate)."""

    MANY_ROWS = 64  # from here on oneDNN's layout is the faster (0.37-0.44 ms against 0.48 ms at 64 rows)

    def __init__(self, linear: nn.Linear, many_rows: bool = True, in_background: bool = False):
        """in_background: quantized and packed in a thread begun here, the first product waiting for it
        (the output layer: 0.6 s of a random `small` model's load on one core, see LayerQuantizer)."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.zero_points = torch.zeros(self.out_features, dtype=torch.long)
        self.bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self._many_rows = None
        self._building: Future | None = None
        # Held here, not by the building thread, so that the build can let it go once it is rounded: a
        # weight read from a checkpoint keeps its file's pages resident until it is freed.
        self._weight: torch.Tensor | None = linear.weight.detach()
        if in_background:
            stop = threading.Event()  # set at exit: the process must not end inside FBGEMM's packing
            self._building = started(self._build, many_rows, stop, name="moss-int8-build", stop=stop)
        else:
            self._build(many_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._wait()
        if self._many_rows is not None and x.numel() >= self.MANY_ROWS * self.in_features:
            return self.by_onednn(x)
        return self.by_fbgemm(x)

    def _build(self, many_rows: bool, stop: threading.Event | None = None) -> None:
        try:
            with torch.no_grad():
                weight, self._weight = self._weight, None
                self._scales, integers = int8_rows(weight)
                del weight  # before packing, which holds both the int8 rows and their packed copy
                # A vocabulary-sized layer is packed in blocks of rows on every thread (model/packing.py).
                self._few_rows = packed_in_blocks(self.out_features, lambda rows: self._packed(integers, rows), stop)
                if many_rows and onednn_works():
                    self._many_rows = torch.ops.onednn.qlinear_prepack(integers, None)
        except RuntimeError as error:  # no int8 kernels for this CPU (FBGEMM needs x86 with AVX2)
            raise MossError(f"--quantize int8 is not available here: {str(error).splitlines()[0]}") from None

    @property
    def scales(self) -> torch.Tensor:
        """One float32 scale per output channel."""
        self._wait()
        return self._scales

    def _wait(self) -> None:
        """A layer built in the background: wait for it (its error, if it failed, at every call)."""
        if self._building is not None:
            result_of(self._building)
            self._building = None

    def _packed(self, integers: torch.Tensor, rows: slice):
        """FBGEMM's packed form of these rows."""
        with warnings.catch_warnings():  # PyTorch announces the end of quantized tensors, which FBGEMM still takes
            warnings.simplefilter("ignore")  # (once per process: on the first, here)
            quantized = torch._make_per_channel_quantized_tensor(
                integers[rows], self._scales[rows].double(), self.zero_points[rows], 0)
            return torch.ops.quantized.linear_prepack(quantized, None if self.bias is None else self.bias[rows])

    def by_fbgemm(self, x: torch.Tensor) -> torch.Tensor:
        self._wait()
        return blocks_product(x, self._few_rows)

    def by_onednn(self, x: torch.Tensor) -> torch.Tensor:
        self._wait()
        flat = x.reshape(-1, self.in_features).float()
        q = torch.quantize_per_tensor_dynamic(flat, torch.quint8, True)
        out = torch.ops.onednn.qlinear_pointwise(
            q.int_repr(), q.q_scale(), q.q_zero_point(), self._many_rows, self._scales, self.zero_points, self.bias,
            1.0, 0, torch.float32, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)

    def int8_bytes(self) -> int:
        """Memory of the int8 weights in every layout kept, with the float scales and bias."""
        layouts = 1 + (self._many_rows is not None)
        extra = self.out_features * 4 + (0 if self.bias is None else self.bias.numel() * 4)
        return layouts * self.in_features * self.out_features + extra

    def extra_repr(self) -> str:
        kernels = "fbgemm" + (f", onednn from {self.MANY_ROWS} rows" if self._many_rows is not None else "")
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 ({kernels})"



def int8_rows(weight: torch.Tensor, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(scales, int8 weights): one scale per row (output channel), so the int8 grid follows each row's
    own range. Blocks of rows keep the float temporaries small (the output layer's whole-matrix ones
    took 1.9 GB at a 1024-wide model) and, at 1024 rows, near the core's caches for the five passes
    over each: a 151,936x512 output layer took 0.11 s on one thread, 0.24 s in blocks of 4096 rows."""
    rows = weight.shape[0]
    scales = torch.empty(rows, dtype=torch.float32)
    integers = torch.empty(weight.shape, dtype=torch.int8)
    for start in range(0, rows, block):
        part = weight[start : start + block].to(torch.float32, copy=True)  # divided in place below
        scale = (part.abs().amax(dim=1) / 127).clamp_(min=torch.finfo(torch.float32).tiny)
        integers[start : start + block] = part.div_(scale[:, None]).round_().clamp_(-127, 127)
        scales[start : start + block] = scale
    return scales, integers


@functools.cache
def onednn_works() -> bool:
    """Whether this PyTorch has oneDNN's int8 linear and it agrees with FBGEMM on a small probe."""
    try:
        probe = nn.Linear(64, 32)
        layer = Int8Linear(probe, many_rows=False)
        layer._many_rows = torch.ops.onednn.qlinear_prepack(int8_rows(probe.weight.detach())[1], None)
        x = torch.randn(70, 64, generator=torch.Generator().manual_seed(0))
        return torch.allclose(layer.by_onednn(x), layer.by_fbgemm(x), rtol=1e-3, atol=1e-3)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def check_int8_target(device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cpu":
        raise MossError(f"--quantize int8 runs on the CPU only (the model is on {device.type})")
    if dtype != torch.float32:
        raise MossError(f"--quantize int8 starts from float32 weights, not {str(dtype).removeprefix('torch.')}")


def quantize_int8(model: nn.Module) -> nn.Module:
    """Swap the linear layers of QUANTIZED_PARTS for Int8Linear, in place (a model already in memory;
    loading.load_model(..., quantize="int8") swaps each layer as it is read instead)."""
    check_int8_target(model.device, model.dtype)
    unjoin_projections(model.language_model)  # the float32 joined products must not stand in for int8 layers
    for layer in model.language_model.layers:  # joined as the int8 loader joins them
        join_before_quantizing(layer.self_attn, "self_attn")
        join_before_quantizing(layer.mlp, "mlp")
    with LayerQuantizer(model) as quantizer:
        for name, module in list(model.named_modules()):
            if isinstance(module, nn.Linear):
                quantizer.offer(name)
    mark_quantized_joins(model.language_model)
    model.greedy_screen = None  # it screens the float32 head, which int8 replaces
    return model


def quantized_part(model: nn.Module, name: str) -> str | None:
    """The part of QUANTIZED_PARTS that the module `name` belongs to, if it is a linear layer there."""
    if not isinstance(model.get_submodule(name), nn.Linear):
        return None
    return next((part for part in QUANTIZED_PARTS if name == part or name.startswith(part + ".")), None)


class LayerQuantizer:
    """Swaps linear layers of QUANTIZED_PARTS for Int8Linear as they are offered, built in a pool of
    threads: FBGEMM's and oneDNN's packing each run on one core (sixteen 1024x3072 layers: 0.91 s one
    at a time, 0.55 s two at a time on 2 cores). At most two layers per thread are in flight, so a
    loader's float32 weights waiting to be quantized stay few. Swaps happen in the offering thread.

    The output layer, the largest (0.6 s of a random `small` model's 1.7 s of quantizing on one core,
    2-3 s at a 1024-wide model), is best offered first. head_in_background: it is swapped in at once
    and built in a thread of its own (Int8Linear(in_background=True)), on beside the first request's
    audio decoding and encoding, the first product with it waiting for it; else it is packed beside
    the other layers and ready when finish() returns."""

    def __init__(self, model: nn.Module, threads: int | None = None, head_in_background: bool = False):
        self.model = model
        self.threads = max(1, threads or torch.get_num_threads())
        self.head_in_background = head_in_background
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="moss-int8")
        self._pending: dict[Future, str] = {}
        onednn_works()  # probed once, before the threads ask

    def offer(self, name: str) -> bool:
        """Quantize the module `name` if it is a linear layer of QUANTIZED_PARTS whose weights are all
        loaded (none left on the meta device); whether it will be."""
        part = quantized_part(self.model, name)
        module = self.model.get_submodule(name)
        if part is None or any(t.is_meta for t in module.parameters()):
            return False
        many_rows = part not in FEW_ROWS_ONLY
        if not many_rows and self.head_in_background:
            self.model.set_submodule(name, Int8Linear(module, many_rows, in_background=True))
            return True
        self._pending[self._pool.submit(Int8Linear, module, many_rows)] = name
        if len(self._pending) > 2 * self.threads:
            self._swap(wait(self._pending, return_when=FIRST_COMPLETED).done)
        return True

    def finish(self) -> None:
        self._swap(list(self._pending))

    def _swap(self, built) -> None:
        for layer in built:
            self.model.set_submodule(self._pending.pop(layer), layer.result())

    def __enter__(self) -> LayerQuantizer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None:
                self.finish()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
