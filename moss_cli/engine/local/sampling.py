"""Picking each next token: greedy, or sampled through transformers' logits warpers; what a decode ends with."""

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
            self.warpers = _logits_warpers(options)

    def __call__(self, logits: torch.Tensor) -> int:
        import torch

        logits = logits.float()  # (1, V)
        if self.options.greedy:
            return int(logits.argmax(dim=-1))
        scores = self.warpers(None, logits)
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def _logits_warpers(options: DecodingOptions):
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList([TemperatureLogitsWarper(options.temperature)])
    if options.top_k:
        warpers.append(TopKLogitsWarper(options.top_k))
    if options.top_p < 1.0:
        warpers.append(TopPLogitsWarper(options.top_p))
    return warpers
