"""The command-line side of a batch: inputs in order, outputs placed and written safely, failures reported.

Part of the CLI layer: it prints (to stderr) and picks exit codes; the library below it only raises.
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
from typing import TYPE_CHECKING

from rich.console import Console

from ..errors import AudioError, CheckpointError, ModelUnavailableError, MossError, QuestionError, ServerError
from ..files import Prepared, folder_problem, not_regular, prepare, run_folder, sweep_parts, write_atomically
from .inputs import InputFile, InputList
from ..interrupts import deferred, in_background, result_of, signals_interrupt
from .manifest import content_hash, describe, made_from, manifest_path, up_to_date
from ..cli.progress import BatchProgress, Board, ProgressBar
from ..results import Result
from ..output.subtitles import CueLayout
from ..text import path_text, printable_name
from ..output.writers import HtmlWriter, get_writer

if TYPE_CHECKING:  # the pipeline brings torch: loaded when a file is processed, not for --help
    from ..tasks.pipeline import Recording
    from ..output.report import PageContext
    from ..audio.sources import AudioSource

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
NAME_MAX = 255  # bytes in one file name, on every common file system
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(MossError):
    """The command line asks for something impossible (caught before any work)."""


class OutputError(MossError):
    """An output cannot be written for one input (a name clash, a full disk): that input fails."""


@dataclass(frozen=True)
class OutputSpec:
    formats: tuple[str, ...]  # file extensions, in the order asked
    output_dir: Path | None = None
    layout: CueLayout = CueLayout()
    html_audio: str = "auto"  # --html pages: auto, link, embed or none
    name_template: str | None = None  # --output-name: the outputs' names (see inputs.OutputName)

    def check(self, n_inputs: int) -> None:
        """Run-wide problems, found before any work: each is a usage error."""
        if "html" in self.formats and self.html_audio == "link" and self.output_dir is None:
            raise UsageError("--html-audio link needs -o/--output-dir DIR: a page on stdout has no place to link from")
        if self.output_dir is not None:
            problem = folder_problem(self.output_dir)
            if problem:
                raise UsageError(f"-o: {problem}")
            return
        if self.name_template is not None:
            raise UsageError("--output-name names files under -o/--output-dir DIR; give -o too")
        if len(self.formats) > 1:
            raise UsageError(f"several formats ({', '.join(self.formats)}) need -o/--output-dir DIR")
        if n_inputs > 1 and self.formats[0] not in ("txt", "json", "answer", "answers"):
            raise UsageError(f"several inputs with --{self.formats[0]} need -o/--output-dir DIR")

    def targets(self, item: InputFile) -> list[tuple[str, Path]]:
        if self.output_dir is None:
            return []
        return [(extension, item.output(self.output_dir, extension)) for extension in self.formats]


def check_errors_file(path: Path | None) -> None:
    """--errors names a file that can be written (at the end of the run, through a temporary file)."""
    if path is None:
        return
    kind = not_regular(path)
    if os.path.islink(path):  # it is replaced whole when written: a link (/dev/stdout) would be lost
        problem = f"{path} is a symbolic link; name the file itself"
    else:
        problem = f"{path} is {kind}, not a file" if kind else folder_problem(path.parent)
    if problem:
        raise UsageError(f"--errors: {problem}")


@dataclass(frozen=True)
class BatchPolicy:
    skip_existing: bool = False  # skip inputs whose outputs are up to date
    overwrite: bool = False  # replace outputs even if another input or tool made them
    errors_file: Path | None = None  # failures as JSON Lines
    jobs: int = 1  # files decoded ahead of the one being processed, plus one
    quiet: bool = False
    settings: dict = field(default_factory=dict)  # everything that shapes an output, for manifests
    notes: Callable[[], list[str]] | None = None  # more lines for the run summary (requests per server)
    prepare: Callable[[AudioSource], None] | None = None  # done to each input as it is opened ahead (the speech scan)
    warm_up: Callable[[], None] | None = None  # called once there is an input to open (the model starts loading)


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    failures: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    interrupted: int | None = None  # the exit code an interruption asks for
    unreported: bool = False  # the --errors file could not be written

    def fail(self, item: InputFile, exc: BaseException) -> None:
        message = str(exc)
        if item.label:  # audio from stdin was saved to a temporary file: name it as the user did
            message = message.replace(str(item.path), item.label)
        self.fail_input(item.name, message, type(exc).__name__)

    def fail_input(self, name: str, message: str, kind: str) -> None:
        self.failures.append({"input": name, "error": path_text(message), "kind": kind})
        stderr.print(f"moss: error: {printable_name(message)}", markup=False)

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return self.interrupted
        return EXIT_FAILED if self.failures or self.unreported else EXIT_OK


Work = Callable[["Recording", ProgressBar], "Result | list[Result]"]  # a list: `ask`'s answers, one a question


def run_batch(inputs: InputList, work: Work, outputs: OutputSpec, policy: BatchPolicy, label: str) -> int:
    """Process every input; a failing file gets one line on stderr and the rest go on.

    Ctrl-C or SIGTERM stops at once: the work in flight is abandoned (never waited for), temporary
    files are removed, the summary and --errors are still written; exit 130 (143 for SIGTERM).
    """
    summary, started = RunSummary(), time.monotonic()
    with signals_interrupt():
        try:
            for given, reason in inputs.problems:
                summary.fail_input(given, f"{given}: {reason}", "InputError")
            with run_folder() as workdir:
                batch = _Batch(outputs, policy, summary, workdir)
                todo = batch.plan(inputs.files)
                if todo and policy.warm_up:
                    policy.warm_up()
                with BatchProgress([item.path for item, _ in todo], enabled=not policy.quiet) as overall:
                    board = overall.board if overall.enabled else None  # one display holds both bars
                    opened = _opened_ahead(todo, workdir, _look_ahead(policy), policy.prepare)
                    for index, (item, digest, opening) in enumerate(opened):
                        batch.process(item, digest, opening, work, label, several=len(inputs.files) > 1, board=board)
                        overall.finished(index)
            if "html" in outputs.formats:
                from .pages import write_index

                write_index(inputs.files, outputs, policy)
        except KeyboardInterrupt as exc:
            summary.interrupted = getattr(exc, "exit_code", EXIT_INTERRUPTED)
            stderr.print("moss: interrupted; finished outputs are complete, re-run with --skip-existing for the rest")
        finally:
            _finish(summary, policy, len(inputs.files), time.monotonic() - started)
    return summary.exit_code


class _Batch:
    """One run's inputs and outputs: what to do for each input, and writing its outputs safely."""

    def __init__(self, outputs: OutputSpec, policy: BatchPolicy, summary: RunSummary, workdir: Path):
        self.outputs, self.policy, self.summary, self.workdir = outputs, policy, summary, workdir
        self.inputs: set[tuple[int, int]] = set()  # (device, inode) of every input: never written over
        self.written: dict[tuple[int, int], str] = {}  # outputs this run made, and from which input

    def plan(self, items: list[InputFile]) -> list[tuple[InputFile, str | None]]:
        items = [self._spooled(item) for item in items]
        self.inputs = {identity for item in items if item and (identity := _identity(item.path))}
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
            self.summary.fail(item, AudioError(f"-: cannot save the audio from stdin ({exc.strerror or exc})"))
            return None
        return replace(item, path=path, stdin=None)

    def _plan(self, item: InputFile) -> str | None | bool:
        """The input's content hash (None when writing to stdout), or False when it is skipped or fails."""
        kind = not_regular(item.path)
        if kind:
            return self._fail(item, AudioError(f"{item.name}: is {kind}, not an audio file"))
        targets = self.outputs.targets(item)
        if not targets:
            return None
        if item.clash:
            return self._fail(item, OutputError(
                f"{item.name}: its outputs would have the same names as those of {item.clash}; "
                "give inputs with the same names in separate runs"))
        for _, target in targets:
            problem = self._blocked(item, target)
            if problem:
                return self._fail(item, OutputError(f"{item.name}: {problem}"))
        try:
            digest = content_hash(item.path)
        except OSError as exc:
            return self._fail(item, AudioError(f"{item.name}: {exc.strerror or 'unreadable'}"))
        if self.policy.skip_existing and all(up_to_date(path, digest, self.policy.settings) for _, path in targets):
            self.summary.skipped += 1
            return False
        for _, target in targets:
            problem = self._foreign(item, target)
            if problem:
                return self._fail(item, UsageError(f"{item.name}: {problem}"))
        return digest

    def _fail(self, item: InputFile, exc: MossError) -> bool:
        self.summary.fail(item, exc)
        return False

    def _blocked(self, item: InputFile, target: Path) -> str | None:
        """Why `target` can never be written for this input, or None."""
        if len(os.fsencode(target.name)) > NAME_MAX:
            return f"the output name {target.name} is too long for the file system"
        for path in (target, manifest_path(target)):
            identity = _identity(path, follow=False)
            if identity is None:
                continue
            if identity in self.inputs or _identity(path) in self.inputs:
                return f"its output {path} would overwrite an input"
            if identity in self.written and self.written[identity] != item.name:
                return f"its output {path} would overwrite the one just made from {self.written[identity]}"
            kind = not_regular(path)
            if kind:
                return f"{path} is {kind}, not an output moss can replace"
        return None

    def _foreign(self, item: InputFile, target: Path) -> str | None:
        """`target` exists and was made by something else (or from another input), unless --overwrite."""
        if self.policy.overwrite or not os.path.lexists(target):
            return None
        owner = made_from(target)
        if owner == item.name:
            return None
        reason = "was not made by moss" if owner is None else f"was made from {owner}"
        return f"output {target} exists and {reason}; --overwrite replaces it"

    def process(self, item: InputFile, digest, opening: Future, work: Work, label: str, *, several: bool,
                board: Board | None = None) -> None:
        try:
            with result_of(opening) as source:  # the main thread stays free for Ctrl-C
                recording = _recording(item, source)
                title = item.label or printable_name(item.path.name)
                with ProgressBar(f"{label} {title}", recording.duration, not self.policy.quiet, board) as bar:
                    results = in_background(work, recording, bar)  # the main thread stays free for Ctrl-C
                results = results if isinstance(results, list) else [results]
                results[0].warnings[:0] = source.warnings  # damage found while decoding comes first
                page = self._page_context(source, item)  # read while the recording is open
        except (AudioError, ServerError, QuestionError) as exc:
            self.summary.fail(item, exc)
            return
        if not self.policy.quiet:
            for warning in (warning for result in results for warning in result.warnings):
                stderr.print(printable_name(f"moss: warning: {item.name}: {warning}"), markup=False)
        try:
            for index, result in enumerate(results):
                # "first" is the first result written, whichever inputs failed or were skipped before it.
                self._write(result, item, digest, page, first=self.summary.done == 0 and index == 0, several=several)
        except OutputError as exc:
            self.summary.fail(item, exc)
            return
        self.summary.done += 1
        self.summary.audio_seconds += recording.duration

    def _write(self, result: Result, item: InputFile, digest, page: PageContext | None, *,
               first: bool, several: bool) -> None:
        if self.outputs.output_dir is None:
            _to_stdout(result, self.outputs, page, first=first, several=several)
            return
        for extension, target in self.outputs.targets(item):
            # Checked again now: another input of this run, or another run, may have written it meanwhile.
            problem = self._blocked(item, target) or self._foreign(item, target)
            if problem:
                raise OutputError(f"{item.name}: {problem}")
            writer = _writer(extension, self.outputs, page)
            record = describe(item.name, digest, self.policy.settings)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_output(target, lambda file, writer=writer: writer.write(result, file), record)
            except OSError as exc:  # a full disk, a folder made read-only meanwhile: this input fails
                raise OutputError(f"{item.name}: cannot write {target}: {exc.strerror or exc}") from None
            self.written[_identity(target, follow=False)] = item.name

    def _page_context(self, source: AudioSource, item: InputFile) -> PageContext | None:
        """--html: waveform peaks and the page's audio, read while the recording is open (else None)."""
        if "html" not in self.outputs.formats:
            return None
        from ..output.report import page_context

        target = dict(self.outputs.targets(item)).get("html")  # None: the page goes to stdout
        audio = self.outputs.html_audio
        if item.label and audio == "auto":  # audio from stdin sits in a temporary file: no link to it
            audio = "embed"
        return page_context(source, item.path, target, audio, self.policy.settings)


