"""The engine a command runs on: its options checked, then loaded (or connected) once, when first needed."""

from __future__ import annotations

import math
import sys
from concurrent.futures import Future
from dataclasses import replace

from ..errors import UsageError
from .console import report, stderr
from .options import EngineChoice


def _run_check(choice: EngineChoice) -> int:
    try:
        choice = _checked(choice)
        if len(choice.servers) != 1:
            raise UsageError("check-server: give one server URL")
        from ..engine.remote.check import check_prompt
        from ..engine.remote.engine import RemoteEngine, ServerConfig
        from ..model.loading import load_tokenizer, resolve_tokenizer

        tokenizer = load_tokenizer(resolve_tokenizer(choice.model))
        engine = RemoteEngine(ServerConfig(choice.servers, choice.server_model, choice.model, choice.api_key,
                                           choice.timeout, retries=1, time_markers=choice.time_markers))
        check = check_prompt(engine, tokenizer, choice.time_markers)
    except (Exception, KeyboardInterrupt) as exc:
        code = report(exc)
        return 2 if code == 1 else code  # a server that fails the question cannot be checked: not a mismatch
    served = engine.served
    kind = f", {served.owner}" if served.owner else ""
    sys.stdout.write(f"server {engine.servers[0].name}: model {engine.name}{kind}\n")
    sys.stdout.write("\n".join(check.lines) + "\n")
    return 0 if check.matches else 1



def _checked(choice: EngineChoice, prompts=()) -> EngineChoice:
    """Engine options checked before any work. The API key loses surrounding whitespace (a key file's
    newline or CR) and must then be printable ASCII to go in a header; it is never echoed."""
    from ..engine.base import has_audio_span

    if not math.isfinite(choice.timeout) or choice.timeout <= 0:
        raise UsageError(f"--timeout: need a finite number of seconds above 0, got {choice.timeout}")
    if choice.max_request_seconds is not None and not math.isfinite(choice.max_request_seconds):
        raise UsageError(f"--max-request-seconds: need a finite number of seconds, got {choice.max_request_seconds}")
    if choice.quantize not in (None, "int8"):
        raise UsageError(f"--quantize {choice.quantize!r}: only int8 is supported")
    servers = tuple(url.strip() for listed in choice.servers or () for url in listed.split(",") if url.strip())
    if servers and choice.quantize:
        raise UsageError("--quantize applies to the local model; a server keeps its own weights")
    if not servers:
        return replace(choice, servers=())
    if any(has_audio_span(prompt or "") for prompt in prompts):
        raise UsageError("a prompt holding its own audio span (<|audio_bos|><|AUDIO|><|audio_eos|>) needs the "
                         "local engine: a server lays out the prompt with its own chat template")
    for url in servers:
        _check_server_url(url)
    key = (choice.api_key or "").strip()
    if not all("!" <= char <= "~" for char in key):
        raise UsageError("--api-key (or MOSS_API_KEY): a key may hold only printable ASCII characters, "
                         "without spaces (it is sent in an HTTP header)")
    return replace(choice, servers=tuple(dict.fromkeys(servers)), api_key=key or None)


def _use_threads(threads: int | None) -> None:
    """--threads: torch's CPU thread count, set once for the whole run (nothing in moss changes it)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _check_server_url(url: str) -> None:
    from urllib.parse import urlsplit

    from ..engine.remote.http import redact_url

    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a malformed port or IPv6 address
        usable = False
    if not usable:
        raise UsageError(f"--server {redact_url(url)!r}: need an http:// or https:// URL with a host, "
                         f"like http://localhost:8000/v1")


class _LazyEngine:
    """Loads the model (or connects to the server) when the first file needs it, once."""

    def __init__(self, choice: EngineChoice, quiet: bool):
        self.choice = choice
        self.quiet = quiet
        self._engine = None
        self._loading: Future | None = None  # the model loading in the background (start())

    def get(self):
        if self._engine is None:
            from ..interrupts import result_of

            self._engine = result_of(self._loading) if self._loading else self._open()
        return self._engine

    def check(self) -> None:
        """A local checkpoint that is missing is reported now, before any audio is decoded or scanned
        (found without importing torch: the model's imports wait for start())."""
        if not self.choice.servers:
            from ..model.checkpoint import resolve_checkpoint

            resolve_checkpoint(self.choice.model)

    def start(self) -> None:
        """Load the local model in the background (seconds of imports and weights) while the first
        input is decoded and its speech found; get() waits for it and raises what loading raised."""
        if self.choice.servers or self._loading is not None or self._engine is not None:
            return
        from ..interrupts import started

        self._loading = started(self._open, name="moss-load")  # get() raises what loading raised

    def notes(self) -> list[str]:
        """For the run summary: how many requests each of several servers answered."""
        if self._engine is None or len(self.choice.servers or ()) < 2:
            return []
        return [self._engine.counts()]

    def _open(self):
        choice = self.choice
        if choice.servers:
            from ..engine.remote.engine import RemoteEngine, ServerConfig

            return RemoteEngine(ServerConfig(choice.servers, choice.server_model, choice.model, choice.api_key,
                                             choice.timeout, concurrency=choice.jobs,
                                             time_markers=choice.time_markers, thinking=choice.thinking))
        from ..engine.local.engine import MossAudio
        from ..model.allocator import keep_freed_memory
        from ..text import printable_name

        keep_freed_memory()  # a local model's large temporaries reuse memory instead of fresh pages
        if not self.quiet:
            stderr.print(f"moss: loading {printable_name(choice.model)}", markup=False)
        engine = MossAudio.load(choice.model, device=choice.device, dtype=choice.dtype,
                                time_markers=choice.time_markers, batch_size=choice.batch_size,
                                quantize=choice.quantize)
        if choice.thinking is not None:  # the checkpoint's folder name may not say
            engine.thinking = choice.thinking
        if not self.quiet:
            stderr.print(f"moss: model on {engine.model.device} in {str(engine.model.dtype).removeprefix('torch.')}")
        return engine
