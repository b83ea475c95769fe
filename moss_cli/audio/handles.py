"""Inputs opened once, as files: a name is never read twice, nor ever read as an address.

FFmpeg reads a name as a URL: a file called `pipe:0.mp3` is moss's own stdin (a hang), `concat:/a|/b`
or `subfile,,start,0,end,0,,:/a` any other file. And a name opened again for each block can meanwhile
become a FIFO (a hang) or another file. So each input is opened once, checked to be a regular file on
the descriptor itself, and every reader (libsndfile, PyAV) reads that descriptor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..errors import AudioError
from ..files import kind_of

# Nested opens FFmpeg may make from a file's contents (the concat and HLS demuxers, a QuickTime
# reference, ...) go through protocols; this names none that exists, so a file read through a file
# object can lead FFmpeg to no other file, URL or descriptor.
NO_PROTOCOLS = {"protocol_whitelist": "none"}


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading; AudioError unless it is a non-empty regular file we may read.

    Opened without blocking (the open of a FIFO waits for a writer), then checked on the descriptor,
    so what is read is what was checked, whatever the name points to later."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not an audio file") from None
    except PermissionError:
        raise AudioError(f"{path}: permission denied") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot be opened ({exc.strerror})") from None
    kind = kind_of(os.fstat(fd).st_mode)  # a FIFO would block the read, /dev/zero never end
    if kind:
        os.close(fd)
        raise AudioError(f"{path}: is a directory, not an audio file" if kind == "a folder"
                         else f"{path}: is {kind}, not an audio file")
    os.set_blocking(fd, True)
    # Unbuffered: libsndfile reads through a duplicate of the descriptor, which shares its offset, so a
    # buffered handle's idea of where it stands would go stale and PyAV would read from the middle.
    handle = os.fdopen(fd, "rb", buffering=0)
    try:
        if not handle.read(1):
            raise AudioError(f"{path}: empty file")
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def sndfile_open(handle: BinaryIO):
    """A libsndfile reader of the open file (its own descriptor, so it outlives `handle`), or None when
    libsndfile does not read this format."""
    import soundfile as sf

    fd = os.dup(handle.fileno())
    os.lseek(fd, 0, os.SEEK_SET)  # the duplicate shares the offset: libsndfile starts where it stands
    try:
        return sf.SoundFile(fd, closefd=True)
    except (sf.LibsndfileError, RuntimeError):
        return None  # libsndfile closed the descriptor it was given to own


def pyav_open(handle: BinaryIO):
    """A PyAV container reading the open file (never a name: FFmpeg would parse it as a URL)."""
    import av

    handle.seek(0)
    return av.open(handle, options=NO_PROTOCOLS)
