"""Turning command-line inputs (files, directories, globs, `-`, `@list.txt`) into an ordered file list.

Where each input's outputs go under `-o DIR` is decided here too, once for the whole list, so that
no two inputs are ever given the same output name.
"""

from __future__ import annotations

import glob
import os
import string
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from ..text import path_text

AUDIO_EXTENSIONS = frozenset(
    "wav wave flac ogg oga opus mp3 m4a m4b aac wma aif aiff aifc caf au snd amr 3gp wv ape mka "
    "mp4 m4v mkv webm mov avi".split()
)
STDIN_STEM = Path("stdin")  # audio read from stdin: stdin.srt, stdin.json, ... under -o DIR
SNIFF_BYTES = 64  # enough to recognise every container's signature



@dataclass(frozen=True)
class StdinAudio:
    """Audio bytes on stdin: the bytes already read to recognise them, and the rest of the stream."""

    head: bytes
    stream: BinaryIO


@dataclass(frozen=True)
class InputFile:
    path: Path  # as given or found, to open
    stem: Path  # its outputs' path under -o DIR, without extension: a/x for in/a/x.wav
    label: str | None = None  # how messages and results name it, when not by its path ("-" for stdin)
    clash: str | None = None  # another input whose outputs would take the same names
    stdin: StdinAudio | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.label or path_text(self.path)

    def output(self, folder: Path, extension: str) -> Path:
        stem = inside(self.stem)  # stems are made inside already; an InputFile built elsewhere is held too
        return folder / stem.parent / f"{stem.name}.{extension}"


def inside(stem: Path) -> Path:
    """The mirrored part of an output's path, normalised so that it never leads out of -o DIR: one
    that climbs (a glob's `*/../../x*.wav`) or is absolute keeps only its last name, at the top."""
    normal = Path(os.path.normpath(stem))
    if not normal.is_absolute() and ".." not in normal.parts:
        return normal
    return Path(normal.name) if normal.name not in ("", "..") else Path("_")


@dataclass
class InputList:
    files: list[InputFile] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (input as given, why nothing came of it)

    def __len__(self) -> int:
        return len(self.files)


def expand_inputs(arguments: list[str], stdin: BinaryIO | None = None) -> InputList:
    """Directories are searched recursively for audio and video files.

    Under -o DIR, a directory's files mirror their tree below it (below its name when several are
    given), a glob's below its fixed folder
    part, a list's (`-`, @list) below the folder they all share; files named on the command line go
    to the top of DIR. A glob that matches nothing and a folder that cannot be read are problems,
    reported, not dropped in silence.
    """
    found = InputList()
    # Several folders given are placed as `cp -r d1 d2 out/` places them (out/d1/x, out/d2/x), so that
    # same-named files in them both get outputs; one folder keeps mirroring its tree at the top.
    folders = {os.path.realpath(a) for a in arguments if a != "-" and not a.startswith("@") and os.path.isdir(a)}
    for argument in arguments:
        if argument == "-":
            _read_stdin(stdin if stdin is not None else getattr(sys.stdin, "buffer", None), found)
        elif argument.startswith("@") and len(argument) > 1:
            found.files += _below_common_folder(_read_list(Path(argument[1:])))
        elif os.path.isdir(argument):  # False on any OSError too (a name over 255 bytes): then it fails as a file
            found.files += _from_folder(Path(argument), found.problems, named=len(folders) > 1)
        elif glob.has_magic(argument) and not os.path.lexists(argument):
            found.files += _from_glob(argument, found.problems)
        else:
            found.files.append(InputFile(Path(argument), _stem(Path(argument))))
    found.files = _named_apart(_once_each(found.files))
    return found


def _stem(path: Path) -> Path:
    """A file named on the command line: its outputs go to the top of -o DIR."""
    try:
        return Path(path.name).with_suffix("")
    except ValueError:  # no usable name ("..", "/"): it fails as an input anyway
        return Path(path.name or "_")


