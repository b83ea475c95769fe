"""A batch: every input in order, its outputs placed and written safely, a failing input recorded
while the others go on. It reports what happens through an observer (observer.py); it never prints.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..audio.handles import open_regular
from ..errors import EXIT_INTERRUPTED, AudioError, MossError, OutputError, UsageError
from ..files import folder_problem, run_folder, sweep_parts, write_atomically
from ..interrupts import result_of, signals_interrupt, started
from ..progress import Progress
from ..results import Result
from ..text import path_text, printable_name
from .inputs import InputFile, InputList
from .manifest import content_hash, describe, up_to_date
from .observer import BatchObserver, RunSummary
from .outputs import OutputGuard, OutputSpec, file_identity, write_output, write_to_stream

if TYPE_CHECKING:  # the pipeline brings numpy and the VAD: loaded when a file is processed, not for --help
    from ..audio.sources import AudioSource
    from ..output.report import PageContext
    from ..tasks.recording import Recording


@dataclass(frozen=True)
class BatchPolicy:
    skip_existing: bool = False  # skip inputs whose outputs are up to date
    overwrite: bool = False  # replace outputs even if another input or tool made them
    errors_file: Path | None = None  # failures as JSON Lines
    jobs: int = 1  # files decoded ahead of the one being processed, plus one
    settings: dict = field(default_factory=dict)  # everything that shapes an output, for manifests
    notes: Callable[[], list[str]] | None = None  # more lines for the run summary (requests per server)
    prepare: Callable[[AudioSource], None] | None = None  # done to each input as it is opened ahead (the speech scan)
    warm_up: Callable[[], None] | None = None  # called once there is an input to open (the model starts loading)
    # Files worked on at once (an engine that batches across files takes several), asked each time
    # another file could start: the answer may wait for the model to load. None: one at a time.
    lanes: Callable[[], int] | None = None


Work = Callable[["Recording", Progress], "Result | list[Result]"]  # a list: `ask`'s answers, one a question


def run_batch(inputs: InputList, work: Work, outputs: OutputSpec, policy: BatchPolicy, label: str,
              observer: BatchObserver | None = None, stream: TextIO | None = None) -> int:
    """Process every input; a failing file is reported and the rest go on. Returns the exit code.

    `stream` takes the results when there is no output folder (the CLI passes stdout). Ctrl-C or
    SIGTERM stops at once: the work in flight is abandoned (never waited for), temporary files are
    removed, the summary and --errors are still written; exit 130 (143 for SIGTERM).
    """
    if stream is None and outputs.output_dir is None:
        raise ValueError("results without an output folder need a stream to go to")
    observer = observer or BatchObserver()
    summary, started = RunSummary(), time.monotonic()
    with signals_interrupt():
        try:
            for given, reason in inputs.problems:
                _fail(summary, observer, given, f"{given}: {reason}", "InputError")
            with run_folder() as workdir:
                batch = _Batch(outputs, policy, summary, observer, workdir, stream)
                todo = batch.plan(inputs.files)
                if todo and policy.warm_up:
                    policy.warm_up()
                with observer.files([item.path for item, _ in todo]):
                    opened = _opened_ahead(todo, workdir, _look_ahead(policy), policy.prepare)
                    batch.run(opened, work, label, several=len(inputs.files) > 1)
            if "html" in outputs.formats:
                from .pages import write_index

                if not write_index(inputs.files, outputs, policy.overwrite, observer):
                    summary.unreported = True
        except KeyboardInterrupt as exc:
            summary.interrupted = getattr(exc, "exit_code", EXIT_INTERRUPTED)
            observer.interrupted()
        finally:
            _finish(summary, policy, observer, len(inputs.files), time.monotonic() - started)
    return summary.exit_code


def _fail(summary: RunSummary, observer: BatchObserver, name: str, message: str, kind: str) -> None:
    summary.record(name, message, kind)
    observer.failure(message)


class _Batch:
    """One run's inputs and outputs: what to do for each input, and writing its outputs safely."""

    def __init__(self, outputs: OutputSpec, policy: BatchPolicy, summary: RunSummary, observer: BatchObserver,
                 workdir: Path, stream: TextIO | None):
        self.outputs, self.policy, self.summary, self.observer = outputs, policy, summary, observer
        self.workdir, self.stream = workdir, stream
        self.guard = OutputGuard(policy.overwrite)

    def fail(self, item: InputFile, exc: BaseException) -> None:
        message = str(exc)
        if item.label:  # audio from stdin was saved to a temporary file: name it as the user did
            message = message.replace(str(item.path), item.label)
        _fail(self.summary, self.observer, item.name, message, type(exc).__name__)

    def plan(self, items: list[InputFile]) -> list[tuple[InputFile, str | None]]:
        items = [self._spooled(item) for item in items]
        self.guard.inputs = {identity for item in items if item and (identity := file_identity(item.path))}
        for folder in {target.parent for item in items if item for _, target in self.outputs.targets(item)}:
            sweep_parts(folder)  # temporary files of killed runs
        todo = []
        for item in filter(None, items):
            digest = self._plan(item)
            if digest is not False:
                todo.append((item, digest))
        return todo

    def _spooled(self, item: InputFile) -> InputFile | None:
        """Audio bytes on stdin are saved to a file first: decoding needs to seek."""
        if item.stdin is None:
            return item
        path = self.workdir / "stdin"
        try:
            with open(path, "wb") as file:
                file.write(item.stdin.head)
                shutil.copyfileobj(item.stdin.stream, file, 1 << 20)
        except OSError as exc:
            self.fail(item, AudioError(f"-: cannot save the audio from stdin ({exc.strerror or exc})"))
            return None
        return replace(item, path=path, stdin=None)

    def _plan(self, item: InputFile) -> str | None | bool:
        """The input's content hash (None when writing to the stream), or False when it is skipped or fails."""
        # Opened once now, as its turn opens it (a FIFO, /dev/zero, a missing or empty file refused), so
        # that what cannot be read is said before the model starts loading: a mistyped name at once.
        problem = _unopenable(item.path)
        if problem:
            return self._refuse(item, problem)
        targets = self.outputs.targets(item)
        if not targets:
            return None
        if item.clash:
            return self._refuse(item, OutputError(
                f"{item.name}: its outputs would have the same names as those of {item.clash}; "
                "give inputs with the same names in separate runs"))
        for _, target in targets:
            problem = self.guard.blocked(item, target)
            if problem:
                return self._refuse(item, OutputError(f"{item.name}: {problem}"))
        try:
            digest = content_hash(item.path)
        except OSError as exc:
            return self._refuse(item, AudioError(f"{item.name}: {exc.strerror or 'unreadable'}"))
        if self.policy.skip_existing and all(up_to_date(path, digest, self.policy.settings) for _, path in targets):
            self.summary.skipped += 1
            return False
        for _, target in targets:
            problem = self.guard.foreign(item, target)
            if problem:
                return self._refuse(item, UsageError(f"{item.name}: {problem}"))
        return digest

    def _refuse(self, item: InputFile, exc: MossError) -> bool:
        self.fail(item, exc)
        return False

    def run(self, opened, work: Work, label: str, *, several: bool) -> None:
        """Each input worked on in a thread of its own, up to policy.lanes() at once; outputs are
        written, and the observer told, in input order."""
        lanes: deque = deque()
        for index, (item, digest, opening) in enumerate(opened):
            lanes.append((index, item, digest, started(self._work_on, item, digest, opening, work, label,
                                                               name="moss-file")))
            while len(lanes) >= max(1, self.policy.lanes() if self.policy.lanes else 1):
                self._finish(*lanes.popleft(), several=several)
        while lanes:
            self._finish(*lanes.popleft(), several=several)

    def _work_on(self, item: InputFile, digest: str | None, opening: Future, work: Work, label: str):
        """In the input's own thread: its audio opened, the work done, what writing needs read."""
        with result_of(opening) as source:
            recording = _recording(item, source)
            if self.outputs.output_dir is not None:  # a task may reuse what an earlier run made there (summarize)
                recording.output_stem = item.output(self.outputs.output_dir, "x").with_suffix("")
                recording.sha256 = digest
            title = item.label or printable_name(item.path.name)
            with self.observer.file(f"{label} {title}", recording.duration) as progress:
                results = work(recording, progress)
            results = results if isinstance(results, list) else [results]
            results[0].warnings[:0] = source.warnings  # damage found while decoding comes first
            return results, self._page_context(source, item), recording.duration

    def _finish(self, index: int, item: InputFile, digest, working: Future, *, several: bool) -> None:
        try:
            results, page, seconds = result_of(working)  # the main thread stays free for Ctrl-C
        except MossError as exc:
            if not exc.fails_input:  # a missing model, a server gone: the whole run ends
                raise
            self.fail(item, exc)
        except reading_errors() as exc:  # EIO, a name too long, the temporary folder full: this input's
            self.fail(item, unreadable(item.name, exc, self.workdir))
        else:
            self._deliver(item, digest, results, page, seconds, several=several)
        self.observer.file_done(index)

    def _deliver(self, item: InputFile, digest, results: list[Result], page, seconds: float, *, several: bool) -> None:
        for warning in (warning for result in results for warning in result.warnings):
            self.observer.warning(printable_name(f"{item.name}: {warning}"))
        try:
            for index, result in enumerate(results):
                # "first" is the first result written, whichever inputs failed or were skipped before it.
                self._write(result, item, digest, page, first=self.summary.done == 0 and index == 0, several=several)
        except OutputError as exc:
            self.fail(item, exc)
            return
        self.summary.done += 1
        self.summary.audio_seconds += seconds

    def _write(self, result: Result, item: InputFile, digest, page: PageContext | None, *,
               first: bool, several: bool) -> None:
        if self.outputs.output_dir is None:
            write_to_stream(self.stream, result, self.outputs, page, first=first, several=several)
            return
        for extension, target in self.outputs.targets(item):
            self.guard.check(item, target)
            writer = self.outputs.writer(extension, page)
            record = describe(item.name, digest, self.policy.settings)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_output(target, lambda file, writer=writer: writer.write(result, file), record)
            except OSError as exc:  # a full disk, a folder made read-only meanwhile: this input fails
                raise OutputError(f"{item.name}: cannot write {target}: {exc.strerror or exc}") from None
            self.guard.made(item, target)

    def _page_context(self, source: AudioSource, item: InputFile) -> PageContext | None:
        """--html: waveform peaks and the page's audio, read while the recording is open (else None)."""
        if "html" not in self.outputs.formats:
            return None
        from ..output.report import page_context

        target = dict(self.outputs.targets(item)).get("html")  # None: the page goes to the stream
        audio = self.outputs.html_audio
        if item.label and audio == "auto":  # audio from stdin sits in a temporary file: no link to it
            audio = "embed"
        return page_context(source, item.path, target, audio, self.policy.settings)


