"""`moss quantize`: an int8 checkpoint written once loads to the numbers --quantize int8 gives from its source."""

import json
import os

import pytest
import torch
from support.tiny_checkpoint import TinySpec, write_checkpoint
from typer.testing import CliRunner

from moss_cli import MossAudio
from moss_cli.cli import app
from moss_cli.engine.base import DecodingOptions
from moss_cli.errors import CheckpointError, MossError, OutputError, UsageError
from moss_cli.model import int8_checkpoint
from moss_cli.model.int8_checkpoint import write_int8_checkpoint
from moss_cli.model.loading import load_model
from moss_cli.model.quantize import Int8Linear

pytestmark = pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines,
                                reason="int8 kernels need an x86 CPU (FBGEMM)")


def _int8_numbers(model) -> dict[str, tuple]:
    """Each int8 layer's rows as FBGEMM holds them (unpacked), scales and bias."""
    numbers = {}
    for name, layer in model.named_modules():
        if isinstance(layer, Int8Linear):
            scales = layer.scales  # waits for a layer built in the background
            rows = torch.cat([torch.ops.quantized.linear_unpack(block)[0].int_repr() for block in layer._packed_blocks])
            numbers[name] = (rows, scales, layer.bias)
    return numbers


def _same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys() and first
    for name, numbers in first.items():
        for mine, theirs in zip(numbers, second[name]):
            assert (mine is None and theirs is None) or torch.equal(mine, theirs), name


@pytest.mark.parametrize("spec", [TinySpec(), TinySpec(tied=True), TinySpec(dtype="bfloat16")], ids=["plain", "tied", "bf16"])
def test_an_int8_checkpoint_loads_to_the_numbers_quantizing_its_source_gives(tmp_path, spec):
    source = write_checkpoint(tmp_path / "source", spec, shards=2)
    write_int8_checkpoint(source, tmp_path / "int8")
    stored = MossAudio.load(str(tmp_path / "int8"), device="cpu")  # int8 without being asked: it is stored so
    rounded_at_load = MossAudio.load(str(source), device="cpu", quantize="int8")
    _same(_int8_numbers(stored.model), _int8_numbers(rounded_at_load.model))
    assert stored.where == rounded_at_load.where == "cpu in float32, int8 weights"  # what the CLI says it runs
    # What is not rounded (the encoder, norms, embeddings) is the source's, converted as a load converts it.
    floats = {name: t for name, t in rounded_at_load.model.state_dict().items() if t.is_floating_point()}
    assert {name: t for name, t in stored.model.state_dict().items() if t.is_floating_point()}.keys() == floats.keys()
    for name, tensor in stored.model.state_dict().items():
        if name in floats:
            assert torch.equal(tensor, floats[name]), name
    samples = torch.randn(16000 * 3, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    options = DecodingOptions(max_new_tokens=12)
    assert stored.ask(samples, "Describe it.", options).token_ids == rounded_at_load.ask(samples, "Describe it.", options).token_ids
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    assert config["moss_quantization"]["method"] == "int8" and config["tie_word_embeddings"] is False
    assert (tmp_path / "int8" / "vocab.json").read_bytes() == (source / "vocab.json").read_bytes()


def test_a_weight_and_its_scales_may_land_in_different_shards(tmp_path, monkeypatch):
    source = write_checkpoint(tmp_path / "source", TinySpec())
    monkeypatch.setattr(int8_checkpoint, "SHARD_SIZE", 3000)  # bytes: dozens of shards, pairs split across them
    write_int8_checkpoint(source, tmp_path / "int8")
    index = json.loads((tmp_path / "int8" / "model.safetensors.index.json").read_text())
    weight_map = index["weight_map"]
    assert len(set(weight_map.values())) > 10
    assert any(weight_map[name] != weight_map[name.removesuffix("weight_scale") + "weight"]
               for name in weight_map if name.endswith(".weight_scale"))
    stored = load_model(tmp_path / "int8", torch.device("cpu"), torch.float32, quantize="int8")
    rounded_at_load = load_model(source, torch.device("cpu"), torch.float32, quantize="int8")
    _same(_int8_numbers(stored), _int8_numbers(rounded_at_load))
    assert os.stat(next((tmp_path / "int8").glob("model-*.safetensors"))).st_mode & 0o044  # not owner-only


def test_what_cannot_be_written_or_read_is_refused_in_one_line(tmp_path, monkeypatch):
    source = write_checkpoint(tmp_path / "source", TinySpec())
    (tmp_path / "taken").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        write_int8_checkpoint(source, tmp_path / "taken")
    write_int8_checkpoint(source, tmp_path / "int8")
    with pytest.raises(CheckpointError, match="already holds int8"):
        write_int8_checkpoint(tmp_path / "int8", tmp_path / "again")
    with pytest.raises(CheckpointError, match="--quantize int8 only"):
        load_model(tmp_path / "int8", torch.device("cpu"), torch.float32)
    with pytest.raises(MossError, match="int8 weights .* run beside float32, not bfloat16: --dtype float32 or auto"):
        MossAudio.load(str(tmp_path / "int8"), device="cpu", dtype="bfloat16")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        write_int8_checkpoint(source, tmp_path / "full")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["int8", "source", "taken"]  # nothing half-written


def test_an_int8_checkpoint_with_a_float_layer_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    write_int8_checkpoint(write_checkpoint(tmp_path / "source", TinySpec()), tmp_path / "int8")
    weights = load_file(tmp_path / "int8" / "model.safetensors")
    name = next(name for name in weights if name.endswith("mlp.up_proj.weight"))
    weights[name] = weights[name].float()
    save_file(weights, tmp_path / "int8" / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"tensor {name} is F32, expected I8"):
        MossAudio.load(str(tmp_path / "int8"), device="cpu")


def test_moss_quantize_writes_the_folder_that_runs_take(tmp_path):
    source = write_checkpoint(tmp_path / "source", TinySpec())
    result = CliRunner().invoke(app, ["quantize", "-m", str(source), str(tmp_path / "int8")])
    assert result.exit_code == 0, result.output
    assert f"run it with -m {tmp_path / 'int8'}" in result.stderr
    assert MossAudio.load(str(tmp_path / "int8"), device="cpu").model.lm_head.__class__ is Int8Linear
    again = CliRunner().invoke(app, ["quantize", "-m", str(source), str(tmp_path / "int8")])
    assert again.exit_code == 2 and "already exists" in again.stderr and "Traceback" not in again.output


def test_a_thinking_checkpoint_stays_one_under_any_folder_name(tmp_path):
    thinking = write_checkpoint(tmp_path / "MOSS-Audio-4B-Thinking", TinySpec())
    write_int8_checkpoint(thinking, tmp_path / "int8-a")
    write_int8_checkpoint(write_checkpoint(tmp_path / "MOSS-Audio-4B-Instruct", TinySpec()), tmp_path / "int8-b")
    assert MossAudio.load(str(tmp_path / "int8-a"), device="cpu").thinking is True
    assert MossAudio.load(str(tmp_path / "int8-b"), device="cpu").thinking is False
    assert MossAudio.load(str(tmp_path / "int8-a"), device="cpu", thinking=False).thinking is False  # --no-thinking
