"""The remote backend as the factory opens it: OpenAI-compatible servers (vLLM, SGLang).

The checks run before any work, so a malformed URL or key fails the run at once; messages never
echo a key or a URL's password.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...errors import EngineOptionsError

if TYPE_CHECKING:
    from ..factory import EngineSpec
    from .engine import RemoteEngine


def check_spec(spec: EngineSpec, prompts: tuple[str, ...]) -> EngineSpec:
    """The URLs' shape and the key checked; each server listed once, the key without surrounding
    whitespace (a key file's newline or CR), which must then be printable ASCII to go in a header."""
    from ..base import has_audio_span

    if any(has_audio_span(prompt) for prompt in prompts):
        raise EngineOptionsError("a prompt holding its own audio span (<|audio_bos|><|AUDIO|><|audio_eos|>) needs "
                                 "the local engine: a server lays out the prompt with its own chat template")
    for url in spec.servers:
        _check_url(url)
    key = (spec.api_key or "").strip()
    if not all("!" <= char <= "~" for char in key):
        raise EngineOptionsError("--api-key (or MOSS_API_KEY): a key may hold only printable ASCII characters, "
                                 "without spaces (it is sent in an HTTP header)")
    return replace(spec, servers=tuple(dict.fromkeys(spec.servers)), api_key=key or None)


def check_available(spec: EngineSpec) -> None:
    """Nothing to find beforehand: the servers are asked for their model when the engine opens."""


def open_engine(spec: EngineSpec) -> RemoteEngine:
    from .engine import RemoteEngine, ServerConfig

    return RemoteEngine(ServerConfig(spec.servers, spec.server_model, spec.model, spec.api_key, spec.timeout,
                                     retries=spec.retries, concurrency=spec.jobs, time_markers=spec.time_markers,
                                     thinking=spec.thinking))


def settings(spec: EngineSpec, common: dict) -> dict:
    """The servers (without passwords) and what each request carries beyond the OpenAI fields, instead
    of a dtype the servers choose themselves."""
    from .engine import request_extras
    from .http import redact_url

    recorded = {key: value for key, value in common.items() if key != "dtype"}
    servers = sorted(redact_url(url) for url in spec.servers)
    recorded["server"] = servers[0] if len(servers) == 1 else servers
    recorded["request"] = request_extras(spec.time_markers)
    return recorded


def _check_url(url: str) -> None:
    from urllib.parse import urlsplit

    from .http import redact_url

    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a malformed port or IPv6 address
        usable = False
    if not usable:
        raise EngineOptionsError(f"--server {redact_url(url)!r}: need an http:// or https:// URL with a host, "
                                 f"like http://localhost:8000/v1")
