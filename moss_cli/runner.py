"""The command-line side of a run: inputs in order, one engine, outputs routed, each failure reported.

Part of the CLI layer: it prints (to stderr) and picks exit codes; the library below it only raises.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from .errors import AudioError, CheckpointError, ModelUnavailableError, MossError
from .pipeline import Recording
from .progress import ProgressBar
from .results import Result
from .subtitles import CueLayout
from .writers import get_writer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(MossError):
    """The command line asks for something impossible (caught before any work)."""


@dataclass(frozen=True)
class OutputSpec:
    formats: tuple[str, ...]  # file extensions, in the order asked
    output_dir: Path | None = None
    layout: CueLayout = CueLayout()

    def check(self, n_inputs: int) -> None:
        if self.output_dir is not None:
            return
        if len(self.formats) > 1:
            raise UsageError(f"several formats ({', '.join(self.formats)}) need -o/--output-dir DIR")
        if n_inputs > 1 and self.formats[0] not in ("txt", "json"):
            raise UsageError(f"several inputs with --{self.formats[0]} need -o/--output-dir DIR")


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    audio_seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK


Work = Callable[[Recording, ProgressBar], Result]


def run_files(
    paths: list[Path], work: Work, outputs: OutputSpec, *, quiet: bool, label: str,
    on_result: Callable[[Result], None] | None = None,
) -> int:
    """Process every input; a failing file is reported in one line and the rest go on."""
    outputs.check(len(paths))
    summary, started = RunSummary(), time.monotonic()
    for index, path in enumerate(paths):
        try:
            recording = read_recording(path)
            with ProgressBar(f"{label} {path.name}", recording.duration, enabled=not quiet) as bar:
                result = work(recording, bar)
        except (AudioError, _remote_error()) as exc:
            summary.failed += 1
            stderr.print(f"moss: error: {exc}", markup=False)
            continue
        for warning in result.warnings:
            if not quiet:
                stderr.print(f"moss: warning: {path}: {warning}", markup=False)
        write_result(result, path, outputs, first=index == 0, several=len(paths) > 1)
        if on_result:
            on_result(result)
        summary.done += 1
        summary.audio_seconds += recording.duration
    if len(paths) > 1 and not quiet:
        stderr.print(f"moss: {summary.done} done, {summary.failed} failed, "
                     f"{summary.audio_seconds / 3600:.2f} h of audio in {time.monotonic() - started:.0f} s")
    return summary.exit_code


def read_recording(path: Path) -> Recording:
    from .audio import MIN_SAMPLES, SAMPLE_RATE, load_audio

    samples = load_audio(path)
    if samples.size < MIN_SAMPLES:
        raise AudioError(f"{path}: too short ({samples.size / SAMPLE_RATE:.3f} s of audio)")
    return Recording(str(path), samples)


def write_result(result: Result, path: Path, outputs: OutputSpec, *, first: bool, several: bool) -> None:
    if outputs.output_dir is None:
        _to_stdout(result, outputs, first=first, several=several)
        return
    outputs.output_dir.mkdir(parents=True, exist_ok=True)
    for extension in outputs.formats:
        target = outputs.output_dir / f"{path.stem}.{extension}"
        atomic_write(target, lambda file: get_writer(extension, outputs.layout).write(result, file))


def _to_stdout(result: Result, outputs: OutputSpec, *, first: bool, several: bool) -> None:
    extension = outputs.formats[0]
    if several and extension == "json":
        extension = "jsonl"  # several results on one stream: JSON Lines
    elif several:  # plain text: a header per file, as head(1) does
        sys.stdout.write(("" if first else "\n") + f"==> {result.audio} <==\n")
    get_writer(extension, outputs.layout).write(result, sys.stdout)
    sys.stdout.flush()


def atomic_write(target: Path, fill: Callable) -> None:
    """Write through a temporary file in the same folder, then rename: never a truncated output."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            fill(file)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def report(exc: BaseException) -> int:
    """One line on stderr for an error that ends the whole run; returns the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        stderr.print("moss: interrupted")
        return 130
    if isinstance(exc, BrokenPipeError):  # the reader went away (`moss ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    code = EXIT_FAILED if isinstance(exc, AudioError) else EXIT_USAGE
    if isinstance(exc, (ModelUnavailableError, CheckpointError, UsageError)):
        code = EXIT_USAGE
    if isinstance(exc, _remote_error()):
        code = EXIT_FAILED
    stderr.print(f"moss: error: {exc}", markup=False)
    return code


def _remote_error() -> type[MossError]:
    from .remote import ServerError

    return ServerError