def write_output(target: Path, fill: Callable, record: dict) -> None:
    """An output and its manifest, through temporary files (see _commit)."""
    _commit(prepare(target, fill), record)


def _writer(extension: str, outputs: OutputSpec, page: PageContext | None):
    return HtmlWriter(outputs.layout, page) if extension == "html" else get_writer(extension, outputs.layout)


def _commit(output: Prepared, record: dict) -> None:
    """The output first, its manifest last: a manifest never vouches for an output not yet written,
    and when either cannot be written, neither is left new."""
    manifest = None
    try:
        manifest = prepare(manifest_path(output.target),
                           lambda file: json.dump(record, file, ensure_ascii=False, indent=1))
        with deferred():  # a signal waits for both renames
            output.place()
            try:
                manifest.place()
            except BaseException:
                output.target.unlink(missing_ok=True)
                raise
    except BaseException:
        for prepared in (output, manifest):
            if prepared is not None and prepared.fd >= 0:  # not placed: its temporary file goes
                prepared.discard()
        raise


def _identity(path: Path, follow: bool = True) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


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
    finally:  # interrupted: never wait for a conversion; close what was opened ahead
        pool.shutdown(wait=finished, cancel_futures=True)
        for _, _, future in queue:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()


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


def _recording(item: InputFile, source: AudioSource) -> Recording:
    from ..audio.constants import MIN_SAMPLES, SAMPLE_RATE
    from ..tasks.pipeline import Recording

    if source.n_samples < MIN_SAMPLES:
        raise AudioError(f"{item.name}: too short ({source.n_samples / SAMPLE_RATE:.3f} s of audio)")
    return Recording(item.name, source)


