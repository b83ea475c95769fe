"""MOSS-Audio: windowed audio encoder -> gated-MLP adapter -> Qwen3 decoder, with DeepStack injection."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import torch
from torch import nn

from ..interrupts import result_of, started
from . import decoder
from .config import MossAudioConfig
from .decoder import StaticCache
from .encoder import EncodedAudio, MossAudioEncoder
from .greedy_head import ScreenedHead, first_argmax
from .joining import join_projections
from .qwen3 import KVCache, Qwen3Model


class GatedMLP(nn.Module):
    """down(silu(gate(x)) * up(x)), no biases: the adapter and every DeepStack merger."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(input_size, hidden_size, bias=False)
        self.up_proj = nn.Linear(input_size, hidden_size, bias=False)
        self.down_proj = nn.Linear(hidden_size, output_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class MossAudioModel(nn.Module):
    """Attribute names are the checkpoint keys. Knows nothing about tokenization or prompts."""

    def __init__(self, config: MossAudioConfig):
        super().__init__()
        self.config = config
        hidden = config.language.hidden_size
        self.audio_encoder = MossAudioEncoder(config.audio)
        self.language_model = Qwen3Model(config.language)
        width = config.audio.output_dim  # the encoder's out_proj width (d_model where it has none)
        self.audio_adapter = GatedMLP(width, config.adapter_hidden_size, hidden)
        self.deepstack_audio_merger_list = nn.ModuleList(
            GatedMLP(width, config.adapter_hidden_size, hidden)
            for _ in range(config.num_deepstack_mergers)
        )
        self.lm_head = nn.Linear(hidden, config.language.vocab_size, bias=False)
        self._screen: ScreenedHead | None = None  # see greedy_screen
        self._screen_building: Future | None = None

    @property
    def greedy_screen(self) -> ScreenedHead | None:
        """The int8 screen of the float32 output layer on CPU (model/greedy_head.py), None where there is
        none. prepare_head_for_cpu builds it in a thread (seconds for a 4B head); this waits for it."""
        if self._screen_building is not None:
            try:  # in slices, as every wait of the run: Ctrl-C taken by another thread is seen at once
                self._screen = result_of(self._screen_building)
            except Exception:  # out of memory, say: the full product gives the same tokens, only slower
                self._screen = None
            self._screen_building = None
        return self._screen

    @greedy_screen.setter
    def greedy_screen(self, screen: ScreenedHead | None) -> None:
        self._screen_building, self._screen = None, screen

    @property
    def device(self) -> torch.device:
        return self.language_model.embed_tokens.weight.device  # never quantized, unlike the head

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    def new_cache(self) -> KVCache:
        return KVCache()

    def joined_cache(self, caches: list[KVCache], width: int) -> KVCache:
        """One-row caches as one batch, each row left-padded to `width` positions (masked later)."""
        joined = self.new_cache()
        for index in range(len(caches[0].layers)):
            keys, values = [], []
            for cache in caches:
                layer = cache.layers[index]
                pad = width - layer.keys.shape[-2]
                keys.append(nn.functional.pad(layer.keys, (0, 0, pad, 0)))
                values.append(nn.functional.pad(layer.values, (0, 0, pad, 0)))
            joined.update(torch.cat(keys), torch.cat(values), index)
        return joined

    @torch.inference_mode()
    def encode_audio(self, mel: torch.Tensor) -> EncodedAudio:
        """mel (n_mels, T) -> encoder states, N = ceil(T / 8) tokens."""
        return self.audio_encoder(mel.to(self.device))

    @torch.inference_mode()
    def encode_many(self, mels: list[torch.Tensor]) -> list[EncodedAudio]:
        """Several recordings through the encoder in shared window batches."""
        return self.audio_encoder.forward_many([mel.to(self.device) for mel in mels])

    @torch.inference_mode()
    def prefill(
        self, input_ids: torch.Tensor, audio_mask: torch.Tensor, audio: EncodedAudio | None, cache: KVCache,
    ) -> torch.Tensor:
        """Run prompts (B, S) of one length through the LLM, filling `cache`; returns last-position
        logits (B, V). `audio` holds the states of every row's audio in row order."""
        return self.logits(self.prefill_hidden(input_ids, audio_mask, audio, cache))

    @torch.inference_mode()
    def prefill_hidden(
        self, input_ids: torch.Tensor, audio_mask: torch.Tensor, audio: EncodedAudio | None, cache: KVCache,
    ) -> torch.Tensor:
        """`prefill`, returning the last position's hidden state (B, H) instead of its logits."""
        embeds = self.language_model.embed_tokens(input_ids)  # (B, S, H)
        deepstack: list[torch.Tensor] = []
        if audio is not None:
            count = int(audio_mask.sum())
            if count != audio.last_hidden.shape[0]:
                raise ValueError(f"prompt has {count} audio positions, encoder gave {audio.last_hidden.shape[0]}")
            # 1. Audio embeddings replace the placeholder embeddings.
            embeds = embeds.clone()
            embeds[audio_mask] = self.audio_adapter(audio.last_hidden).to(embeds.dtype)
            # 2. Merged taps k are added after LLM layer k, at audio positions, during prefill only. With
            # more mergers than LLM layers, the official code injects into every layer and leaves the
            # rest unused; their outputs would change nothing, so they are not computed.
            mergers = self.deepstack_audio_merger_list[: len(self.language_model.layers)]
            deepstack = [merge(tap) for merge, tap in zip(mergers, audio.taps)]
        hidden = self.language_model(embeds, cache, deepstack=deepstack, audio_mask=audio_mask)
        return hidden[:, -1]

    def decoding_cache(self, cache: KVCache, room: int) -> KVCache | StaticCache:
        """The cache to decode `room` more tokens with: a prefilled cache copied into reserved space
        (see model/decoder.py), or the cache itself where the fast step does not apply."""
        if not decoder.supported(self.language_model):
            return cache
        return StaticCache.from_dynamic(cache, room)

    @torch.inference_mode()
    def decode_step(
        self, token_ids: torch.Tensor, cache: KVCache | StaticCache, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed new tokens (B, n) after the cached ones; returns last-position logits (B, V).

        With padded batches, `attention_mask` covers cached and new tokens and `position_ids` (B, n)
        continue each row's own count. A StaticCache takes one token per row, on the fast path.
        """
        return self.logits(self.step_hidden(token_ids, cache, attention_mask, position_ids))

    @torch.inference_mode()
    def step_hidden(
        self, token_ids: torch.Tensor, cache: KVCache | StaticCache, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`decode_step`, returning the last position's hidden state (B, H) instead of its logits."""
        if isinstance(cache, StaticCache):
            return decoder.decode_step(self.language_model, token_ids, cache, position_ids, attention_mask)
        if attention_mask is None:
            position_ids = None
        hidden = self.language_model(self.language_model.embed_tokens(token_ids), cache, attention_mask, position_ids)
        return hidden[:, -1]

    @torch.inference_mode()
    def greedy_tokens(self, last_hidden: torch.Tensor) -> list[int]:
        """The argmax token of each row's logits (B, H) -> B ids; through the int8 screen where there
        is one (see model/greedy_head.py), else from the full logits."""
        if self.greedy_screen is not None:
            return self.greedy_screen.argmax(last_hidden)
        return first_argmax(self.logits(last_hidden).float()).tolist()

    @torch.inference_mode()
    def logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """lm_head over (B, H) -> (B, V).

        On CPU a float32 head stored row-major (V, H) is multiplied as head @ rows.T for several rows,
        which BLAS runs up to 2x faster than rows @ head.T. Half-precision and int8 heads keep
        nn.Linear, so their rounding does not depend on the layout.
        """
        plain = isinstance(self.lm_head, nn.Linear) and self.dtype == torch.float32  # not int8, not half
        row_major = plain and self.lm_head.weight.stride(1) == 1
        if self.device.type == "cpu" and plain and last_hidden.shape[0] == 1:
            return decoder.one_row_linear(last_hidden, self.lm_head.weight, self.lm_head.bias)
        if self.device.type != "cpu" or last_hidden.shape[0] == 1 or not row_major:
            return self.lm_head(last_hidden)
        return torch.mm(self.lm_head.weight, last_hidden.t()).t()

    def prepare_for_cpu(self) -> None:
        """On CPU in float32: the decoding step's projections joined (model/joining.py) and the output
        layer's greedy screen started (prepare_head_for_cpu)."""
        if self.device.type == "cpu" and self.dtype == torch.float32 and decoder.supported(self.language_model):
            join_projections(self.language_model)
        self.prepare_head_for_cpu()

    def prepare_head_for_cpu(self) -> None:
        """On CPU, a float32 output layer gets an int8 greedy screen (model/greedy_head.py), built in a
        background thread beside the first recording's decoding, encoding and prefill; the first greedy
        step waits for it.

        The head stays row-major, as stored: the screen rescores its candidates by reading their rows
        (80 rows a token on the benchmark's random model: 0.5 ms, against 2.1 ms for the same rows of a
        column-major copy). A column-major head would make the full product, which sampling reads at
        every step, about 20% faster (151,936 x 512, 5 rows: 27 ms against 35 ms); greedy decoding, every
        task's default, reads only the int8 copy and the candidates.
        """
        weight = self.lm_head.weight
        if self.device.type != "cpu" or weight.dtype != torch.float32 or not isinstance(self.lm_head, nn.Linear):
            return
        stop = threading.Event()  # set at exit: a run that ends first (no speech found) must not exit under the build
        self._screen_building = started(ScreenedHead, weight.detach(), self.logits, stop, name="moss-greedy-screen",
                                        stop=stop)
