"""The one place that knows every backend: a spec (model, device, servers, ...) in, an engine out.

    >>> engine = open_engine(EngineSpec("OpenMOSS-Team/MOSS-Audio-4B-Instruct"))
    >>> engine.ask(samples, "Transcribe the audio.").text

A backend is a module with four functions, imported only when a spec picks it (so a missing
checkpoint is reported, and a server run goes, without torch):

    check_spec(spec, prompts) -> EngineSpec   what only this backend can check, the spec made tidy
    check_available(spec) -> None             what is missing, found before any work (no torch)
    open_engine(spec) -> Engine               load the model, or connect
    settings(spec, common) -> dict            what an output's manifest records about the engine

Adding one is that module and a line in BACKENDS (and, if servers or a local model do not tell it,
a way for backend_name to pick it). Nothing outside this module and the backend's own package
imports a backend; a test reads every import to hold that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING

from .. import DEFAULT_MODEL
from ..errors import EngineOptionsError
from ..model.checkpoint import model_name

if TYPE_CHECKING:
    from .base import Engine

QUANTIZE = (None, "int8")  # int8 weights on the CPU (model/quantize.py); nothing else is supported


@dataclass(frozen=True)
class EngineSpec:
    """Which engine to open, and how: the engine's options, as the command line gives them."""

    model: str = DEFAULT_MODEL  # a checkpoint directory or hub id (with servers: the tokenizer's, a fallback name)
    device: str = "auto"  # local: auto, cpu, cuda, cuda:N or mps
    dtype: str = "auto"  # local: auto, float32, bfloat16 or float16
    time_markers: bool = True  # a time marker every 2 s of audio in the prompt
    servers: tuple[str, ...] | list[str] | None = None  # --server URLs (each may list several, comma-separated)
    server_model: str | None = None  # the served model's name; None: the server's first
    api_key: str | None = None
    timeout: float = 600.0  # seconds one server request may take, end to end
    batch_size: int | None = None  # local: rows decoded together (None: from free memory)
    jobs: int = 1  # server: requests in flight, over all servers
    thinking: bool | None = None  # a Thinking checkpoint? None: from the model's name or path
    max_request_seconds: float | None = None  # the most audio in one request
    threads: int | None = None  # --threads: torch's CPU threads for the run
    quantize: str | None = None  # --quantize int8 (local, CPU)
    retries: int = 4  # server: tries again after dropped connections, 429 and 5xx (check-server asks once)

    def __post_init__(self):  # -m 4b: the hub id, for the manifests, {model} and the Thinking guess too
        object.__setattr__(self, "model", model_name(self.model))


# What a manifest leaves out: how the run went (threads, jobs, time allowed, retries), where (device,
# servers, recorded apart without passwords) and the key, which shape no output.
UNRECORDED = ("api_key", "timeout", "device", "batch_size", "jobs", "servers", "threads", "retries")


@dataclass(frozen=True)
class Backend:
    module: str  # relative to this package, imported only when a spec picks the backend
    loads: bool  # loads weights in this process: announced, and started while the first input is read


BACKENDS = {
    "local": Backend(".local.backend", loads=True),
    "remote": Backend(".remote.backend", loads=False),
}


def backend_name(spec: EngineSpec) -> str:
    """Servers given: the remote backend; else the local model."""
    return "remote" if spec.servers else "local"


def loads_weights(spec: EngineSpec) -> bool:
    """Whether opening this spec loads a model here (seconds of imports and weights), rather than connecting."""
    return BACKENDS[backend_name(spec)].loads


def validated(spec: EngineSpec, prompts=()) -> EngineSpec:
    """The spec checked before any work, or EngineOptionsError; servers listed once each, as a tuple.

    `prompts`: what will be asked (a prompt holding its own audio span needs the local engine).
    """
    if not math.isfinite(spec.timeout) or spec.timeout <= 0:
        raise EngineOptionsError(f"--timeout: need a finite number of seconds above 0, got {spec.timeout}")
    if spec.max_request_seconds is not None and not math.isfinite(spec.max_request_seconds):
        raise EngineOptionsError(f"--max-request-seconds: need a finite number of seconds, got {spec.max_request_seconds}")
    if spec.quantize not in QUANTIZE:
        raise EngineOptionsError(f"--quantize {spec.quantize!r}: only int8 is supported")
    servers = tuple(url.strip() for listed in spec.servers or () for url in listed.split(",") if url.strip())
    if servers and spec.quantize:
        raise EngineOptionsError("--quantize applies to the local model; a server keeps its own weights")
    spec = replace(spec, servers=servers)
    return _backend(spec).check_spec(spec, tuple(prompt or "" for prompt in prompts))


def check_available(spec: EngineSpec) -> None:
    """What the engine needs that is missing (a local checkpoint), reported now, before any audio is
    decoded; torch is not imported, so the model's own imports can wait for open_engine."""
    _backend(spec).check_available(spec)


def open_engine(spec: EngineSpec) -> Engine:
    """The engine the spec asks for: a model loaded here, or servers connected to (their model asked)."""
    spec = validated(spec)
    return _backend(spec).open_engine(spec)


def recorded_settings(spec: EngineSpec) -> dict:
    """What an output's manifest records about the engine (--skip-existing redoes an output when it changes)."""
    common = {key: value for key, value in asdict(spec).items() if key not in UNRECORDED}
    return _backend(spec).settings(spec, common)


# -- for moss doctor and moss check-server -----------------------------------------------------------
def placement(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """The device (with its GPU's name) and dtype a local model would get here, by the engine's own rules."""
    return _module("local").placement(device, dtype)


def probe_server(url: str, api_key: str | None, timeout: float) -> str:
    """Ask one server check-server's probe for one token: the served model ("model X, vllm"), or a MossError."""
    return import_module(".remote.check", __package__).probe(url, api_key, timeout)


def check_server(spec: EngineSpec, compute: bool = False):
    """Compare the prompt the spec's one server builds with the local one (remote/check.py's ServerCheck);
    with `compute`, also its greedy answer with the one spec.model's local engine gives."""
    local = partial(open_engine, replace(spec, servers=None)) if compute else None
    return import_module(".remote.check", __package__).check_server(validated(spec), local)


def redact_url(url: str) -> str:
    """A server URL as it may be shown or recorded: without its user name or password."""
    return import_module(".remote.http", __package__).redact_url(url)


# -- the Python API's backend classes (moss_cli.MossAudio), imported on first use ---------------------
_CLASSES = {"MossAudio": ".local.engine", "EncodedClip": ".local.engine"}


def __getattr__(name: str):
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_CLASSES[name], __package__), name)


def _backend(spec: EngineSpec):
    return _module(backend_name(spec))


def _module(name: str):
    return import_module(BACKENDS[name].module, __package__)
