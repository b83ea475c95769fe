"""`moss serve` and `moss mcp`: the tasks behind an OpenAI-compatible HTTP API and an MCP server.

A front end beside cli/: it runs the same pipeline and writers, never prints (logging only), and
imports FastAPI, uvicorn and the MCP SDK only in the modules that need them (the `serve` extra).
"""

from __future__ import annotations

import importlib.util

from ..errors import UsageError

EXTRA = "serve"
NEEDED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart", "mcp": "mcp"}


def check_installed(*modules: str) -> None:
    """A UsageError naming the extra to install when one of `modules` is missing."""
    missing = [NEEDED.get(name, name) for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"this command needs {', '.join(missing)}: pip install -e \".[{EXTRA}]\" "
                         f"(or pip install \"moss-cli[{EXTRA}]\")")
