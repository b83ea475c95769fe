"""The local backend as the factory opens it: a checkpoint loaded into this process.

Nothing here imports torch until a model is opened or placed: the factory imports this module to
report a missing checkpoint before any work, and the model's imports then run in the background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..factory import EngineSpec
    from .engine import MossAudio


def check_spec(spec: EngineSpec, prompts: tuple[str, ...]) -> EngineSpec:
    """Every prompt layout works here (own audio spans included); the factory checked --quantize."""
    return spec


def check_available(spec: EngineSpec) -> None:
    """A checkpoint that is missing (or lacks files) raises ModelUnavailableError, without torch."""
    from ...model.checkpoint import resolve_checkpoint

    resolve_checkpoint(spec.model)


def open_engine(spec: EngineSpec) -> MossAudio:
    from ...model.allocator import keep_freed_memory
    from .engine import MossAudio

    keep_freed_memory()  # a local model's large temporaries reuse memory instead of fresh pages
    return MossAudio.load(spec.model, device=spec.device, dtype=spec.dtype, time_markers=spec.time_markers,
                          batch_size=spec.batch_size, quantize=spec.quantize, thinking=spec.thinking)


def settings(spec: EngineSpec, common: dict) -> dict:
    return common  # the model, dtype, time markers and the rest: all in common already


def placement(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """("cuda:0 (NVIDIA H100 80GB HBM3)", "bfloat16"), ("cpu", "float32"): resolve_device and resolve_dtype's choice."""
    import torch

    from .engine import resolve_device, resolve_dtype

    target = resolve_device(device)
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else None
    return (f"{target} ({name})" if name else str(target)), str(resolve_dtype(dtype, target)).removeprefix("torch.")
