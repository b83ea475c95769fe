"""Sidecar manifests: what each output was made from, so re-runs can skip finished work safely.

Beside `subs/a/x.srt` lies `subs/a/.x.srt.moss.json` with the input's path and content hash, the
model and every option that shapes the output. It is written before the output itself, so an
output without a matching manifest is never taken for finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import __version__


def manifest_path(output: Path) -> Path:
    return output.parent / f".{output.name}.moss.json"


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(input_path: Path, input_hash: str, settings: dict) -> dict:
    return {"input": str(input_path), "sha256": input_hash, "settings": settings, "moss": __version__}


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
    try:
        record = json.loads(manifest_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
