"""`moss serve` and `moss mcp`: the checks and the terminal around the servers in serve/."""

from __future__ import annotations

import ipaddress
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from ..engine.factory import EngineSpec, validated
from ..errors import EXIT_OK, UsageError
from .console import report, say
from .engine import use_threads
from .groups import OptionGroup
from .options import SamplingOptions

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


@dataclass(frozen=True)
class ServeOptions(OptionGroup):
    """How `moss serve` listens and what it lets in."""

    host: Annotated[str, typer.Option(
        rich_help_panel="Serving", help="Address to listen on; anything but loopback needs --api-key.")] = "127.0.0.1"
    port: Annotated[int, typer.Option(min=0, max=65535, rich_help_panel="Serving", help="Port to listen on.")] = 8000
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="MOSS_SERVE_API_KEY", rich_help_panel="Serving", show_default="none",
        help="Key clients must send (Authorization: Bearer KEY).")] = None
    max_concurrency: Annotated[int | None, typer.Option(
        min=1, rich_help_panel="Serving", show_default="1; with --server, one per server",
        help="Requests worked on at once.")] = None
    max_queue: Annotated[int, typer.Option(
        min=0, rich_help_panel="Serving", help="Requests waiting for a place; past them: 429 with Retry-After.")] = 8
    max_upload_mb: Annotated[float, typer.Option(
        min=0.001, rich_help_panel="Serving", help="Largest upload, in MB (413 past it).")] = 200.0
    max_audio_seconds: Annotated[float, typer.Option(
        min=1.0, rich_help_panel="Serving", help="Longest audio a request may carry, in seconds.")] = 4 * 3600.0
    request_timeout: Annotated[float, typer.Option(
        min=1.0, rich_help_panel="Serving",
        help="Seconds a request may take (504 past it; its work stops at the next chunk).")] = 1800.0
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No access log on stderr, only warnings.")] = False


ServerKeyOpt = Annotated[str | None, typer.Option(
    "--server-api-key", envvar="MOSS_API_KEY", rich_help_panel="Server", show_default="none",
    help="Bearer token for the --server upstreams (OPENAI_API_KEY is never read).")]


def serve_http(spec: EngineSpec, sampling: SamplingOptions, options: ServeOptions) -> int:
    from ..serve import check_installed

    try:
        check_installed("fastapi", "uvicorn", "multipart")
        check_open(options.host, options.api_key)
        concurrency = options.max_concurrency or max(1, len(validated(spec).servers))
        # a server's requests in flight: as many as the requests worked on at once
        worker = started_worker(replace(spec, jobs=concurrency), sampling, options.max_audio_seconds)
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    import uvicorn

    from ..serve.admission import remove_root
    from ..serve.http import ServeSettings, create_app

    settings = ServeSettings(options.api_key, int(options.max_upload_mb * 1024 * 1024), concurrency,
                             options.max_queue, options.request_timeout)
    log_to_stderr(logging.WARNING if options.quiet else logging.INFO)
    try:
        uvicorn.run(create_app(worker, settings), host=options.host, port=options.port, log_config=None,
                    access_log=False, timeout_graceful_shutdown=5)
    finally:
        worker.close()
        remove_root()
    return EXIT_OK


def serve_mcp(spec: EngineSpec, sampling: SamplingOptions, allow: list[Path]) -> int:
    from ..serve import check_installed

    try:
        check_installed("mcp")
        from ..serve.tools import Allowed, create_server

        allowed = Allowed(allow)
        worker = started_worker(spec, sampling, None)
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    log_to_stderr(logging.WARNING)  # stdout carries the protocol: nothing else may go there
    try:
        create_server(worker, allowed).run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
    return EXIT_OK


def started_worker(spec: EngineSpec, sampling: SamplingOptions, max_audio_seconds: float | None):
    """The engine loaded (or its servers asked for their model) before the first request."""
    from ..engine.factory import check_available, loads_weights
    from ..serve.work import Worker
    from .run import check_finite, pipeline_options

    check_finite()
    use_threads(spec.threads)
    worker = Worker(spec, pipeline_options(sampling).decoding, sampling.max_new_tokens, max_audio_seconds)
    check_available(worker.spec)  # a missing checkpoint is said before "loading"
    if loads_weights(worker.spec):
        say(f"loading {worker.spec.model}")
    worker.start()
    say(f"model {worker.model} ready")
    return worker


def check_open(host: str, api_key: str | None) -> None:
    """A server others can reach without a key is said loudly; an empty key is a mistake."""
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key: give a non-empty key")
    if api_key is None and not is_loopback(host):
        say(f"WARNING: listening on {host} WITHOUT an API key: anyone who can reach this machine can use the "
            "model and upload files")
        say("WARNING: give --api-key KEY (or MOSS_SERVE_API_KEY) to require one")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def log_to_stderr(level: int) -> None:
    """The servers log through `logging` (uvicorn's loggers and moss.serve): lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("moss: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
