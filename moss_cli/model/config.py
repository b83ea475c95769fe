"""Config dataclasses mirroring the checkpoint's `config.json`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError


@dataclass(frozen=True)
class AudioEncoderConfig:
    """`audio_config`: the Whisper-style encoder behind a conv stem."""

    d_model: int = 1280
    output_dim: int = 1280  # width fed to the adapters; != d_model adds a bias-free out_proj (no release has one)
    num_mel_bins: int = 128
    encoder_layers: int = 32
    encoder_attention_heads: int = 20
    encoder_ffn_dim: int = 5120
    downsample_rate: int = 8  # read but ignored, as the official code does: the stem is always three stride-2 convs
    downsample_hidden_size: int = 480  # conv channels; stem_proj sees 480 * 16 features
    n_window: int = 200  # the encoder sees windows of 2 * n_window mel frames (4 s)
    conv_chunksize: int = 64  # windows per encoder batch
    max_source_positions: int = 1500
    activation_function: str = "gelu"
    layer_norm_eps: float = 1e-5
    deepstack_encoder_layer_indexes: tuple[int, ...] = (8, 16, 24)  # taps, 0-based, before the final norm
    encoder_attention_window_size: int = 100  # present in configs, unused by every implementation

    @property
    def window_frames(self) -> int:
        return 2 * self.n_window

    @property
    def stem_features(self) -> int:
        # Three stride-2 convs halve 128 mel bins to 16. The official code writes the 16 out and never
        # reads downsample_rate, so a checkpoint with another rate still has these shapes.
        return self.downsample_hidden_size * 16


@dataclass
class LanguageConfig:
    """`language_config`: the Qwen3 decoder's shape, the fields Qwen3Config would hold for it (same
    defaults). Read here rather than through transformers, whose config module pulls in its model code."""

    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 22016
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = 32  # None: as many as the query heads
    head_dim: int = 128
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    attention_bias: bool = False
    pad_token_id: int | None = None
    layer_types: tuple[str, ...] | None = None  # None: every layer full attention (no release slides)
    # Not in config.json: "sdpa" (what transformers picks for Qwen3) or "eager" (the benchmark's baseline)
    attention: str = "sdpa"

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.layer_types is None:
            self.layer_types = ("full_attention",) * self.num_hidden_layers

    @property
    def has_sliding_layers(self) -> bool:
        return "sliding_attention" in self.layer_types



@dataclass(frozen=True)
class MossAudioConfig:
    """Root of `config.json`: encoder, adapter width, DeepStack and the Qwen3 language model."""

    audio: AudioEncoderConfig
    language: LanguageConfig
    adapter_hidden_size: int = 8192  # gated-MLP width of the adapter and DeepStack mergers
    deepstack_num_inject_layers: int | None = None  # None: one merger per encoder tap
    dtype: str = "bfloat16"  # dtype the weights were saved in
    tie_word_embeddings: bool = False  # root key: lm_head shares embed_tokens (a stored lm_head is ignored)
    quantization: str | None = None  # "int8": written by `moss quantize` (model/int8_checkpoint.py)
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def num_deepstack_mergers(self) -> int:
        taps = len(self.audio.deepstack_encoder_layer_indexes)
        if self.deepstack_num_inject_layers is None:
            return taps
        return min(taps, int(self.deepstack_num_inject_layers))

    @classmethod
    def from_dict(cls, raw: dict) -> MossAudioConfig:
        if raw.get("model_type") != "moss_audio":
            raise CheckpointError(f"config.json: model_type is {raw.get('model_type')!r}, expected 'moss_audio'")
        if not isinstance(raw.get("audio_config"), dict) or not isinstance(raw.get("language_config"), dict):
            raise CheckpointError("config.json: audio_config and language_config must both be present")
        audio = _audio_config(raw["audio_config"])
        language = _language_config(raw["language_config"])
        return cls(
            audio=audio,
            language=language,
            adapter_hidden_size=int(raw.get("adapter_hidden_size", 8192)),
            deepstack_num_inject_layers=raw.get("deepstack_num_inject_layers"),
            dtype=str(raw.get("dtype") or raw.get("torch_dtype") or "bfloat16"),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            quantization=_quantization(raw),
            extra=raw,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> MossAudioConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read config ({exc})") from None
        return cls.from_dict(raw)


QUANTIZATION_KEY = "moss_quantization"  # config.json's record of how `moss quantize` stored the weights
INT8_SCALES = "weight_scale"  # beside an int8 checkpoint's `<layer>.weight`: one float32 scale per row


def _quantization(raw: dict) -> str | None:
    entry = raw.get(QUANTIZATION_KEY)
    if entry is None:
        return None
    method = entry.get("method") if isinstance(entry, dict) else None
    if method != "int8":
        raise CheckpointError(f"config.json: {QUANTIZATION_KEY} {entry!r} is not one this version reads (int8)")
    return method


def _audio_config(raw: dict) -> AudioEncoderConfig:
    known = {f.name for f in dataclasses.fields(AudioEncoderConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    if "deepstack_encoder_layer_indexes" in values:
        values["deepstack_encoder_layer_indexes"] = tuple(values["deepstack_encoder_layer_indexes"] or ())
    config = AudioEncoderConfig(**values)
    _check_taps(config)
    return config


def _language_config(raw: dict) -> LanguageConfig:
    """The fields moss reads; the rest (initializer_range, use_cache...) change nothing at inference. A
    setting that would change the numbers and that moss's decoder does not implement is refused."""
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else rope
    if rope_type != "default":
        raise CheckpointError(f"config.json: language_config rope scaling {rope_type!r} is not supported")
    sliding = bool(raw.get("use_sliding_window")) and raw.get("sliding_window") is not None
    layer_types = raw.get("layer_types")
    if sliding or (layer_types and "sliding_attention" in layer_types):
        raise CheckpointError("config.json: language_config sliding-window attention is not supported")
    known = {f.name for f in dataclasses.fields(LanguageConfig)} - {"attention", "layer_types"}
    values = {k: v for k, v in raw.items() if k in known}
    if isinstance(rope, dict) and "rope_theta" in rope:  # transformers 5 writes it inside rope_parameters
        values.setdefault("rope_theta", rope["rope_theta"])
    if layer_types:
        values["layer_types"] = tuple(layer_types)
    return LanguageConfig(**values)


def _check_taps(config: AudioEncoderConfig) -> None:
    """Each tap a distinct encoder layer. The official encoder collects the layers whose index is in
    the list, so a repeated or missing layer gives fewer taps than listed and it refuses the
    checkpoint ("Deepstack output count does not match"); moss refuses it at load, naming the field."""
    field_name = "audio_config.deepstack_encoder_layer_indexes"
    taps = config.deepstack_encoder_layer_indexes
    repeated = sorted({t for t in taps if taps.count(t) > 1})
    if repeated:
        raise CheckpointError(
            f"config.json: {field_name} {list(taps)} repeats layer {repeated[0]}; each tap must be a distinct layer"
        )
    outside = [t for t in taps if not isinstance(t, int) or not 0 <= t < config.encoder_layers]
    if outside:
        raise CheckpointError(
            f"config.json: {field_name} {list(taps)} names layer {outside[0]}, but the encoder has layers "
            f"0..{config.encoder_layers - 1} (encoder_layers {config.encoder_layers})"
        )
