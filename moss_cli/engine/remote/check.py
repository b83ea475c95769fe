"""`moss check-server`: does a server build the prompt the local engine builds, token for token?

One short request (5 s of quiet noise: two time markers) goes to the server. Its prompt ids come
from vLLM's render endpoint (/v1/chat/completions/render, on servers that expose it), else from
`"return_token_ids": true` (vLLM), else only their number from `usage.prompt_tokens` (SGLang).
They are compared with what the local PromptBuilder builds for the same audio and question.

With the local engine as well (`--compute`), the server's greedy answer to the probe is compared with
the local engine's, token for token: the same prompt can still be computed otherwise (vLLM's compiled
path, its default without --enforce-eager, leaves DeepStack out and answers from another model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...audio.constants import HOP_LENGTH, SAMPLE_RATE
from ...errors import ServerError
from ..base import DecodingOptions
from .replies import one_line, read_completion

if TYPE_CHECKING:
    from ..base import Engine
    from ..factory import EngineSpec

PROBE_SECONDS = 5.0  # long enough for two time markers ("2", "4")
PROBE_QUESTION = "Describe the audio."
ANSWER_TOKENS = 16  # greedy tokens compared: a different computation shows within a few
END_OF_TURN_IDS = (151645, 151643)  # <|im_end|>, <|endoftext|>: one side may count the stop token, the other not


@dataclass
class ServerPrompt:
    ids: list[int] | None  # None: the server says only how many
    count: int | None
    source: str  # where the ids (or their count) came from


@dataclass
class PromptCheck:
    matches: bool
    lines: list[str]  # what to print: the verdict, then the difference and what to change


@dataclass
class ServerCheck:
    server: str  # the server's name as messages show it (no password)
    model: str  # the served model asked for
    owner: str | None  # what serves it, where the listing says (vllm, sglang)
    prompt: PromptCheck
    answer: PromptCheck | None = None  # the greedy answers compared (--compute)

    @property
    def matches(self) -> bool:
        return self.prompt.matches and (self.answer is None or self.answer.matches)

    @property
    def lines(self) -> list[str]:
        """What to print: the server and its model, the verdict, then the difference and what to change."""
        kind = f", {self.owner}" if self.owner else ""
        answer = self.answer.lines if self.answer else []
        return [f"server {self.server}: model {self.model}{kind}", *self.prompt.lines, *answer]


def check_server(spec: EngineSpec, open_local: Callable[[], Engine] | None = None) -> ServerCheck:
    """The spec's one server asked for its prompt, compared with what spec.model's tokenizer builds here;
    with `open_local` (the checkpoint's local engine), also its greedy answer with the local one's."""
    from ...model.loading import load_tokenizer, resolve_tokenizer
    from .backend import open_engine

    tokenizer = load_tokenizer(resolve_tokenizer(spec.model))  # first: a missing tokenizer asks no server
    engine = open_engine(spec)
    prompt = check_prompt(engine, tokenizer, spec.time_markers)
    answer = None
    if open_local is not None and prompt.matches:
        answer = check_answer(engine, open_local(), tokenizer)
    elif open_local is not None:
        answer = PromptCheck(False, ["answer: not compared: the prompts differ, so the answers would too"])
    return ServerCheck(engine.servers[0].name, engine.name, engine.served.owner, prompt, answer)


def probe(url: str, api_key: str | None, timeout: float) -> str:
    """The probe asked for one token, once: "model <served name>[, <owner>]", or the MossError that says why not.

    Only the URL is given: the name comes from the server's listing, none is assumed."""
    from .engine import RemoteEngine, ServerConfig

    engine = RemoteEngine(ServerConfig(url, api_key=api_key, timeout=timeout, retries=1))
    try:
        engine.ask(probe_audio(), PROBE_QUESTION, DecodingOptions(max_new_tokens=1))
    finally:
        engine.close()
    owner = f", {engine.served.owner}" if engine.served.owner else ""
    return f"model {engine.name}{owner}"


def probe_audio() -> np.ndarray:
    """Quiet noise, the same every time: what is heard does not matter, only the prompt's layout."""
    return (0.01 * np.random.default_rng(0).standard_normal(int(PROBE_SECONDS * SAMPLE_RATE))).astype(np.float32)


def check_prompt(engine, tokenizer, time_markers: bool) -> PromptCheck:
    """Ask the server for its prompt and compare it with the local one."""
    from ..prompts import PromptBuilder, audio_token_count
    from .engine import audio_content

    audio = probe_audio()
    n_tokens = audio_token_count(audio.size // HOP_LENGTH)
    local = PromptBuilder(tokenizer, time_markers=time_markers).audio_question(PROBE_QUESTION, n_tokens).input_ids
    other = PromptBuilder(tokenizer, time_markers=not time_markers).audio_question(PROBE_QUESTION, n_tokens).input_ids
    body = engine.chat_body(audio_content(audio, PROBE_QUESTION), DecodingOptions(max_new_tokens=1))
    server = server_prompt(engine, body)
    if server.ids is None:
        return _compare_counts(local, other, server, time_markers)
    return _compare_ids(local, server, tokenizer, time_markers)


def check_answer(engine, local, tokenizer) -> PromptCheck:
    """The server's greedy answer to the probe (ANSWER_TOKENS at most) against the local engine's, token
    for token where the server says its ids (vLLM's "return_token_ids"), else as text."""
    from .engine import audio_content

    audio = probe_audio()
    options = DecodingOptions(temperature=0.0, max_new_tokens=ANSWER_TOKENS)
    ours = _answer_ids(local.ask(audio, PROBE_QUESTION, options).token_ids)
    theirs, text = server_answer(engine, engine.chat_body(audio_content(audio, PROBE_QUESTION), options))
    where = f"the local engine's ({local.where})" if local.where else "the local engine's"
    if theirs is None:  # only the text: compared as the local answer decodes
        return _compare_texts(text, tokenizer.decode(ours, skip_special_tokens=True), where)
    theirs = _answer_ids(theirs)
    if theirs == ours:
        return PromptCheck(True, [f"answer: match: the server's greedy answer is {where}, token for token "
                                  f"({len(ours)} tokens)"])
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return PromptCheck(False, [
        f"answer differs: the greedy answers part at token {at} (local {len(ours)} tokens, server {len(theirs)}); "
        "the prompts match, so the server computes otherwise",
        f"  local:  {_show(ours, at, tokenizer)}",
        f"  server: {_show(theirs, at, tokenizer)}",
        f"  to change: {ANSWER_ADVICE}"])


ANSWER_ADVICE = ("serve with --enforce-eager (vLLM's compiled path, its default, leaves out DeepStack: the answers "
                 "part within the first tokens); the local engine runs float32 here, so a server in bfloat16 "
                 "rounds otherwise and may part later (--dtype float32 there compares closest)")


def server_answer(engine, body: dict) -> tuple[list[int] | None, str]:
    """The server's answer ids (vLLM's "return_token_ids"; None where it does not say them) and text."""
    try:
        reply = engine.post("/chat/completions", {**body, "return_token_ids": True})
    except ServerError:  # a server that refuses fields it does not know
        reply = engine.post("/chat/completions", body)
    try:
        text = read_completion(reply).raw_text
    except ValueError as exc:
        raise ServerError(f"the server's answer to the probe: {exc}") from None
    choice = reply["choices"][0]  # read_completion checked it is there
    return _ids(choice.get("token_ids")), text


def _compare_texts(theirs: str, ours: str, where: str) -> PromptCheck:
    if theirs.strip() == ours.strip():
        return PromptCheck(True, [f"answer: match: the server's greedy answer is {where}, as text "
                                  "(this server does not show its answer's ids)"])
    return PromptCheck(False, [
        "answer differs: the server's greedy answer is not the local one (compared as text; the prompts match, "
        "so the server computes otherwise)",
        f"  local:  {one_line(ours)[:80]!r}",
        f"  server: {one_line(theirs)[:80]!r}",
        f"  to change: {ANSWER_ADVICE}"])


def _answer_ids(ids: list[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] in END_OF_TURN_IDS else list(ids)


def server_prompt(engine, body: dict) -> ServerPrompt:
    try:
        reply = engine.post("/chat/completions/render", body)
        ids = _ids(reply.get("token_ids") if isinstance(reply, dict) else None)
        if ids is not None:
            return ServerPrompt(ids, len(ids), "the render endpoint")
    except ServerError:  # not vLLM, or a vLLM that does not expose it
        pass
    try:
        reply = engine.post("/chat/completions", {**body, "return_token_ids": True})
    except ServerError:  # a server that refuses fields it does not know
        reply = engine.post("/chat/completions", body)
    ids = _ids(reply.get("prompt_token_ids") if isinstance(reply, dict) else None)
    if ids is not None:
        return ServerPrompt(ids, len(ids), "return_token_ids")
    usage = reply.get("usage") if isinstance(reply, dict) else None
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise ServerError("the server says neither its prompt ids nor how many there are (usage.prompt_tokens)")
    return ServerPrompt(None, count, "usage.prompt_tokens")


def _ids(value) -> list[int] | None:
    if isinstance(value, list) and value and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return value
    return None


def _compare_ids(local: list[int], server: ServerPrompt, tokenizer, time_markers: bool) -> PromptCheck:
    theirs = server.ids
    if theirs == local:
        return PromptCheck(True, [f"match: the server's prompt is the local one, token for token "
                                  f"({len(local)} tokens, from {server.source})"])
    at = next((i for i, (a, b) in enumerate(zip(local, theirs)) if a != b), min(len(local), len(theirs)))
    lines = [f"differs: the prompts part at token {at} (local {len(local)} tokens, server {len(theirs)}, "
             f"from {server.source})",
             f"  local:  {_show(local, at, tokenizer)}",
             f"  server: {_show(theirs, at, tokenizer)}",
             f"  to change: {_advice(local, theirs, at, time_markers)}"]
    return PromptCheck(False, lines)


def _compare_counts(local: list[int], other: list[int], server: ServerPrompt, time_markers: bool) -> PromptCheck:
    source = f"{server.source}; this server does not show its ids, so only their number is compared"
    if server.count == len(local):
        return PromptCheck(True, [f"match in length: {len(local)} tokens ({source})"])
    lines = [f"differs: the server's prompt has {server.count} tokens, the local one {len(local)} ({source})"]
    if server.count == len(other):
        lines.append(f"  to change: {_marker_advice(time_markers)}")
    else:
        lines.append("  to change: the chat template: the server wraps the question differently (system prompt, "
                     "newlines, assistant turn); serve the checkpoint's chat_template.jinja")
    return PromptCheck(False, lines)


def _advice(local: list[int], theirs: list[int], at: int, time_markers: bool) -> str:
    from ..prompts import AUDIO_END_ID, AUDIO_START_ID, DIGIT_IDS

    start, end = local.index(AUDIO_START_ID), local.index(AUDIO_END_ID)
    if at <= start:
        return ("the text before the audio (system prompt, chat template) differs; serve the checkpoint's own "
                "chat template (chat_template.jinja), without a --chat-template of another model")
    if at <= end:
        digits = set(DIGIT_IDS.values())
        if local[at] in digits or (at < len(theirs) and theirs[at] in digits):  # a marker on one side only
            return _marker_advice(time_markers)
        return ("the audio span differs (a different number of audio tokens): the server's processor cuts or "
                "pads the audio otherwise; check its processor config")
    return ("the text after the audio (the question, the assistant turn) differs; serve the checkpoint's own "
            "chat template (chat_template.jinja), which puts a newline between the audio and the question")


def _marker_advice(time_markers: bool) -> str:
    if time_markers:
        return ("the server leaves out the time markers the model was trained with; turn them on in its "
                "processor (vLLM: enable_time_marker true in processor_config.json, or --mm-processor-kwargs "
                "'{\"enable_time_marker\": true}'), or run moss with --no-time-markers to match it")
    return ("the server inserts time markers although --no-time-markers asks it not to: it ignores the request's "
            "mm_processor_kwargs (SGLang always inserts them); use vLLM, or drop --no-time-markers")


def _show(ids: list[int], at: int, tokenizer) -> str:
    """A few tokens either side of position `at`, the differing one in brackets."""
    from ..prompts import AUDIO_END_ID, AUDIO_START_ID, AUDIO_TOKEN_ID

    names = {AUDIO_TOKEN_ID: "<|AUDIO|>", AUDIO_START_ID: "<|audio_bos|>", AUDIO_END_ID: "<|audio_eos|>"}  # no strings in the hub tokenizer
    shown = []
    for i in range(max(0, at - 3), min(len(ids), at + 4)):
        token = names.get(ids[i]) or repr(tokenizer.decode([ids[i]]))
        shown.append(f"[{token}]" if i == at else token)
    if at >= len(ids):
        shown.append("[end]")
    return one_line(" ".join(shown))
