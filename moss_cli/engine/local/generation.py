"""Prompts through the model: rows decoded together, each stopping on its own, refilled as they finish.

A batch gives each row the tokens one-at-a-time decoding would: padding is masked, positions count
from each row's first real token (engine/local/rows.py). A row that stops leaves the batch, and the
next waiting job takes its place (continuous batching): the rows stay full while work waits, and a
long answer never holds up the jobs after it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

from ...model.decoder import GROWTH
from ...model.encoder import EncodedAudio
from ...model.modeling import MossAudioModel
from ..base import DecodingOptions, RepetitionGuard
from ..prompts import AUDIO_TOKEN_ID, Prompt
from .rows import Layers, RunningRows, layers_of
from .sampling import Decoded, TokenSampler

PAD_ID = 151643  # <|endoftext|>: any id works under the mask; this one is the tokenizer's pad


@dataclass
class Job:
    prompt: Prompt
    audio: EncodedAudio | None
    options: DecodingOptions
    guard: RepetitionGuard | None = None


# A prefill: the jobs' cache (left-padded to the longest prompt), each row's last hidden state (B, H),
# and each row's prompt length.
Prefilled = tuple[Layers, torch.Tensor, list[int]]


def generate(model: MossAudioModel, jobs: list[Job], stop_ids: set[int]) -> list[Decoded]:
    """Complete every job's prompt together; one row per job."""
    decoded: dict[int, Decoded] = {}
    decode_continuously(model, stop_ids, len(jobs), _handed_out(list(enumerate(jobs))), decoded.__setitem__)
    return [decoded[index] for index in range(len(jobs))]


def generate_after_prefix(model: MossAudioModel, prefix: Prompt, jobs: list[Job], stop_ids: set[int]) -> list[Decoded]:
    """Jobs whose prompts all start with `prefix` (system, user turn, their shared audio): the prefix
    is filled once, and each job goes on from a copy of that cache."""
    ids, audio_mask = prefix.tensors(model.device)
    shared = model.new_cache()
    model.prefill_hidden(ids, audio_mask, jobs[0].audio, shared)

    def after_prefix(_model: MossAudioModel, chosen: list[Job]) -> Prefilled:
        cache = copy.deepcopy(shared)
        suffix = chosen[0].prompt.input_ids[len(prefix.input_ids) :]
        hidden = model.step_hidden(torch.tensor([suffix], device=model.device), cache)
        return layers_of(cache), hidden, [len(chosen[0].prompt.input_ids)]

    results = []
    for job in jobs:
        decoded: dict[int, Decoded] = {}
        decode_continuously(model, stop_ids, 1, _handed_out([(0, job)]), decoded.__setitem__, after_prefix)
        results.append(decoded[0])
    return results


def prefill(model: MossAudioModel, jobs: list[Job]) -> Prefilled:
    """Prompts of one length are prefilled as one batch with nothing to mask. Prompts of different
    lengths are prefilled one by one (padding them into one batch costs masked work on padding and
    runs slower on CPU) and their caches joined, left-padded."""
    lengths = [len(job.prompt.input_ids) for job in jobs]
    if len(set(lengths)) == 1:
        ids = torch.tensor([job.prompt.input_ids for job in jobs], dtype=torch.long, device=model.device)
        states = [job.audio for job in jobs if job.audio is not None]
        audio = EncodedAudio.cat(states) if states else None
        cache = model.new_cache()
        hidden = model.prefill_hidden(ids, ids == AUDIO_TOKEN_ID, audio, cache)
        return layers_of(cache), hidden, lengths
    caches, hidden = [], []
    for job in jobs:
        ids, audio_mask = job.prompt.tensors(model.device)
        caches.append(model.new_cache())
        hidden.append(model.prefill_hidden(ids, audio_mask, job.audio, caches[-1]))
    return layers_of(model.joined_cache(caches, max(lengths))), torch.cat(hidden), lengths


@dataclass
class _Row:
    key: Hashable
    job: Job
    sampler: TokenSampler
    tokens: list[int] = field(default_factory=list)
    next_token: int = -1  # picked, not yet fed


def decode_continuously(
    model: MossAudioModel, stop_ids: set[int], width: int, pull: Callable[[int], list[tuple[Hashable, Job]]],
    deliver: Callable[[Hashable, Decoded], None], prefiller: Callable[[MossAudioModel, list[Job]], Prefilled] | None = None,
) -> None:
    """Decode at most `width` rows at a time until `pull` has nothing more while no row is running.

    `pull(n)` hands out up to n (key, job) pairs (none when nothing waits); `deliver(key, decoded)`
    gets each one's tokens as soon as its row stops. Rows that stop leave the batch between steps;
    jobs taken then are prefilled together (`prefill`), pick their first token and join it.
    """
    prefiller = prefiller or prefill
    batch = RunningRows(model)
    rows: list[_Row] = []
    while True:
        kept = [index for index, row in enumerate(rows) if row.next_token >= 0]
        taken = pull(width - len(kept)) if len(kept) < width else []
        joining = _started(model, prefiller, taken, stop_ids, deliver) if taken else None
        if joining is not None or len(kept) < batch.size:
            rows = [rows[index] for index in kept] + ([] if joining is None else joining[1])
            layers, joined, lengths = joining[0] if joining is not None else (None, [], [])
            batch.rebuild(kept, layers, joined, lengths, _room(rows))
        if not rows:
            if not taken:
                return
            continue  # every job taken stopped at its first token
        hidden = batch.step([row.next_token for row in rows])
        picks = _pick(model, hidden, [row.sampler for row in rows], all(row.job.options.greedy for row in rows))
        for row, token in zip(rows, picks):
            _advance(row, token, stop_ids, deliver)


def _started(model, prefiller, taken: list[tuple[Hashable, Job]], stop_ids: set[int], deliver):
    """Prefill the jobs taken and pick each one's first token: ((cache, rows that go on, their prompt
    lengths), the rows that go on), or None where every one stopped at once."""
    jobs = [job for _, job in taken]
    layers, hidden, lengths = prefiller(model, jobs)
    rows = [_Row(key, job, TokenSampler(job.options, model.device)) for key, job in taken]
    picks = _pick(model, hidden, [row.sampler for row in rows], all(job.options.greedy for job in jobs))
    for row, token in zip(rows, picks):
        _advance(row, token, stop_ids, deliver)
    going = [index for index, row in enumerate(rows) if row.next_token >= 0]
    if not going:
        return None
    return (layers, going, [lengths[index] for index in going]), [rows[index] for index in going]


def _advance(row: _Row, token: int, stop_ids: set[int], deliver) -> None:
    """Take the row's new token; where the row stops, hand its tokens over and mark it done."""
    reason = _stop_reason(token, row.tokens, row.job, stop_ids)
    row.next_token = -1 if reason else token
    if reason:
        deliver(row.key, Decoded(row.tokens, reason))


def _room(rows: list[_Row]) -> int:
    """Positions to reserve: what the rows may still write, at most GROWTH (the cache grows if needed)."""
    return min(GROWTH, max((row.job.options.max_new_tokens - len(row.tokens) for row in rows), default=0))


def _handed_out(items: list[tuple[Hashable, Job]]) -> Callable[[int], list[tuple[Hashable, Job]]]:
    """A `pull` over a fixed list: the next n items each time."""
    def pull(count: int) -> list[tuple[Hashable, Job]]:
        taken = items[:count]
        del items[:count]
        return taken

    return pull


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
