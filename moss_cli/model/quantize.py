"""Opt-in int8 weights for CPU inference (`--quantize int8`).

The LLM's, the adapters' and the output layer's linear weights become int8 with one scale per output
channel; activations are quantized on the fly, one scale per call, as PyTorch's dynamic quantization
does. The audio encoder stays float32: it is a small share of the time and carries the fine detail.
Never the default: greedy tokens can differ from float32 (the benchmark reports how often they agree).

Every layer's int8 weights are kept in one layout, FBGEMM's (the kernel of PyTorch's dynamic
quantization on x86): the fastest at a decoding step's few rows, and within 5% of oneDNN's int8
kernel on whole prompts (five 60 s chunks of a random `mid` checkpoint: 3.56 s against 3.40 s; on
`small`, 0.87 s against 0.90 s). A second, oneDNN layout for prompts would double the int8 weights'
memory and about double the packing at every load (`mid` loads in 1.1 s with FBGEMM's alone, 2.3 s
with both).
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import torch
from torch import nn

from ..errors import MossError
from ..interrupts import result_of, started
from .config import INT8_SCALES
from .joining import StackedRows, join_before_quantizing, mark_quantized_joins, unjoin_projections, weights_loaded
from .packing import blocks_product, fbgemm_packed, packed_in_blocks

QUANTIZED_PARTS = ("language_model", "audio_adapter", "deepstack_audio_merger_list", "lm_head")
IN_BACKGROUND = ("lm_head",)  # the longest to pack, and needed last: after the prompt


class Int8Linear(nn.Module):
    """y = x W^T + b with W int8 (per output channel) and x quantized per call (per tensor, 7 bits as
    FBGEMM's `reduce_range` asks, so that its AVX2 kernels cannot saturate)."""

    def __init__(self, linear: nn.Linear | StackedRows, in_background: bool = False):
        """in_background: quantized and packed in a thread begun here, the first product waiting for it
        (the output layer, see LayerQuantizer)."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self._building: Future | None = None
        # Held here, not by the building thread, so that the build can let it go once it is rounded: a
        # weight read from a checkpoint keeps its file's pages resident until it is freed.
        self._parts: list[nn.Linear] | None = list(linear.parts) if isinstance(linear, StackedRows) else [linear]
        if in_background:
            stop = threading.Event()  # set at exit: the process must not end inside FBGEMM's packing
            self._building = started(self._build, stop, name="moss-int8-build", stop=stop)
        else:
            self._build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._wait()
        return blocks_product(x, self._packed_blocks)

    def _build(self, stop: threading.Event | None = None) -> None:
        try:
            with torch.no_grad():
                parts, self._parts = self._parts, None
                self._scales, integers = rounded_rows(parts)
                del parts  # before packing, which holds both the int8 rows and their packed copy
                # A vocabulary-sized layer is packed in blocks of rows on every thread (model/packing.py).
                self._packed_blocks = packed_in_blocks(
                    self.out_features, lambda rows: self._packed(integers, rows), stop)
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
        return fbgemm_packed(integers[rows], self._scales[rows], None if self.bias is None else self.bias[rows])

    def int8_bytes(self) -> int:
        """Memory of the int8 weights, with the float scales and bias."""
        extra = self.out_features * 4 + (0 if self.bias is None else self.bias.numel() * 4)
        return self.in_features * self.out_features + extra

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 (fbgemm)"


def int8_rows(*weights: torch.Tensor, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(scales, int8 weights) of the weights' rows, one after the other: one scale per row (output
    channel), so the int8 grid follows each row's own range. Blocks of rows keep the float temporaries
    small (the output layer's whole-matrix ones took 1.9 GB at a 1024-wide model) and, at 1024 rows,
    near the core's caches for the five passes over each: a 151,936x512 output layer took 0.11 s on one
    thread, 0.24 s in blocks of 4096 rows."""
    rows = sum(weight.shape[0] for weight in weights)
    scales = torch.empty(rows, dtype=torch.float32)
    integers = torch.empty((rows, weights[0].shape[1]), dtype=torch.int8)
    first = 0  # the weight's first row among all
    for weight in weights:
        for start in range(0, weight.shape[0], block):
            part = weight[start : start + block].to(torch.float32, copy=True)  # divided in place below
            scale = (part.abs().amax(dim=1) / 127).clamp_(min=torch.finfo(torch.float32).tiny)
            rounded = slice(first + start, first + start + part.shape[0])
            integers[rounded] = part.div_(scale[:, None]).round_().clamp_(-127, 127)
            scales[rounded] = scale
        first += weight.shape[0]
    return scales, integers


def rounded_rows(parts: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scales, int8 weights) of the layers' rows one after the other: an int8 checkpoint's as stored
    (rounded by int8_rows when it was written), float weights rounded here."""
    weights = [part.weight.detach() for part in parts]
    if all(weight.dtype != torch.int8 for weight in weights):
        return int8_rows(*weights)
    if not all(weight.dtype == torch.int8 and INT8_SCALES in part._buffers for part, weight in zip(parts, weights)):
        raise MossError("a joined layer mixes int8 rows with float ones, or int8 rows without their scales")
    scales = [part._buffers[INT8_SCALES].float() for part in parts]
    if len(parts) == 1:
        return scales[0], weights[0]
    return torch.cat(scales), torch.cat(weights)


def check_int8_target(device: torch.device, dtype: torch.dtype) -> None:
    # Both for --quantize int8 and for an int8 checkpoint (moss quantize), which implies it.
    if device.type != "cpu":
        raise MossError(f"int8 weights (--quantize int8) run on the CPU only, not on {device.type}")
    if dtype != torch.float32:
        raise MossError(f"int8 weights (--quantize int8) run beside float32, not {str(dtype).removeprefix('torch.')}: "
                        "--dtype float32 or auto")


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
            if isinstance(module, (nn.Linear, StackedRows)):
                quantizer.offer(name)
    mark_quantized_joins(model.language_model)
    model.greedy_screen = None  # it screens the float32 head, which int8 replaces
    return model


def int8_layers(model: nn.Module) -> list[str]:
    """The names of the linear layers that int8 rounds (QUANTIZED_PARTS), as the checkpoint names them."""
    return [name for name, module in model.named_modules() if type(module) is nn.Linear and quantized_part(model, name)]


def quantized_part(model: nn.Module, name: str) -> str | None:
    """The part of QUANTIZED_PARTS that the module `name` belongs to, if it is a linear layer there."""
    if not isinstance(model.get_submodule(name), (nn.Linear, StackedRows)):
        return None
    return next((part for part in QUANTIZED_PARTS if name == part or name.startswith(part + ".")), None)


class LayerQuantizer:
    """Swaps linear layers of QUANTIZED_PARTS for Int8Linear as they are offered, built in a pool of
    threads: FBGEMM packs a layer on one core, so layers pack side by side. At most two layers per
    thread are in flight, so a loader's float32 weights waiting to be quantized stay few. Swaps happen
    in the offering thread.

    The output layer, the largest (about half of a random `small` model's quantizing: 0.55 s of CPU),
    is best offered first. head_in_background: it is swapped in at once and built in a thread of its
    own (Int8Linear(in_background=True)), on beside the first request's audio decoding and encoding,
    the first product with it waiting for it; else it is packed beside the other layers and ready
    when finish() returns."""

    def __init__(self, model: nn.Module, threads: int | None = None, head_in_background: bool = False):
        self.model = model
        self.threads = max(1, threads or torch.get_num_threads())
        self.head_in_background = head_in_background
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="moss-int8")
        self._pending: dict[Future, str] = {}

    def offer(self, name: str) -> bool:
        """Quantize the module `name` if it is a linear layer of QUANTIZED_PARTS whose weights are all
        loaded (none left on the meta device); whether it will be."""
        part = quantized_part(self.model, name)
        module = self.model.get_submodule(name)
        if part is None or not weights_loaded(module):  # a StackedRows is made of loaded layers
            return False
        if part in IN_BACKGROUND and self.head_in_background:
            self.model.set_submodule(name, Int8Linear(module, in_background=True))
            return True
        self._pending[self._pool.submit(Int8Linear, module)] = name
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
