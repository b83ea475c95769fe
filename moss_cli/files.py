"""Files the CLI reads and writes, safely: regular files only in, locked temporary files out.

Every output goes through a temporary file `.moss-XXXXXXXX.part` in its own folder, held under an
exclusive lock while it is written and then renamed onto its target, so no reader ever sees a
truncated file. A run killed with SIGKILL leaves its temporary file behind unlocked; the next run
writing into that folder removes it, while another live run's temporary files (locked) are left
alone. New files get the permissions the umask allows, like any Unix tool's.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PART_PREFIX, PART_SUFFIX = ".moss-", ".part"
WORKDIR_PREFIX = "moss-run-"  # converted audio of one run, in the system's temporary folder
_PART_HEX = 4  # random bytes in a temporary file's name: .moss-<8 hex digits>.part
_PART_NAME = re.compile(re.escape(PART_PREFIX) + "[0-9a-f]{%d}" % (2 * _PART_HEX) + re.escape(PART_SUFFIX))
_LOCK_NAME = ".lock"
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def not_regular(path: Path) -> str | None:
    """What a path is when it is not a regular file ("a FIFO (named pipe)"), else None.

    Reading a FIFO blocks until someone writes, /dev/zero never ends: only regular files are read.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the open that follows says so
    return kind_of(mode)


def kind_of(mode: int) -> str | None:
    """What an st_mode says a file is when it is not a regular file, else None."""
    return None if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_small_text(path: Path, limit: int) -> str | None:
    """A regular file's UTF-8 text when it holds at most `limit` bytes; None for anything else (missing,
    unreadable, a FIFO, a device, too big, not UTF-8).

    The file is opened without blocking and checked on the open descriptor, so a FIFO put in its place
    between a check and the open cannot hang the read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = file.read(limit + 1)
            return data.decode("utf-8") if len(data) <= limit else None
        except (OSError, UnicodeDecodeError):
            return None


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written under `folder` (made if missing), naming the culprit; or None."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    space = os.statvfs(existing)
    free = space.f_bfree if os.geteuid() == 0 else space.f_bavail  # root may use the reserved blocks
    if space.f_blocks and not free:  # some file systems report no sizes at all: then we cannot tell
        return f"{existing} has no space left"
    return None


@dataclass
class Prepared:
    """A complete temporary file, still locked, waiting to be renamed onto its target."""

    temporary: Path
    target: Path
    fd: int

    def place(self) -> None:
        try:
            os.replace(self.temporary, self.target)
        except BaseException:
            Path(self.temporary).unlink(missing_ok=True)
            raise
        finally:
            self._unlock()

    def discard(self) -> None:
        Path(self.temporary).unlink(missing_ok=True)
        self._unlock()

    def _unlock(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1


def prepare(target: Path, fill: Callable[[TextIO], None]) -> Prepared:
    """Write a temporary file beside `target` with `fill(file)`; nothing is at `target` yet."""
    fd, temporary = _locked_part(target.parent)
    prepared = Prepared(temporary, target, fd)
    try:
        with os.fdopen(os.dup(fd), "w", encoding="utf-8", newline="\n") as file:
            fill(file)
    except BaseException:
        prepared.discard()
        raise
    return prepared


def write_atomically(target: Path, fill: Callable[[TextIO], None]) -> None:
    """Never a truncated file at `target`: a temporary file, renamed when complete."""
    prepare(target, fill).place()


def sweep_parts(folder: Path) -> None:
    """Remove temporary files that killed runs left in `folder`; live runs hold theirs locked."""
    for path in folder.glob(f"{PART_PREFIX}*{PART_SUFFIX}"):
        if not is_part_name(path.name):  # a user's .moss-notes.part is not ours to remove
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _try_lock(fd) and _still_named(path, fd):
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def is_part_name(name: str) -> bool:
    """Exactly the names _locked_part gives (.moss-<8 hex digits>.part), nothing a user may have named alike."""
    return _PART_NAME.fullmatch(name) is not None


@contextmanager
def run_folder() -> Iterator[Path]:
    """A private temporary folder for one run (converted audio, audio read from stdin), locked while
    the run lives. Folders that killed runs left behind are removed first: converted audio is big."""
    _sweep_run_folders()
    while True:
        folder = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        lock = os.open(folder / _LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _still_named(folder / _LOCK_NAME, lock):  # another run starting may have swept it in between
            break
        os.close(lock)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def _sweep_run_folders() -> None:
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            lock = os.open(folder / _LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _try_lock(lock):
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(lock)


def _locked_part(folder: Path) -> tuple[int, Path]:
    while True:
        path = folder / f"{PART_PREFIX}{secrets.token_hex(_PART_HEX)}{PART_SUFFIX}"
        try:  # mode 0o666: the kernel applies the umask, as for any file a tool creates
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        if _try_lock(fd) and _still_named(path, fd):  # a sweeping run may have taken it in between
            return fd, path
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _still_named(path: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), os.fstat(fd))
    except OSError:
        return False
