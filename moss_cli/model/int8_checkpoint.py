"""`moss quantize`: a checkpoint's int8 weights written once, as a checkpoint of their own.

The official layout, with each linear layer that `--quantize int8` rounds (model/quantize.py) stored
as its int8 rows (`<layer>.weight`, int8) and their scales (`<layer>.weight_scale`, float32, one per
row); every other tensor as the source stores it. config.json records it (`moss_quantization`), and
an output layer tied to the embeddings is stored as int8 rows of its own (the config says untied).
Loading one skips the rounding and reads about a quarter of the layers' bytes; the numbers are the
ones `--quantize int8` gives from the source, to the bit (the rows are int8_rows' own). FBGEMM's
packing is still done at load: its packed form depends on the CPU and has no stored form.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import CheckpointError, OutputError, UsageError
from .checkpoint import CONFIG_FILE, SINGLE_WEIGHTS, WEIGHTS_INDEX
from .config import INT8_SCALES, QUANTIZATION_KEY
from .loading import EMBEDDINGS, TIED_HEAD, checked_model, open_weights
from .quantize import int8_layers, int8_rows

SHARD_SIZE = "2GB"  # a shard is built whole in memory before it is written
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".msgpack", ".h5")


def write_int8_checkpoint(source: Path, target: Path, source_name: str | None = None) -> None:
    """Write `source`'s int8 checkpoint into the new folder `target`, which appears only once complete
    (built beside it, then renamed). source_name: how the source was named (a hub id), recorded with
    the int8 record: runs tell a Thinking checkpoint by it, whatever `target` is called."""
    model, locations = checked_model(source)
    if model.config.quantization is not None:
        raise CheckpointError(f"{source} already holds {model.config.quantization} weights")
    target = target.absolute()
    if target.exists():
        raise UsageError(f"{target} already exists: name a new folder")
    rounded = {f"{layer}.weight" for layer in int8_layers(model)}
    # Each stored weight: its file and its name there. A tied output layer's rows are the embeddings'
    # (a head the file also stores is not used, as the official loader ties them).
    sources = {name: (file, name) for name, file in locations.items() if name != TIED_HEAD}
    if model.config.tie_word_embeddings:
        sources[TIED_HEAD] = (locations[EMBEDDINGS], EMBEDDINGS)
    elif TIED_HEAD in locations:
        sources[TIED_HEAD] = (locations[TIED_HEAD], TIED_HEAD)
    building = target.with_name(f".{target.name}.partial")
    shutil.rmtree(building, ignore_errors=True)  # what an interrupted run left
    try:
        building.mkdir(parents=True)
        _write_weights(building, sources, rounded)
        _copy_other_files(source, building, model.config.tie_word_embeddings, source_name or str(source))
        os.replace(building, target)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, a folder without write permission
            raise OutputError(f"{target}: cannot write the int8 checkpoint ({exc.strerror or exc})") from None
        raise


Sources = dict[str, tuple[Path, str]]  # stored weight -> (file, name in it)


def _write_weights(folder: Path, sources: Sources, rounded: set[str]) -> None:
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    pattern = SINGLE_WEIGHTS.replace(".safetensors", "{suffix}.safetensors")  # model-00001-of-00002...
    plan = split_torch_state_dict_into_shards(_stored(sources, rounded), max_shard_size=SHARD_SIZE,
                                              filename_pattern=pattern)
    waiting: dict[str, torch.Tensor] = {}  # a weight's scales, or its rows, when a shard ends between them
    for shard, names in plan.filename_to_tensors.items():
        tensors = {}
        for name in names:
            if name not in waiting:
                waiting.update(_tensors_for(_weight_of(name), sources, rounded))
            tensors[name] = waiting.pop(name)
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        _readable_as_copied(folder / shard)
    if plan.is_sharded:
        index = {"metadata": plan.metadata, "weight_map": plan.tensor_to_filename}
        (folder / WEIGHTS_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def _stored(sources: Sources, rounded: set[str]) -> dict[str, torch.Tensor]:
    """What the int8 checkpoint stores, as meta tensors of its shapes and dtypes (to plan the shards)."""
    stored = {}
    for name in sorted(sources):
        file, source_name = sources[name]
        with open_weights(file) as handle:
            tensor = handle.get_tensor(source_name)  # a view of the file: nothing is read
        if name in rounded:
            stored[name] = torch.empty(tensor.shape, dtype=torch.int8, device="meta")
            stored[_scales_of(name)] = torch.empty(tensor.shape[:1], dtype=torch.float32, device="meta")
        else:
            stored[name] = torch.empty_like(tensor, device="meta")
    return stored


def _tensors_for(name: str, sources: Sources, rounded: set[str]) -> dict[str, torch.Tensor]:
    """The stored tensors of the weight `name`: as the source stores it, or its int8 rows and scales."""
    file, source_name = sources[name]
    with open_weights(file) as handle:
        tensor = handle.get_tensor(source_name)
    if name not in rounded:
        return {name: tensor}
    scales, integers = int8_rows(tensor)
    return {name: integers, _scales_of(name): scales}


def _scales_of(weight: str) -> str:
    return weight.removesuffix(".weight") + "." + INT8_SCALES


def _weight_of(name: str) -> str:
    return name.removesuffix("." + INT8_SCALES) + ".weight" if name.endswith("." + INT8_SCALES) else name


def _readable_as_copied(path: Path) -> None:
    """The mode a copied file gets (0666 less the umask): safetensors writes its files owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _copy_other_files(source: Path, folder: Path, tied: bool, source_name: str) -> None:
    """The tokenizer, generation and processor files as they are; config.json with the int8 record."""
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name not in (CONFIG_FILE, WEIGHTS_INDEX) and not path.name.endswith(WEIGHT_SUFFIXES):
            shutil.copyfile(path, folder / path.name)  # a hub snapshot's links: the files they point to
    config = json.loads((source / CONFIG_FILE).read_text(encoding="utf-8"))
    config[QUANTIZATION_KEY] = {"method": "int8", "weights": "int8 rows, one float32 scale per row (output channel)",
                                "layers": "the language model, adapters and output layer; the audio encoder as stored",
                                "source": source_name}
    if tied:  # the output layer is stored as its own int8 rows
        config["tie_word_embeddings"] = False
        if isinstance(config.get("language_config"), dict) and "tie_word_embeddings" in config["language_config"]:
            config["language_config"]["tie_word_embeddings"] = False
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