def _from_folder(root: Path, problems: list, named: bool = False) -> list[InputFile]:
    def unreadable(error: OSError) -> None:
        problems.append((path_text(error.filename), f"cannot read the folder ({error.strerror or error})"))

    files = []
    for folder, _, names in os.walk(root, onerror=unreadable):  # symlinked folders are not entered: no loops
        files += [Path(folder) / n for n in names if Path(n).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS]
    top = Path(Path(os.path.abspath(root)).name) if named else Path()  # "/" has no name: its tree at the top
    return [InputFile(p, top / p.relative_to(root).with_suffix("")) for p in sorted(files)]


def _from_glob(pattern: str, problems: list) -> list[InputFile]:
    """pathlib's `**` does not follow symlinked folders, so a symlink loop cannot make it run forever."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:fixed]) if fixed else Path()
    try:
        matches = sorted(p for p in base.glob(str(Path(*parts[fixed:]))) if not p.is_dir())
    except (OSError, ValueError) as exc:
        problems.append((pattern, f"cannot search ({exc})"))
        return []
    if not matches:
        problems.append((pattern, "no file matches"))
    return [InputFile(p, p.relative_to(base).with_suffix("")) for p in matches]


def _below_common_folder(paths: list[Path]) -> list[InputFile]:
    """Listed files mirror their tree below the folder they all share: a/x.wav and b/x.wav stay apart."""
    if not paths:
        return []
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath(parents))
    return [InputFile(p, Path(os.path.abspath(p)).relative_to(common).with_suffix("")) for p in paths]


def _once_each(inputs: list[InputFile]) -> list[InputFile]:
    seen, unique = set(), []
    for item in inputs:
        key = item if item.stdin else os.path.realpath(item.path)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _named_apart(inputs: list[InputFile]) -> list[InputFile]:
    """Inputs whose outputs would share a name (x.wav, x.mp3 and x.wav.wav side by side) keep their
    extension in it, until no names are shared; inputs that share a name even then (x.wav in two
    folders given) are marked with the first one's path and fail, never overwrite each other."""
    stems = [inside(item.stem) for item in inputs]
    whole = [item.stdin is not None for item in inputs]  # already named by the whole file name
    while True:
        holders = defaultdict(list)
        for index, stem in enumerate(stems):
            holders[stem].append(index)
        widen = [i for group in holders.values() if len(group) > 1 for i in group if not whole[i]]
        if not widen:
            break
        for i in widen:
            stems[i], whole[i] = stems[i].with_name(inputs[i].path.name), True
    return _with_stems(inputs, stems)


def _with_stems(inputs: list[InputFile], stems: list[Path]) -> list[InputFile]:
    """Each input with its output stem; an input whose stem an earlier one holds is marked with its name."""
    first: dict[Path, InputFile] = {}
    named = []
    for item, stem in zip(inputs, map(inside, stems)):
        owner = first.setdefault(stem, item)
        named.append(replace(item, stem=stem, clash=None if owner is item else owner.name))
    return named