def _look_ahead(policy: BatchPolicy) -> int:
    """Inputs opened ahead: --jobs N gives N - 1; with a speech scan to do, at least one, so that the
    next input is decoded and scanned while the model works on the current one. MOSS_LOOKAHEAD=0
    turns that off, for benchmarks/overlap.py to time the difference."""
    if policy.prepare is None or os.environ.get("MOSS_LOOKAHEAD") == "0":
        return policy.jobs - 1
    return max(1, policy.jobs - 1)


def _opened_ahead(todo, workdir: Path, ahead: int, prepare=None) -> Iterator[tuple[InputFile, str | None, Future]]:
    """Open (decode, convert) up to `ahead` inputs in the background while the current one runs, each
    followed by `prepare` (its speech scan); an error in either is the input's own, raised at its turn."""
    pool = ThreadPoolExecutor(max_workers=max(1, ahead))
    queue: deque = deque()
    finished = False
    try:
        for item, digest in todo:
            queue.append((item, digest, pool.submit(_open, item.path, workdir, prepare)))
            if len(queue) > ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()
        finished = True
    finally:  # every input handed out is opened by its turn; interrupted: close what was opened ahead
        pool.shutdown(wait=False, cancel_futures=not finished)
        for _, _, future in queue:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()


def _unopenable(path: Path) -> AudioError | None:
    """Why the file cannot be opened as audio (missing, unreadable, empty, not a regular file), or None."""
    try:
        open_regular(path).close()
    except AudioError as exc:
        return exc
    return None


