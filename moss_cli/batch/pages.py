"""Writing the --html pages that are not one result's output: the index over a run's pages, and `ask`'s
page, with the same atomic writes and manifests as every output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .. import __version__
from ..errors import UsageError
from ..output.report import page_context, read_summary, relative_link, render_index, render_page
from ..results import Result
from ..text import path_text
from .inputs import InputFile
from .manifest import content_hash, describe, made_from
from .observer import BatchObserver
from .outputs import INDEX_NAME, OutputSpec, write_output

if TYPE_CHECKING:
    from ..audio.sources import AudioSource

INDEX_OWNER = "(index of the report pages)"  # the "input" in the index's manifest: no one recording


def write_index(items: list[InputFile], outputs: OutputSpec, overwrite: bool, observer: BatchObserver) -> bool:
    """DIR/index.html lists the pages of this run's inputs (made now or up to date): name, duration, counts.
    False when it could not be written (a full disk): reported as a failure, not an internal error."""
    if outputs.output_dir is None or len(items) < 2:
        return True
    index = outputs.output_dir / INDEX_NAME
    pages = {item.output(outputs.output_dir, "html"): item for item in items}
    if index in pages or (index.exists() and made_from(index) != INDEX_OWNER and not overwrite):
        observer.warning(f"{index} is not moss's index of these pages; left as it is")
        return True
    entries = []
    for page, item in pages.items():
        summary = read_summary(page)  # pages of failed inputs are absent; skipped ones are read back
        if summary is not None:
            entries.append({**summary, "href": relative_link(page, index),
                            "name": path_text((item.stem.parent / item.path.name).as_posix())})
    title = path_text(Path(os.path.abspath(outputs.output_dir)).name or "moss")  # names need not be UTF-8
    record = {"input": INDEX_OWNER, "pages": [entry["href"] for entry in entries], "moss": __version__}
    try:
        write_output(index, lambda file: file.write(render_index(entries, title)), record)
    except OSError as exc:
        observer.failure(f"cannot write {path_text(index)}: {exc.strerror or exc}")
        return False
    return True


def ask_page_target(path: Path, outputs: OutputSpec) -> Path | None:
    """Where `ask --html` writes its page (None: stdout); checked before the model loads."""
    if outputs.output_dir is None:
        return None
    target = InputFile(path, Path(path.stem)).output(outputs.output_dir, "html")
    owner = made_from(target)
    if target.exists() and owner != path_text(path):
        reason = "was not made by moss" if owner is None else f"was made from {owner}"
        raise UsageError(f"{path}: output {target} exists and {reason}; remove it or choose another -o")
    return target


def write_ask_page(results: list[Result], source: AudioSource, path: Path, target: Path | None,
                   outputs: OutputSpec, settings: dict, stream: TextIO) -> None:
    """`ask --html`: every question and answer beside the player, as a file (with its manifest) or on stdout."""
    html = render_page(results, page_context(source, path, target, outputs.html_audio, settings))
    if target is None:
        stream.write(html)
        stream.flush()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    record = describe(path_text(path), content_hash(path), settings)
    write_output(target, lambda file: file.write(html), record)