@dataclass(frozen=True)
class OutputName:
    """--output-name TEMPLATE: the outputs' file name without extension, from the input and the run.

    The run's fields (task, model, language, date) are fixed before any file is processed, because
    --skip-existing and the clash check need every output name first.
    """

    template: str
    task: str
    model: str  # the short name: the checkpoint folder's or hub id's last part
    lang: str  # see cli._output_language
    date: str  # the run's start, YYYY-MM-DD

    FIELDS = ("stem", "name", "lang", "task", "model", "date")

    def check(self) -> None:
        """Unknown fields, format specs and path separators in the template are usage errors."""
        try:
            parts = list(string.Formatter().parse(self.template))
        except ValueError as exc:  # a lone { or }
            raise InputError(f"--output-name {self.template!r}: {exc} (write {{{{ and }}}} for braces)") from None
        for _, field_name, spec, conversion in parts:
            if field_name is not None and field_name in self.FIELDS and (spec or conversion):
                raise InputError(f"--output-name {self.template!r}: write {{{field_name}}} plain, without "
                                 "a conversion or format spec")
            if field_name is not None and field_name not in self.FIELDS:
                raise InputError(f"--output-name {self.template!r}: unknown field {{{field_name}}}; "
                                 f"the fields are {', '.join('{' + f + '}' for f in self.FIELDS)}")

    def name_for(self, item: InputFile) -> str:
        """The file name (no extension) for one input: one name, never a path, never empty."""
        name = STDIN_STEM.name if item.stdin is not None or item.label == "-" else item.path.name
        fields = {"stem": _stem(Path(name)).name, "name": name, "lang": self.lang, "task": self.task,
                  "model": self.model, "date": self.date}
        result = self.template.format(**fields)
        if not result.strip() or result in (".", "..") or any(sep and sep in result for sep in (os.sep, os.altsep, "/")):
            raise InputError(f"--output-name {self.template!r} gives {result!r} for {item.name}: "
                             "an output name must be one non-empty file name, without a path separator")
        return result

    def apply(self, inputs: InputList) -> InputList:
        """Every input named by the template, in the folder -o mirrors; inputs given the same name by it
        are marked (and fail when processed): a template's name is never widened or written over."""
        stems = [item.stem.parent / self.name_for(item) for item in inputs.files]
        return replace(inputs, files=_with_stems(inputs.files, stems))


def _read_stdin(stream: BinaryIO | None, found: InputList) -> None:
    """Audio bytes (`cat a.wav | moss transcribe -`) or a list of paths, one a line or NUL-separated."""
    if stream is None:
        found.problems.append(("-", "there is no standard input to read"))
        return
    head = stream.read(SNIFF_BYTES)
    if looks_like_audio(head):
        found.files.append(InputFile(Path("-"), STDIN_STEM, label="-", stdin=StdinAudio(head, stream)))
    else:
        found.files += _below_common_folder(_split_list(head + stream.read()))


# Container signatures, each with a byte that text never has beside it, so that a list of paths
# starting "RIFF notes.wav" or "ID3 tags.mp3" is never taken for audio: (offset, bytes) pairs.
_SIGNATURES = (
    ((0, b"RIFF"), (8, b"WAVE")), ((0, b"RF64"), (8, b"WAVE")), ((0, b"FORM"), (8, b"AIF")),  # WAV, AIFF
    ((0, b"fLaC\0"),), ((0, b"fLaC\x80"),), ((0, b"OggS\0"),), ((0, b"caff\0\x01"),),  # FLAC, OGG/Opus, CAF
    ((0, b".snd\0\0\0"),), ((0, b"#!AMR"),), ((0, b"\x1a\x45\xdf\xa3"),),  # AU, AMR, Matroska/WebM
    ((0, b"ID3\x02\0"),), ((0, b"ID3\x03\0"),), ((0, b"ID3\x04\0"),),  # MP3 with an ID3v2 tag
    ((0, b"\0\0\0"), (4, b"ftyp")), ((0, bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")),),  # MP4, ASF
)


def looks_like_audio(head: bytes) -> bool:
    """The signature of a container moss decodes at the start of `head`: audio, not a path list."""
    if any(all(head[at : at + len(magic)] == magic for at, magic in signature) for signature in _SIGNATURES):
        return True
    # A bare MPEG audio or ADTS frame: 11 sync bits, then a version that is not the reserved one.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08


def _split_list(data: bytes) -> list[Path]:
    """NUL-separated (find -print0): exact names. Else one path a line, trimmed, # comments skipped.
    Either way any bytes, as the file system keeps them."""
    if b"\0" in data:
        return [Path(os.fsdecode(name)) for name in data.split(b"\0") if name]
    lines = (os.fsdecode(line).strip() for line in data.splitlines())
    return [Path(line) for line in lines if line and not line.startswith("#")]


def _read_list(path: Path) -> list[Path]:
    try:
        with open(path, "rb") as file:  # a pipe is fine too: moss transcribe @<(find ...)
            return _split_list(file.read())
    except OSError as exc:
        raise InputError(f"@{path_text(path)}: cannot read the list ({exc.strerror or exc})") from None