def _open(path: Path, workdir: Path, prepare) -> AudioSource:
    from ..audio.sources import open_audio

    source = open_audio(path, workdir)
    if prepare is not None:
        try:
            prepare(source)
        except BaseException:
            source.close()  # its temporary file goes with it
            raise
    return source


def reading_errors() -> tuple[type[BaseException], ...]:
    """What the system and the decoders raise when one input cannot be read or converted (audio/ lets
    them through): the input fails with a line of its own, never the run with an internal error.
    soundfile and PyAV raise their own classes ("System error." for a full disk); they are looked up
    only once loaded, which they are by the time an input was opened."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (("soundfile", "SoundFileError"), ("av", "FFmpegError")):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def unreadable(name: str, exc: BaseException, workdir: Path | None = None) -> AudioError:
    """The one-line error for an input that could not be read or converted."""
    reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    space = folder_problem(workdir) if workdir is not None else None
    if space and "space" in space:  # libsndfile says only "System error." when the disk fills
        reason = f"{reason} (the temporary folder {workdir.parent} has no space left)"
    return AudioError(f"{name}: cannot read or convert the audio: {reason}")


def _recording(item: InputFile, source: AudioSource) -> Recording:
    from ..audio.constants import MIN_SAMPLES, SAMPLE_RATE
    from ..tasks.recording import Recording

    if source.n_samples < MIN_SAMPLES:
        raise AudioError(f"{item.name}: too short ({source.n_samples / SAMPLE_RATE:.3f} s of audio)")
    return Recording(item.name, source)


def read_recording(path: Path) -> Recording:
    """A single input, for `ask` (which needs no batch machinery); close its source when done."""
    from ..audio.sources import open_audio

    try:
        source = open_audio(path)
    except reading_errors() as exc:
        raise unreadable(path_text(path), exc) from None
    try:
        return _recording(InputFile(path, Path(path.stem)), source)
    except AudioError:
        source.close()
        raise


def _finish(summary: RunSummary, policy: BatchPolicy, observer: BatchObserver, n_inputs: int, seconds: float) -> None:
    if policy.errors_file is not None:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in summary.failures)
        try:
            policy.errors_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(policy.errors_file, lambda file: file.write(lines))
        except OSError as exc:
            observer.failure(f"cannot write --errors {policy.errors_file}: {exc.strerror or exc}")
            summary.unreported = True
    observer.finished(summary, n_inputs, seconds, policy.notes() if policy.notes else [])
