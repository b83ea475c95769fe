"""The command-line side of a batch: inputs in order, outputs placed and written safely, failures reported.

Part of the CLI layer: it prints (to stderr) and picks exit codes; the library below it only raises.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .errors import AudioError, CheckpointError, ModelUnavailableError, MossError
from .inputs import InputFile
from .manifest import content_hash, describe, made_from, manifest_path, up_to_date
from .progress import ProgressBar
from .results import Result
from .subtitles import CueLayout
from .writers import HtmlWriter, get_writer

if TYPE_CHECKING:  # the pipeline brings torch: loaded when a file is processed, not for --help
    from .pipeline import Recording
    from .report import PageContext
    from .sources import AudioSource

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(MossError):
    """The command line asks for something impossible (caught before any work)."""


@dataclass(frozen=True)
class OutputSpec:
    formats: tuple[str, ...]  # file extensions, in the order asked
    output_dir: Path | None = None
    layout: CueLayout = CueLayout()
    html_audio: str = "auto"  # --html pages: auto, link, embed or none

    def check(self, n_inputs: int) -> None:
        if n_inputs == 0:
            raise UsageError("no audio files among the inputs")
        if "html" in self.formats and self.html_audio == "link" and self.output_dir is None:
            raise UsageError("--html-audio link needs -o/--output-dir DIR: a page on stdout has no place to link from")
        if self.output_dir is not None:
            return
        if len(self.formats) > 1:
            raise UsageError(f"several formats ({', '.join(self.formats)}) need -o/--output-dir DIR")
        if n_inputs > 1 and self.formats[0] not in ("txt", "json"):
            raise UsageError(f"several inputs with --{self.formats[0]} need -o/--output-dir DIR")

    def targets(self, item: InputFile) -> list[tuple[str, Path]]:
        if self.output_dir is None:
            return []
        return [(extension, item.output(self.output_dir, extension)) for extension in self.formats]


@dataclass(frozen=True)
class BatchPolicy:
    skip_existing: bool = False  # skip inputs whose outputs are up to date
    overwrite: bool = False  # replace outputs even if another input or tool made them
    errors_file: Path | None = None  # failures as JSON Lines
    jobs: int = 1  # files decoded ahead of the one being processed, plus one
    quiet: bool = False
    settings: dict = field(default_factory=dict)  # everything that shapes an output, for manifests
    notes: Callable[[], list[str]] | None = None  # more lines for the run summary (requests per server)


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    failures: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    interrupted: bool = False

    def fail(self, item: InputFile, exc: BaseException) -> None:
        self.failures.append({"input": str(item.path), "error": str(exc), "kind": type(exc).__name__})
        stderr.print(f"moss: error: {exc}", markup=False)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failures else EXIT_OK


Work = Callable[["Recording", ProgressBar], Result]


def run_batch(items: list[InputFile], work: Work, outputs: OutputSpec, policy: BatchPolicy, label: str) -> int:
    """Process every input; a failing file gets one line on stderr and the rest go on."""
    outputs.check(len(items))
    summary, started = RunSummary(), time.monotonic()
    todo = []
    for item in items:
        digest = _plan(item, outputs, policy, summary)
        if digest is not False:
            todo.append((item, digest))
    try:
        with tempfile.TemporaryDirectory(prefix="moss-") as workdir:
            for item, digest, opening in _opened_ahead(todo, workdir, policy.jobs - 1):
                _process(item, digest, opening, work, outputs, policy, summary, label, several=len(items) > 1)
        if "html" in outputs.formats:
            from .pages import write_index

            write_index(items, outputs, policy)
    except KeyboardInterrupt:
        summary.interrupted = True
        stderr.print("moss: interrupted; finished outputs are complete, re-run with --skip-existing for the rest")
    finally:
        _finish(summary, policy, len(items), time.monotonic() - started)
    return summary.exit_code


def _plan(item: InputFile, outputs: OutputSpec, policy: BatchPolicy, summary: RunSummary) -> str | None | bool:
    """The input's content hash (None when writing to stdout), or False when it is skipped or fails."""
    targets = outputs.targets(item)
    if not targets:
        return None
    try:
        digest = content_hash(item.path)
    except IsADirectoryError:
        summary.fail(item, AudioError(f"{item.path}: is a directory, not an audio file"))
        return False
    except OSError as exc:
        summary.fail(item, AudioError(f"{item.path}: {exc.strerror or 'unreadable'}"))
        return False
    if policy.skip_existing and all(up_to_date(path, digest, policy.settings) for _, path in targets):
        summary.skipped += 1
        return False
    if not policy.overwrite:
        for _, path in targets:
            owner = made_from(path)
            if path.exists() and owner != str(item.path):
                reason = "was not made by moss" if owner is None else f"was made from {owner}"
                summary.fail(item, UsageError(f"{item.path}: output {path} exists and {reason}; --overwrite replaces it"))
                return False
    return digest


def _opened_ahead(todo, workdir: str, ahead: int) -> Iterator[tuple[InputFile, str | None, Future]]:
    """Open (decode, convert) up to `ahead` inputs in the background while the current one runs."""
    from .sources import open_audio

    with ThreadPoolExecutor(max_workers=max(1, ahead)) as pool:
        queue: deque = deque()
        pending = iter(todo)
        try:
            for item, digest in pending:
                queue.append((item, digest, pool.submit(open_audio, item.path, workdir)))
                if len(queue) > ahead:
                    yield queue.popleft()
            while queue:
                yield queue.popleft()
        finally:  # interrupted: close what was opened ahead, so no temporary file is left
            for _, _, future in queue:
                future.cancel()
                if future.done() and not future.cancelled() and future.exception() is None:
                    future.result().close()


