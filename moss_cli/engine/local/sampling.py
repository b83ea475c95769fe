"""Picking each next token: greedy, or sampled as transformers' logits warpers sample; what a decode ends with."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base import DecodingOptions


@dataclass
class Decoded:
    token_ids: list[int]
    finish_reason: str  # "stop" (end of turn), "length" (token cap) or "repetition" (loop guard)


class TokenSampler:
    """Picks the next token from logits: argmax, or temperature -> top-k -> top-p sampling."""

    def __init__(self, options: DecodingOptions, device: torch.device):
        import torch

        self.options = options
        self.generator = None
        if not options.greedy:
            self.generator = torch.Generator(device=device)
            if options.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(options.seed)

    def __call__(self, logits: torch.Tensor) -> int:
        import torch

        logits = logits.float()  # (1, V)
        if self.options.greedy:
            return int(logits.argmax(dim=-1))
        scores = warped(logits, self.options)
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def warped(scores: torch.Tensor, options: DecodingOptions) -> torch.Tensor:
    """Temperature, then top-k, then top-p over logits (1, V): the arithmetic of transformers'
    Temperature/TopK/TopPLogitsWarper in that order (min_tokens_to_keep 1, filtered scores -inf), written
    out because importing transformers' generation package costs a second of every start."""
    import torch

    scores = scores / options.temperature
    if options.top_k:
        top_k = min(max(options.top_k, 1), scores.size(-1))
        scores = scores.masked_fill(scores < torch.topk(scores, top_k)[0][..., -1, None], -float("inf"))
    if options.top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - options.top_p)
        remove[..., -1:] = 0  # the likeliest token always stays
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
    return scores
