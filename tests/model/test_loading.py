import json

import pytest
import torch
from support.recordings import synthetic_speechlike
from support.tiny_checkpoint import TinySpec, random_weights, write_checkpoint, write_weights

from moss_cli import MossAudio
from moss_cli.engine.local.engine import resolve_device, resolve_dtype
from moss_cli.errors import CheckpointError, ModelUnavailableError, MossError
from moss_cli.model.loading import resolve_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return write_checkpoint(tmp_path / "ckpt", TinySpec())


def test_missing_tensor_is_named(checkpoint):
    weights = random_weights(TinySpec())
    del weights["audio_encoder.layers.1.fc2.bias"]
    write_weights(checkpoint, weights)
    with pytest.raises(CheckpointError, match=r"lacks tensor audio_encoder\.layers\.1\.fc2\.bias"):
        MossAudio.load(str(checkpoint), device="cpu")


def test_misshapen_tensor_is_named_with_both_shapes(checkpoint):
    weights = random_weights(TinySpec())
    weights["deepstack_audio_merger_list.1.up_proj.weight"] = torch.zeros(24, 17)
    write_weights(checkpoint, weights, shards=2)
    with pytest.raises(CheckpointError) as info:
        MossAudio.load(str(checkpoint), device="cpu")
    message = str(info.value)
    assert "deepstack_audio_merger_list.1.up_proj.weight" in message and "[24, 17]" in message and "[24, 16]" in message
    assert "\n" not in message


def test_unexpected_tensor_is_named(checkpoint):
    weights = random_weights(TinySpec())
    weights["audio_encoder.out_proj.weight"] = torch.zeros(16, 16)
    write_weights(checkpoint, weights)
    with pytest.raises(CheckpointError, match="unexpected tensor audio_encoder.out_proj.weight"):
        MossAudio.load(str(checkpoint), device="cpu")


def test_missing_shard_is_named(checkpoint):
    write_weights(checkpoint, random_weights(TinySpec()), shards=2)
    (checkpoint / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        MossAudio.load(str(checkpoint), device="cpu")


def test_wrong_model_type(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["model_type"] = "qwen3"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_type"):
        MossAudio.load(str(checkpoint), device="cpu")


def test_directory_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="lacks config.json"):
        resolve_checkpoint(str(tmp_path / "empty"))


def test_unknown_hub_id_offline():
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE") as info:
        resolve_checkpoint("OpenMOSS-Team/not-a-model")
    assert "--model" in str(info.value)


def test_not_a_path_nor_a_hub_id(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not a checkpoint directory"):
        resolve_checkpoint(str(tmp_path / "missing" / "dir"))


def test_hub_id_resolves_from_the_cache_offline(tmp_path, monkeypatch):
    """The Hugging Face cache layout: models--org--name/snapshots/<commit>/ with refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--OpenMOSS-Team--MOSS-Audio-Tiny"
    write_checkpoint(repo / "snapshots" / commit, TinySpec())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    folder = resolve_checkpoint("OpenMOSS-Team/MOSS-Audio-Tiny")
    assert folder.name == commit
    assert MossAudio.load("OpenMOSS-Team/MOSS-Audio-Tiny", device="cpu").ask(
        synthetic_speechlike(1.0), "Hi",
        __import__("moss_cli").DecodingOptions(max_new_tokens=12)).finish_reason in {"stop", "length"}


def test_device_and_dtype_choices():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(MossError):
        resolve_dtype("int8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(MossError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_bfloat16_on_cpu_runs(checkpoint):
    engine = MossAudio.load(str(checkpoint), device="cpu", dtype="bfloat16")
    assert engine.model.dtype == torch.bfloat16
    answer = engine.ask(synthetic_speechlike(2.0), "Describe the audio.",
                        __import__("moss_cli").DecodingOptions(max_new_tokens=12))
    assert len(answer.token_ids) >= 1


@pytest.mark.parametrize("keep", [0.5, 0.001])
def test_truncated_weights_file_is_a_checkpoint_error_naming_it(checkpoint, keep, wav_file):
    from typer.testing import CliRunner

    from moss_cli.cli.app import app

    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: damaged or truncated weights file"):
        MossAudio.load(str(checkpoint), device="cpu")
    result = CliRunner().invoke(app, ["ask", str(wav_file), "What is it?", "--model", str(checkpoint)])
    assert result.exit_code == 2
    assert "model.safetensors: damaged or truncated" in result.stderr and "Traceback" not in result.stderr


def test_only_the_loading_thread_skips_random_initialisation():
    import threading

    from moss_cli.model.loading import _no_initialisation

    def seeded_linear():
        torch.manual_seed(5)
        return torch.nn.Linear(4, 4, device="cpu")

    built = {}
    with torch.device("meta"), _no_initialisation():
        skipped = torch.nn.Linear(4, 4)  # on meta, where a random fill would import torch._dynamo
        other = threading.Thread(target=lambda: built.setdefault("linear", seeded_linear()))
        other.start()
        other.join()
    assert skipped.weight.is_meta
    expected = seeded_linear().weight  # this thread's modules are initialised again after the load
    assert torch.equal(built["linear"].weight, expected)  # another thread's were during it
