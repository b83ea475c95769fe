"""The windowed audio encoder: conv stem + Whisper encoder layers, 4 s windows encoded on their own."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError
from .config import AudioEncoderConfig

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu}  # as transformers' ACT2FN runs them


@dataclass
class EncodedAudio:
    """Encoder output for one recording: N = ceil(frames / 8) tokens."""

    last_hidden: torch.Tensor  # (N, output_dim), after the final LayerNorm (and out_proj, where there is one)
    taps: list[torch.Tensor]  # DeepStack taps, each (N, output_dim), before the final LayerNorm (after out_proj)

    @classmethod
    def cat(cls, parts: list[EncodedAudio]) -> EncodedAudio:
        """Several recordings' states end to end, in the order their prompts are batched."""
        taps = [torch.cat([p.taps[k] for p in parts]) for k in range(len(parts[0].taps))]
        return cls(torch.cat([p.last_hidden for p in parts]), taps)


def conv_output_length(frames: int | torch.Tensor) -> int | torch.Tensor:
    """Length after three Conv(k=3, s=2, p=1) layers: (L - 1) // 2 + 1, three times."""
    for _ in range(3):
        frames = (frames - 1) // 2 + 1
    return frames


def sinusoid_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Whisper's sinusoids, (length, dim): sin half then cos half, computed in float32."""
    increment = math.log(10_000.0) / (dim // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(dim // 2, device=device, dtype=torch.float32))
    scaled = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


class EncoderAttention(nn.Module):
    """Whisper's self-attention for the encoder: k_proj without bias; the query scaled before the product."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scaling = self.head_dim**-0.5
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, fused: bool) -> torch.Tensor:
        """x (B, L, d), mask additive (B, 1, 1, L). The operations of transformers' WhisperAttention, in its
        order: eager (the reference's) or SDPA with the same mask and scale 1."""
        shape = (x.shape[0], -1, self.heads, self.head_dim)
        query = (self.q_proj(x) * self.scaling).view(shape).transpose(1, 2).contiguous()
        key = self.k_proj(x).view(shape).transpose(1, 2).contiguous()
        value = self.v_proj(x).view(shape).transpose(1, 2).contiguous()
        if fused:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, scale=1.0)
        else:
            weights = torch.matmul(query, key.transpose(2, 3)) + mask  # the query carries the scale
            out = torch.matmul(F.softmax(weights, dim=-1), value)
        out = out.transpose(1, 2).contiguous()
        return self.out_proj(out.reshape(*x.shape[:-1], -1).contiguous())


class EncoderLayer(nn.Module):
    """A Whisper encoder layer (pre-norm attention, then pre-norm MLP); submodule names are the checkpoint's."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        if config.activation_function not in ACTIVATIONS:
            raise CheckpointError(
                f"config.json: audio_config activation_function {config.activation_function!r} is not supported"
            )
        width = config.d_model
        self.self_attn = EncoderAttention(width, config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.activation = ACTIVATIONS[config.activation_function]
        self.fc1 = nn.Linear(width, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, width)
        self.final_layer_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, fused: bool = False) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask, fused)
        x = x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))
        if x.dtype == torch.float16:  # as Whisper's layer: keep half-precision states finite
            limit = torch.finfo(x.dtype).max - 1000
            x = torch.clamp(x, min=-limit, max=limit)
        return x


class MossAudioEncoder(nn.Module):
    """Attribute names are the checkpoint keys under `audio_encoder.`."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.config = config
        channels = config.downsample_hidden_size
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        self.stem_proj = nn.Linear(config.stem_features, config.d_model)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        # As the official encoder: a bias-free projection only where output_dim differs (elsewhere an
        # identity, with no tensor in the checkpoint).
        self.out_proj = (
            nn.Linear(config.d_model, config.output_dim, bias=False) if config.output_dim != config.d_model else None
        )
        # Taps go to the mergers in the order the config lists them (merger k gets the k-th listed
        # layer), as the official encoder hands them over; released configs happen to be sorted.
        self._tap_order = tuple(config.deepstack_encoder_layer_indexes)
        # The reference runs these layers with eager attention. Windows are only 50 tokens long,
        # so a fused kernel would save little on CPU, and eager keeps results bit-close to the reference.
        self.attention = "eager"

    def use_attention(self, implementation: str) -> None:
        """"eager" (as the reference runs) or "sdpa" (fused kernels, for GPUs)."""
        if implementation not in ("eager", "sdpa"):
            raise ValueError(f"attention {implementation!r}: not one of eager, sdpa")
        self.attention = implementation

    def forward(self, mel: torch.Tensor) -> EncodedAudio:
        """mel (n_mels, T) -> EncodedAudio with ceil(T / 8) tokens."""
        return self.forward_many([mel])[0]

    def forward_many(self, mels: list[torch.Tensor]) -> list[EncodedAudio]:
        """Several recordings at once: their 4 s windows share encoder batches.

        The reference pads every window of a recording to that recording's longest window (4 s,
        or the whole clip if shorter), which changes the conv outputs at a short window's edge.
        Windows are therefore batched only with others padded to the same length.
        """
        windows = []  # (recording, window index, pad_to, window)
        for r, mel in enumerate(mels):
            pieces = mel.split(self.config.window_frames, dim=-1)
            windows += [(r, w, pieces[0].shape[-1], piece) for w, piece in enumerate(pieces)]
        outputs: dict[tuple[int, int], tuple[torch.Tensor, list[torch.Tensor]]] = {}
        for pad_to in sorted({w[2] for w in windows}):
            group = [w for w in windows if w[2] == pad_to]
            for start in range(0, len(group), self.config.conv_chunksize):
                batch = group[start : start + self.config.conv_chunksize]
                hidden, taps = self.encode_windows([w[3] for w in batch], pad_to)
                for i, (r, w, _, piece) in enumerate(batch):
                    valid = conv_output_length(piece.shape[-1])
                    outputs[r, w] = (hidden[i, :valid], [tap[i, :valid] for tap in taps])
        return [self._joined([outputs[r, w] for (rr, w, _, _) in windows if rr == r]) for r in range(len(mels))]

    @staticmethod
    def _joined(parts: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> EncodedAudio:
        hidden = torch.cat([h for h, _ in parts])
        taps = [torch.cat([t[k] for _, t in parts]) for k in range(len(parts[0][1]))]
        return EncodedAudio(hidden, taps)

    def stem(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> convs -> (B, C, n_mels / 8, T / 8) -> (B, T / 8, C * n_mels / 8) -> (B, T / 8, d)."""
        x = mel.unsqueeze(1)
        for conv in (self.conv1, self.conv2, self.conv3):
            x = nn.functional.gelu(conv(x))
        # contiguous() as the reference does: the GEMM on a transposed view rounds differently
        # (1 bf16 ulp at the stem, growing through the layers).
        return self.stem_proj(x.permute(0, 3, 1, 2).contiguous().flatten(2))

    def encode_windows(self, windows: list[torch.Tensor], pad_to: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode up to conv_chunksize windows, zero-padded to `pad_to` frames, as one batch.

        Padding the short last window into the batch (rather than encoding it alone) is what the
        reference does, and it changes the conv outputs at the window's edge, so we keep it.
        Returns hidden (B, L, output_dim) and the DeepStack taps, each (B, L, output_dim).
        """
        lengths = torch.tensor([w.shape[-1] for w in windows], device=windows[0].device)
        # 1. Pad: (B, n_mels, pad_to)
        x = windows[0].new_zeros(len(windows), windows[0].shape[0], pad_to)
        for i, window in enumerate(windows):
            x[i, :, : window.shape[-1]] = window
        x = x.to(self.stem_proj.weight.dtype)
        # 2. Conv stem: (B, n_mels, T) -> (B, T / 8, d)
        x = self.stem(x)
        out_lengths = conv_output_length(lengths)
        x = x[:, : int(out_lengths.max())]
        # 3. Positions restart at 0 in every window.
        x = x + sinusoid_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        # 4. Whisper layers with padded keys masked out: additive mask (B, 1, 1, L)
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lengths[:, None]
        mask = torch.zeros(padding.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(padding, torch.finfo(x.dtype).min)[:, None, None, :]
        states: dict[int, torch.Tensor] = {}
        fused = self.attention == "sdpa"
        for index, layer in enumerate(self.layers):
            x = layer(x, mask, fused)
            if index in self._tap_order:
                states[index] = x
        return self._projected(self.layer_norm(x)), [self._projected(states[index]) for index in self._tap_order]

    def _projected(self, states: torch.Tensor) -> torch.Tensor:
        """out_proj over a whole batch of windows, where the official encoder applies it: after the final
        norm for the output, and to each tap as it is (taps are not normalized)."""
        return states if self.out_proj is None else self.out_proj(states)
