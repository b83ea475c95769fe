"""Sidecar manifests: what each output was made from, so re-runs can skip finished work safely.

Beside `subs/a/x.srt` lies `subs/a/.x.srt.moss.json` with the input's path and content hash, the
model and every option that shapes the output. It is written after the output, so a manifest
never vouches for an output that was not written (a full disk, a killed run): an output without a
matching manifest is never taken for finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from .. import __version__

NAME_MAX = 255  # bytes in one file name, on every common file system
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; anything huge is not ours


def manifest_path(output: Path) -> Path:
    name = f".{output.name}.moss.json"
    if len(os.fsencode(name)) > NAME_MAX:  # a long output name: the manifest's would not fit
        name = f".{hashlib.sha256(os.fsencode(output.name)).hexdigest()[:32]}.moss.json"
    return output.parent / name


def is_manifest_name(name: str) -> bool:
    """A name manifest_path gives (.<output name>.moss.json): never an output's, so that no output is
    written where a manifest lies, nor taken for one."""
    return name.startswith(".") and name.endswith(".moss.json") and len(name) > len("..moss.json")


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(input_name: str, input_hash: str, settings: dict) -> dict:
    return {"input": input_name, "sha256": input_hash, "settings": settings, "moss": __version__}


def up_to_date(output: Path, input_hash: str, settings: dict) -> bool:
    """The output exists and was made from this content with these settings."""
    record = read_manifest(output)
    return output.is_file() and record is not None and record.get("sha256") == input_hash \
        and record.get("settings") == json.loads(json.dumps(settings))


def made_from(output: Path) -> str | None:
    """The input path an existing output was made from, or None when moss did not make it."""
    record = read_manifest(output)
    return None if record is None else record.get("input")


def read_manifest(output: Path) -> dict | None:
    """The manifest beside `output`, or None: missing, not a regular file (a FIFO would block the
    read), too big, or not a JSON object (nesting deep enough to exhaust the parser included)."""
    path = manifest_path(output)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or os.stat(path).st_size > MAX_MANIFEST_BYTES:
            return None
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None
