"""Turning command-line inputs (files, directories, globs, `-`, `@list.txt`) into an ordered file list."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .errors import MossError

AUDIO_EXTENSIONS = frozenset(
    "wav wave flac ogg oga opus mp3 m4a m4b aac wma aif aiff aifc caf au snd amr 3gp wv ape mka "
    "mp4 m4v mkv webm mov avi".split()
)


class InputError(MossError):
    """The inputs named on the command line cannot be listed (e.g. an unreadable @list file)."""


@dataclass(frozen=True)
class InputFile:
    path: Path  # as given or found, to open
    stem: Path  # its outputs' path under -o DIR, without extension: a/x for in/a/x.wav

    def output(self, folder: Path, extension: str) -> Path:
        return folder / self.stem.parent / f"{self.stem.name}.{extension}"


def expand_inputs(arguments: list[str], stdin: TextIO | None = None) -> list[InputFile]:
    """Directories are searched recursively for audio and video files; each group keeps its tree."""
    loose: list[Path] = []
    found: list[InputFile] = []
    for argument in arguments:
        if argument == "-":
            loose += _listed((stdin or sys.stdin).read().splitlines())
        elif argument.startswith("@") and len(argument) > 1:
            loose += _listed(_read_list(Path(argument[1:])))
        elif Path(argument).is_dir():
            root = Path(argument)
            found += [InputFile(p, p.relative_to(root).with_suffix("")) for p in _audio_files(root)]
        elif glob.has_magic(argument) and not Path(argument).exists():
            loose += sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
        else:
            loose.append(Path(argument))  # missing files fail later, one line each
    return _unique([*found, *_relative_to_common_parent(loose)])


def _audio_files(root: Path) -> list[Path]:
    files = []
    for folder, _, names in os.walk(root):
        files += [Path(folder) / n for n in names if Path(n).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS]
    return sorted(files)


def _relative_to_common_parent(paths: list[Path]) -> list[InputFile]:
    """Loose files mirror their tree below the folder they all share: a/x.wav and b/x.wav stay apart."""
    if not paths:
        return []
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath(parents))
    return [InputFile(p, Path(os.path.abspath(p)).relative_to(common).with_suffix("")) for p in paths]


def _unique(inputs: list[InputFile]) -> list[InputFile]:
    """Each file once; inputs whose outputs would share a name (x.wav, x.mp3) keep their suffix."""
    seen, unique = set(), []
    for item in inputs:
        key = os.path.realpath(item.path)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    counts: dict[Path, int] = {}
    for item in unique:
        counts[item.stem] = counts.get(item.stem, 0) + 1
    return [item if counts[item.stem] == 1 else InputFile(item.path, item.stem.with_name(item.path.name))
            for item in unique]


def _listed(lines: list[str]) -> list[Path]:
    return [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _read_list(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"@{path}: cannot read the list ({exc.strerror or exc})") from None
