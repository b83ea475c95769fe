"""Finding a checkpoint (local directory or Hugging Face hub id) and loading it with every key checked."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import DEFAULT_MODEL  # noqa: F401 - engine.py takes it from here
from ..errors import CheckpointError
from .checkpoint import CONFIG_FILE, SINGLE_WEIGHTS, WEIGHTS_INDEX, resolve_checkpoint, resolve_tokenizer  # noqa: F401 - the loading API, in one place
from .config import INT8_SCALES, QUANTIZATION_KEY, MossAudioConfig
from .modeling import MossAudioModel
from .qwen3 import RotaryEmbedding

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@contextmanager
def open_weights(file: Path, device: str = "cpu"):
    """safe_open, with a damaged or truncated file reported as a CheckpointError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt", device=device) as handle:
            yield handle
    except (SafetensorError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{file}: damaged or truncated weights file ({reason})") from None


def weight_locations(folder: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (sharded or single-file layout)."""
    index = folder / WEIGHTS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{index}: unreadable weight index ({exc})") from None
        return {name: folder / shard for name, shard in weight_map.items()}
    with open_weights(folder / SINGLE_WEIGHTS) as handle:
        return {name: folder / SINGLE_WEIGHTS for name in handle.keys()}


TIED_HEAD = "lm_head.weight"
EMBEDDINGS = "language_model.embed_tokens.weight"


def check_weights(model: MossAudioModel, locations: dict[str, Path]) -> None:
    """Every parameter present with its shape, nothing extra; the message names the first mismatch.
    An int8 checkpoint (`moss quantize`) stores each rounded layer's weight as int8 with its scales."""
    expected = {name: (tuple(p.shape), None) for name, p in model.state_dict().items()}
    if model.config.quantization == "int8":
        from .quantize import int8_layers

        for layer in int8_layers(model):
            rows = expected[f"{layer}.weight"][0]
            expected[f"{layer}.weight"] = (rows, "I8")
            expected[f"{layer}.{INT8_SCALES}"] = ((rows[0],), "F32")
    if model.config.tie_word_embeddings:  # shared with the embeddings: may be absent, and is ignored if stored
        ignored = (TIED_HEAD, f"lm_head.{INT8_SCALES}")
        expected = {name: entry for name, entry in expected.items() if name not in ignored}
        locations = {name: file for name, file in locations.items() if name not in ignored}
    missing = sorted(set(expected) - set(locations))
    if missing:
        raise CheckpointError(f"checkpoint lacks tensor {missing[0]} ({len(missing)} missing in all)")
    unexpected = sorted(set(locations) - set(expected))
    if unexpected:
        raise CheckpointError(f"checkpoint has unexpected tensor {unexpected[0]} ({len(unexpected)} in all)")
    for file, names in _group_by_file(locations).items():
        if not file.is_file():
            raise CheckpointError(f"weight file {file.name} named in the index is missing")
        with open_weights(file) as handle:
            present = set(handle.keys())
            for name in names:
                if name not in present:
                    raise CheckpointError(f"tensor {name} is not in {file.name} as the index says")
                stored = handle.get_slice(name)
                shape, dtype = tuple(stored.get_shape()), expected[name][1]
                if shape != expected[name][0]:
                    raise CheckpointError(f"tensor {name} has shape {list(shape)}, expected {list(expected[name][0])}")
                if dtype is not None and stored.get_dtype() != dtype:
                    raise CheckpointError(f"tensor {name} is {stored.get_dtype()}, expected {dtype} in an int8 checkpoint")


def stored_quantization(folder: Path) -> dict | None:
    """config.json's record of how `moss quantize` stored the checkpoint's weights ("method": "int8",
    "source": the checkpoint it was written from), or None for the weights as released."""
    config = MossAudioConfig.from_file(folder / CONFIG_FILE)
    return config.extra[QUANTIZATION_KEY] if config.quantization else None


def checked_model(folder: Path) -> tuple[MossAudioModel, dict[str, Path]]:
    """The checkpoint's model built on the meta device (nothing allocated or initialised), with where
    each of its tensors is, every one checked against it."""
    config = MossAudioConfig.from_file(folder / CONFIG_FILE)
    with torch.device("meta"), _no_initialisation():
        model = MossAudioModel(config)
    locations = weight_locations(folder)
    check_weights(model, locations)
    return model, locations


def load_model(folder: Path, device: torch.device, dtype: torch.dtype, quantize: str | None = None) -> MossAudioModel:
    """Build the model without initialising it, check the weights, then load them onto `device`;
    quantize="int8": int8 linear layers (model/quantize.py), each made as soon as its weights are read
    (an int8 checkpoint's are read as they are stored: it takes nothing else)."""
    model, locations = checked_model(folder)
    config = model.config
    if config.quantization == "int8" and quantize != "int8":
        raise CheckpointError(f"{folder} holds int8 weights (moss quantize): it loads with --quantize int8 only")
    tied = config.tie_word_embeddings
    if tied:  # as the official loader ties them: the file's lm_head, if any, is not used
        locations = {name: file for name, file in locations.items() if not name.startswith("lm_head.")}
    if quantize == "int8":
        _load_quantizing(model, locations, dtype, tied)
    else:
        state: dict[str, torch.Tensor] = {}
        for file, names in _group_by_file(locations).items():
            with open_weights(file, str(device)) as handle:
                for name in names:
                    state[name] = handle.get_tensor(name).to(dtype)
        if tied:
            state[TIED_HEAD] = state[EMBEDDINGS]
        model.load_state_dict(state, strict=True, assign=True)
        if tied:
            model.lm_head.weight = model.language_model.embed_tokens.weight
    # Rotary frequencies are computed, not stored: rebuild them on the real device.
    model.language_model.rotary_emb = RotaryEmbedding(config.language).to(device)
    if device.type == "cuda":  # fused attention pays on GPUs; on CPU eager keeps the reference's numbers
        model.audio_encoder.use_attention("sdpa")
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"tensor {leftover[0]} was not loaded")
    return model.eval()


@contextmanager
def _no_initialisation():
    """Modules built in this thread without their random initialisation: the weights come from the
    checkpoint, and on the meta device PyTorch's random fills go through its reference decompositions,
    which import torch._dynamo (about a second of a start). Other threads initialise as usual."""
    from torch import nn

    classes = (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd, nn.LayerNorm)
    saved = [cls.__dict__["reset_parameters"] for cls in classes]
    for cls, method in zip(classes, saved):
        cls.reset_parameters = _unless_building(method)
    _building.active = True
    try:
        yield
    finally:
        _building.active = False
        for cls, method in zip(classes, saved):
            cls.reset_parameters = method


_building = threading.local()


def _unless_building(reset):
    def reset_parameters(module) -> None:
        if not getattr(_building, "active", False):
            reset(module)

    return reset_parameters


def _load_quantizing(model: MossAudioModel, locations: dict[str, Path], dtype: torch.dtype, tied: bool) -> None:
    """Weights one tensor at a time, each linear layer of the int8 parts quantized as soon as it is
    whole: the float32 model never exists whole (a 4B model's would take 16 GB). Each tensor comes from
    a file opened for it alone, so that the file's mapping closes with it: a layer being quantized
    reads the mapping and lets it go; a tensor that stays gets memory of its own, except the
    embedding table, which stays in its mapping as the float32 path leaves it (a prompt reads a few of
    its rows). Read through one long-lived mapping, every quantized layer's pages stayed resident,
    and int8 held more memory than float32 (2.9 GB against 2.6 GB on a random `mid` checkpoint).
    The output layer goes on building in the background after the load returns (LayerQuantizer)."""
    from .allocator import release_freed_memory
    from .joining import JoinsAsLoaded, mark_quantized_joins
    from .quantize import LayerQuantizer, quantized_part

    first = (EMBEDDINGS, TIED_HEAD)  # the output layer, the longest to pack, is begun first
    joins = JoinsAsLoaded(model)  # a layer's query/key/value and gate/up projections: one int8 layer each
    with LayerQuantizer(model, head_in_background=True) as quantizer:
        for name in sorted(locations, key=lambda name: name not in first):
            owner, _, leaf = name.rpartition(".")
            with open_weights(locations[name]) as handle:
                tensor = handle.get_tensor(name)  # a view of the file, valid after the handle closes
                if quantized_part(model, owner) is None:
                    tensor = tensor.to(dtype, copy=name != EMBEDDINGS)
            _assign(model.get_submodule(owner), leaf, tensor)
            for ready in joins.ready(owner):
                quantizer.offer(ready)
            if name == EMBEDDINGS and tied:
                model.lm_head.weight = model.language_model.embed_tokens.weight
                quantizer.offer("lm_head")
    mark_quantized_joins(model.language_model)
    release_freed_memory()  # the float32 layers read and freed left holes in the heap


def _assign(module: torch.nn.Module, leaf: str, tensor: torch.Tensor) -> None:
    """What load_state_dict(assign=True) does for one entry: the tensor itself becomes the parameter or buffer."""
    if leaf in module._parameters:
        wanted = module._parameters[leaf].requires_grad and tensor.is_floating_point()  # int8 rows take none
        module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=wanted)
    else:
        module._buffers[leaf] = tensor


def load_tokenizer(folder: Path):
    """Qwen's tokenizer built with the `tokenizers` library (model/tokenizer.py), else transformers'."""
    from .tokenizer import qwen_tokenizer

    return qwen_tokenizer(folder) or transformers_tokenizer(folder)


def transformers_tokenizer(folder: Path):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # AutoTokenizer reads config.json and warns that it does not know `moss_audio`; it needs only
    # tokenizer_config.json, so the warning is noise.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as first:  # tokenizers raise ValueError, OSError, JSON errors...
        try:  # a tokenizer_config.json without tokenizer_class: the files are Qwen's BPE all the same
            from transformers import Qwen2Tokenizer

            return Qwen2Tokenizer.from_pretrained(str(folder))
        except Exception:
            raise CheckpointError(f"{folder}: cannot load the tokenizer ({first})") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def _group_by_file(locations: dict[str, Path]) -> dict[Path, list[str]]:
    grouped: dict[Path, list[str]] = {}
    for name, file in locations.items():
        grouped.setdefault(file, []).append(name)
    return grouped