def _process(item, digest, opening: Future, work, outputs, policy, summary, label, *, several) -> None:
    from .remote import ServerError

    try:
        with opening.result() as source:
            recording = _recording(item, source)
            with ProgressBar(f"{label} {item.path.name}", recording.duration, enabled=not policy.quiet) as bar:
                result = work(recording, bar)
            result.warnings[:0] = source.warnings  # damage found while decoding comes first
            page = _page_context(source, item, outputs, policy)
    except (AudioError, ServerError) as exc:
        summary.fail(item, exc)
        return
    if not policy.quiet:
        for warning in result.warnings:
            stderr.print(f"moss: warning: {item.path}: {warning}", markup=False)
    # "first" is the first result written, whichever inputs failed or were skipped before it.
    _write(result, item, digest, outputs, policy, page, first=summary.done == 0, several=several)
    summary.done += 1
    summary.audio_seconds += recording.duration


def _recording(item: InputFile, source: AudioSource) -> Recording:
    from .audio import MIN_SAMPLES, SAMPLE_RATE
    from .pipeline import Recording

    if source.n_samples < MIN_SAMPLES:
        raise AudioError(f"{item.path}: too short ({source.n_samples / SAMPLE_RATE:.3f} s of audio)")
    return Recording(str(item.path), source)


def read_recording(path: Path) -> Recording:
    """A single input, for `ask` (which needs no batch machinery); close its source when done."""
    from .sources import open_audio

    source = open_audio(path)
    try:
        return _recording(InputFile(path, Path(path.stem)), source)
    except AudioError:
        source.close()
        raise


def _write(result: Result, item: InputFile, digest, outputs: OutputSpec, policy: BatchPolicy, page, *,
           first, several) -> None:
    if outputs.output_dir is None:
        _to_stdout(result, outputs, page, first=first, several=several)
        return
    for extension, target in outputs.targets(item):
        target.parent.mkdir(parents=True, exist_ok=True)
        record = describe(item.path, digest, policy.settings)
        # The manifest goes first: an output is only ever trusted with a manifest beside it.
        atomic_write(manifest_path(target), lambda file: json.dump(record, file, ensure_ascii=False, indent=1))
        atomic_write(target, lambda file: _writer(extension, outputs, page).write(result, file))


def _writer(extension: str, outputs: OutputSpec, page: PageContext | None):
    return HtmlWriter(outputs.layout, page) if extension == "html" else get_writer(extension, outputs.layout)


def _to_stdout(result: Result, outputs: OutputSpec, page: PageContext | None, *, first: bool, several: bool) -> None:
    extension = outputs.formats[0]
    if several and extension == "json":
        extension = "jsonl"  # several results on one stream: JSON Lines
    elif several:  # plain text: a header per file, as head(1) does
        sys.stdout.write(("" if first else "\n") + f"==> {result.audio} <==\n")
    _writer(extension, outputs, page).write(result, sys.stdout)
    sys.stdout.flush()


# ---- --html: what a page needs from the audio (the index and `ask`'s page: pages.py) ---------------
def _page_context(source: AudioSource, item: InputFile, outputs: OutputSpec, policy: BatchPolicy) -> PageContext | None:
    """Waveform peaks and the page's audio, read while the recording is still open (None without --html)."""
    if "html" not in outputs.formats:
        return None
    from .report import page_context

    target = dict(outputs.targets(item)).get("html")  # None: the page goes to stdout
    return page_context(source, item.path, target, outputs.html_audio, policy.settings)


def atomic_write(target: Path, fill: Callable) -> None:
    """Write through a temporary file in the same folder, then rename: never a truncated output."""
    for stale in target.parent.glob(f".{target.name}.*.part"):  # left by a killed run
        stale.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            fill(file)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _finish(summary: RunSummary, policy: BatchPolicy, n_inputs: int, seconds: float) -> None:
    if policy.errors_file is not None:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in summary.failures)
        policy.errors_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(policy.errors_file, lambda file: file.write(lines))
    if (n_inputs > 1 or summary.skipped or summary.interrupted) and not policy.quiet:
        stderr.print(f"moss: {summary.done} done, {summary.skipped} skipped, {len(summary.failures)} failed; "
                     f"{summary.audio_seconds / 3600:.2f} h of audio in {seconds:.0f} s")
    for note in policy.notes() if policy.notes and not policy.quiet else []:
        stderr.print(f"moss: {note}", markup=False)


def report(exc: BaseException) -> int:
    """One line on stderr for an error that ends the whole run; returns the exit code."""
    from .remote import ServerError

    if isinstance(exc, KeyboardInterrupt):
        stderr.print("moss: interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):  # the reader went away (`moss ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if isinstance(exc, (ModelUnavailableError, CheckpointError, UsageError)):
        code = EXIT_USAGE
    elif isinstance(exc, MossError):
        code = EXIT_FAILED if isinstance(exc, (AudioError, ServerError)) else EXIT_USAGE
    else:  # a bug, not a bad input: say so, still in one line
        stderr.print(f"moss: internal error: {type(exc).__name__}: {exc}", markup=False)
        return EXIT_FAILED
    stderr.print(f"moss: error: {exc}", markup=False)
    return code
