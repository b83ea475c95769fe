"""Where a run's results go and how they get there: the output spec (formats, folder, layout), the
checks that protect what is already on disk, and writing an output with its manifest so that
neither is ever left half-made."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import OutputError, UsageError
from ..files import Prepared, folder_problem, is_part_name, not_regular, prepare
from ..interrupts import deferred
from ..output.chapters import CHAPTER_WRITERS
from ..output.subtitles import CueLayout
from ..output.writers import HtmlWriter, get_writer
from ..results import Result
from ..text import printable_name
from .inputs import SNIFF_BYTES, InputFile, looks_like_audio
from .manifest import NAME_MAX, is_manifest_name, made_from, manifest_path

if TYPE_CHECKING:
    from ..output.report import PageContext

MAX_ERRORS_BYTES = 64 << 20  # an errors file bigger than this is not recognised as one (--overwrite replaces it)
INDEX_NAME = "index.html"  # --html with several inputs and -o DIR: DIR/index.html lists the pages
JSON_LINES = {"json": "jsonl", "answer": "answers"}  # several results on one stream: one JSON object a line


@dataclass(frozen=True)
class OutputSpec:
    formats: tuple[str, ...]  # file extensions, in the order asked
    output_dir: Path | None = None
    layout: CueLayout = CueLayout()
    html_audio: str = "auto"  # --html pages: auto, link, embed or none
    name_template: str | None = None  # --output-name: the outputs' names (see inputs.OutputName)
    # A format's file extension where it is not the format's name: summarize's JSON is <stem>.digest.json,
    # beside the transcript JSON (<stem>.json) it reuses.
    extensions: Mapping[str, str] = field(default_factory=dict)

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
        if n_inputs > 1 and self.formats[0] not in ("txt", "md", "json", "answer", "answers"):
            raise UsageError(f"several inputs with --{self.formats[0]} need -o/--output-dir DIR")

    def targets(self, item: InputFile) -> list[tuple[str, Path]]:
        if self.output_dir is None:
            return []
        return [(extension, item.output(self.output_dir, self.extensions.get(extension, extension)))
                for extension in self.formats]

    def writer(self, extension: str, page: PageContext | None = None):
        if extension == "html":
            return HtmlWriter(self.layout, page)
        if extension in CHAPTER_WRITERS:
            return CHAPTER_WRITERS[extension](self.layout)
        return get_writer(extension, self.layout)


def check_errors_file(path: Path | None, inputs: list[InputFile] = (), outputs: OutputSpec | None = None,
                      overwrite: bool = False) -> None:
    """--errors names a file that can be written (at the end of the run, through a temporary file),
    and that holds no data: never an input, never an output of the run (or its manifest), never a
    file moss made as an output, and an existing file only when it is empty or an errors file moss
    wrote, else only with --overwrite. `moss transcribe --errors *.wav` must not empty a recording."""
    if path is None:
        return
    problem = _errors_file_place(path) or _errors_file_data(path, inputs, outputs, overwrite)
    if problem:
        raise UsageError(f"--errors: {problem}")


def _errors_file_place(path: Path) -> str | None:
    kind = not_regular(path)
    if os.path.islink(path):  # it is replaced whole when written: a link (/dev/stdout) would be lost
        return f"{path} is a symbolic link; name the file itself"
    if is_manifest_name(path.name) or is_part_name(path.name):
        return f"{path.name} is a name moss keeps for its own manifests and temporary files"
    return f"{path} is {kind}, not a file" if kind else folder_problem(path.parent)


def _errors_file_data(path: Path, inputs, outputs: OutputSpec | None, overwrite: bool) -> str | None:
    identity = file_identity(path)
    if identity is not None and identity in {file_identity(item.path) for item in inputs}:
        return f"{path} is an input of this run"
    targets = [target for item in inputs for _, target in (outputs.targets(item) if outputs else ())]
    if outputs is not None and outputs.output_dir is not None and "html" in outputs.formats and len(inputs) > 1:
        targets.append(outputs.output_dir / INDEX_NAME)  # the pages' index, written at the end of the run
    made = {os.path.abspath(p) for target in targets for p in (target, manifest_path(target))}
    if os.path.abspath(path) in made:
        return f"{path} is an output of this run"
    if identity is None or os.path.getsize(path) == 0 or _is_errors_file(path):
        return None
    if made_from(path) is not None:  # its manifest vouches for it: emptying it would fool --skip-existing
        return f"{path} is an output moss made; name another file"
    if _looks_like_audio(path):  # `--errors *.wav`: the first recording, even with --overwrite
        return f"{path} is an audio file; name another file"
    return None if overwrite else f"{path} exists and is not an errors file moss wrote; --overwrite replaces it"


def _looks_like_audio(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return looks_like_audio(file.read(SNIFF_BYTES))
    except OSError:
        return False


def _is_errors_file(path: Path) -> bool:
    """JSON Lines of {"input", "error", "kind"} records, as a run's --errors writes them."""
    try:
        if os.path.getsize(path) > MAX_ERRORS_BYTES:
            return False
        lines = path.read_bytes().decode("utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, RecursionError):
        return False
    return all(isinstance(r, dict) and set(r) == {"input", "error", "kind"} for r in records)


class OutputGuard:
    """What a run may write: never over an input, never over what another input of the run just
    made, never over a file moss did not make (unless --overwrite)."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite
        self.inputs: set[tuple[int, int]] = set()  # (device, inode) of every input: never written over
        self.written: dict[tuple[int, int], str] = {}  # outputs this run made, and from which input

    def blocked(self, item: InputFile, target: Path) -> str | None:
        """Why `target` can never be written for this input, or None."""
        if len(os.fsencode(target.name)) > NAME_MAX:
            return f"the output name {target.name} is too long for the file system"
        if is_manifest_name(target.name) or is_part_name(target.name):
            return f"its output name {target.name} is one moss keeps for its own manifests and temporary files"
        for path in (target, manifest_path(target)):
            identity = file_identity(path, follow=False)
            if identity is None:
                continue
            if identity in self.inputs or file_identity(path) in self.inputs:
                return f"its output {path} would overwrite an input"
            if identity in self.written and self.written[identity] != item.name:
                return f"its output {path} would overwrite the one just made from {self.written[identity]}"
            kind = not_regular(path)
            if kind:
                return f"{path} is {kind}, not an output moss can replace"
        return None

    def foreign(self, item: InputFile, target: Path) -> str | None:
        """`target` exists and was made by something else (or from another input), unless --overwrite."""
        if self.overwrite or not os.path.lexists(target):
            return None
        owner = made_from(target)
        if owner == item.name:
            return None
        reason = "was not made by moss" if owner is None else f"was made from {owner}"
        return f"output {target} exists and {reason}; --overwrite replaces it"

    def check(self, item: InputFile, target: Path) -> None:
        """Checked again right before writing: another input of this run, or another run, may have
        written the target meanwhile."""
        problem = self.blocked(item, target) or self.foreign(item, target)
        if problem:
            raise OutputError(f"{item.name}: {problem}")

    def made(self, item: InputFile, target: Path) -> None:
        for path in (target, manifest_path(target)):  # neither may be written over by another input
            self.written[file_identity(path, follow=False)] = item.name


def file_identity(path: Path, follow: bool = True) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def write_output(target: Path, fill: Callable[[TextIO], None], record: dict) -> None:
    """An output and its manifest, through temporary files (see _commit)."""
    _commit(prepare(target, fill), record)


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


def write_to_stream(stream: TextIO, result: Result, outputs: OutputSpec, page: PageContext | None, *,
                    first: bool, several: bool) -> None:
    """One result on the run's stream (stdout), framed so that several results stay apart."""
    extension = outputs.formats[0]
    if several and extension in JSON_LINES:
        extension = JSON_LINES[extension]
    elif extension == "answer" and not first:  # a blank line between answers, as `ask` always did
        stream.write("\n")
    elif several and extension != "answers":  # plain text: a header per file, as head(1) does
        stream.write(("" if first else "\n") + f"==> {printable_name(result.audio)} <==\n")
    outputs.writer(extension, page).write(result, stream)
    stream.flush()