def read_recording(path: Path) -> Recording:
    """A single input, for `ask` (which needs no batch machinery); close its source when done."""
    from ..audio.sources import open_audio

    source = open_audio(path)
    try:
        return _recording(InputFile(path, Path(path.stem)), source)
    except AudioError:
        source.close()
        raise


def _to_stdout(result: Result, outputs: OutputSpec, page: PageContext | None, *, first: bool, several: bool) -> None:
    extension = outputs.formats[0]
    if several and extension in ("json", "answer"):
        extension = {"json": "jsonl", "answer": "answers"}[extension]  # several results on one stream: JSON Lines
    elif extension == "answer" and not first:  # a blank line between answers, as `ask` always did
        sys.stdout.write("\n")
    elif several and extension != "answers":  # plain text: a header per file, as head(1) does
        sys.stdout.write(("" if first else "\n") + f"==> {printable_name(result.audio)} <==\n")
    _writer(extension, outputs, page).write(result, sys.stdout)
    sys.stdout.flush()


def _finish(summary: RunSummary, policy: BatchPolicy, n_inputs: int, seconds: float) -> None:
    if policy.errors_file is not None:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in summary.failures)
        try:
            policy.errors_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(policy.errors_file, lambda file: file.write(lines))
        except OSError as exc:
            stderr.print(printable_name(f"moss: error: cannot write --errors {policy.errors_file}: "
                                        f"{exc.strerror or exc}"), markup=False)
            summary.unreported = True
    if (n_inputs > 1 or summary.skipped or summary.interrupted) and not policy.quiet:
        stderr.print(f"moss: {summary.done} done, {summary.skipped} skipped, {len(summary.failures)} failed; "
                     f"{summary.audio_seconds / 3600:.2f} h of audio in {seconds:.0f} s")
    for note in policy.notes() if policy.notes and not policy.quiet else []:
        stderr.print(f"moss: {note}", markup=False)


def report(exc: BaseException) -> int:
    """One line on stderr for an error that ends the whole run; returns the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        stderr.print("moss: interrupted")
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):  # the reader went away (`moss ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if isinstance(exc, (ModelUnavailableError, CheckpointError, UsageError)):
        code = EXIT_USAGE
    elif isinstance(exc, MossError):
        code = EXIT_FAILED if isinstance(exc, (AudioError, ServerError, OutputError)) else EXIT_USAGE
    else:  # a bug, not a bad input: say so, still in one line
        stderr.print(printable_name(f"moss: internal error: {type(exc).__name__}: {exc}"), markup=False)
        return EXIT_FAILED
    stderr.print(printable_name(f"moss: error: {exc}"), markup=False)
    return code
