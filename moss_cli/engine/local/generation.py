"""Prompts through the model: left-padded batches with per-row stopping, and shared prefixes.

A batch gives each row the tokens one-at-a-time decoding would: padding is masked, positions
count from each row's first real token, and a row that stops leaves the batch (its cache rows
are dropped) so the rest run at the smaller size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ...model.encoder import EncodedAudio
from ...model.modeling import MossAudioModel
from ..base import DecodingOptions, RepetitionGuard
from ..prompts import AUDIO_TOKEN_ID, Prompt
from .sampling import Decoded, TokenSampler

PAD_ID = 151643  # <|endoftext|>: any id works under the mask; this one is the tokenizer's pad


@dataclass
class Job:
    prompt: Prompt
    audio: EncodedAudio | None
    options: DecodingOptions
    guard: RepetitionGuard | None = None


def generate(model: MossAudioModel, jobs: list[Job], stop_ids: set[int]) -> list[Decoded]:
    """Complete every job's prompt together; one row per job.

    Prompts of one length are prefilled as one batch with nothing to mask. Prompts of different
    lengths are prefilled one by one (padding them into one batch costs masked work on padding
    and runs slower on CPU) and their caches joined, left-padded, for decoding together.
    """
    lengths = [len(job.prompt.input_ids) for job in jobs]
    if len(set(lengths)) == 1:
        ids = torch.tensor([job.prompt.input_ids for job in jobs], dtype=torch.long, device=model.device)
        states = [job.audio for job in jobs if job.audio is not None]
        audio = EncodedAudio.cat(states) if states else None
        cache = model.new_cache()
        hidden = model.prefill_hidden(ids, ids == AUDIO_TOKEN_ID, audio, cache)
        return _decode(model, cache, hidden, None, jobs, stop_ids)
    caches, hidden = [], []
    for job in jobs:
        ids, audio_mask = job.prompt.tensors(model.device)
        caches.append(model.new_cache())
        hidden.append(model.prefill_hidden(ids, audio_mask, job.audio, caches[-1]))
    width = max(lengths)
    mask = torch.zeros((len(jobs), width), dtype=torch.long, device=model.device)
    for row, n in enumerate(lengths):
        mask[row, width - n :] = 1
    cache = model.joined_cache(caches, width)
    return _decode(model, cache, torch.cat(hidden), mask, jobs, stop_ids)


def generate_after_prefix(model: MossAudioModel, prefix: Prompt, jobs: list[Job], stop_ids: set[int]) -> list[Decoded]:
    """Jobs whose prompts all start with `prefix` (system, user turn, their shared audio): the prefix
    is filled once, and each job goes on from a copy of that cache."""
    ids, audio_mask = prefix.tensors(model.device)
    shared = model.new_cache()
    model.prefill_hidden(ids, audio_mask, jobs[0].audio, shared)
    results = []
    for job in jobs:
        cache = copy.deepcopy(shared)
        suffix = job.prompt.input_ids[len(prefix.input_ids) :]
        hidden = model.step_hidden(torch.tensor([suffix], device=model.device), cache)
        results += _decode(model, cache, hidden, None, [job], stop_ids)
    return results


def _decode(model, cache, hidden, mask, jobs: list[Job], stop_ids: set[int]) -> list[Decoded]:
    """Decode from the prefilled `cache`; `hidden` (B, H) is each row's last hidden state."""
    samplers = [TokenSampler(job.options, model.device) for job in jobs]
    tokens: list[list[int]] = [[] for _ in jobs]
    reasons: list[str] = ["length"] * len(jobs)
    active = list(range(len(jobs)))
    cache = model.decoding_cache(cache, room=max(job.options.max_new_tokens for job in jobs))
    positions = None if mask is None else mask.sum(-1, keepdim=True) - 1  # (B, 1): last real position
    while active:
        picks = _pick(model, hidden, [samplers[row] for row in active], all(jobs[row].options.greedy for row in active))
        going = []
        for index, (row, token) in enumerate(zip(active, picks)):
            reason = _stop_reason(token, tokens[row], jobs[row], stop_ids)
            if reason:
                reasons[row] = reason
            else:
                going.append((index, row, token))
        if not going:
            break
        if len(going) < len(active):  # drop finished rows from the batch and its cache
            keep = torch.tensor([index for index, _, _ in going], device=model.device)
            cache.batch_select_indices(keep)
            mask = None if mask is None else mask[keep]
            positions = None if positions is None else positions[keep]
        active = [row for _, row, _ in going]
        step = torch.tensor([[token] for _, _, token in going], device=model.device)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            positions = positions + 1
        hidden = model.step_hidden(step, cache, attention_mask=mask, position_ids=positions)
    return [Decoded(t, r) for t, r in zip(tokens, reasons)]


def _stop_reason(token: int, tokens: list[int], job: Job, stop_ids: set[int]) -> str | None:
    """Append `token` unless it ends the turn; say why the row stops, if it does."""
    if token in stop_ids:
        return "stop"
    tokens.append(token)
    if job.guard is not None and job.guard.is_looping(tokens):
        return "repetition"
    if len(tokens) >= job.options.max_new_tokens:
        return "length"
    return None


def _pick(model: MossAudioModel, hidden: torch.Tensor, samplers: list[TokenSampler], greedy: bool) -> list[int]:
    if greedy:
        return model.greedy_tokens(hidden)
    logits = model.logits(hidden)
    return [sampler(logits[i : i + 1]) for i, sampler in enumerate(samplers)]
