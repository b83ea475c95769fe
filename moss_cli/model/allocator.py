"""The C allocator tuned for inference on CPU (glibc): freed tensor memory is kept for reuse.

By default glibc serves each large allocation with fresh pages from the kernel (mmap) and gives
freed memory back (munmap, heap trimming), so each of the many large temporaries of a prefill or
a decoding step is paid again in page faults and zeroing: about 100,000 faults and 0.3 s of
system time per benchmark run, and element-wise operations up to 3x slower than on reused memory
(a random `mid` model's 900-token prefill: 1.7-2.0 s against 1.7 s, and no more than a few hundred
faults, with the settings below). Allocations up to 32 MB (glibc's largest threshold) then come
from the heap, and up to 1 GB of freed heap stays mapped: the process keeps its peak memory
instead of returning it between steps, as allocators made for inference (jemalloc, tcmalloc) do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 2**30

_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above, once per process; False where the C library is not glibc (or
    refuses), which changes nothing but speed."""
    global _tuned
    if _tuned:
        return True
    mallopt = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def release_freed_memory() -> bool:
    """Give the heap's free pages back to the kernel now (glibc's malloc_trim), wherever they are: after
    a load that read and freed the float32 weights it quantized, which the tuning above would keep."""
    trim = _glibc("malloc_trim", [ctypes.c_size_t])
    return trim is not None and bool(trim(0))


def _glibc(name: str, argtypes: list):
    """The C library's function `name` (returning int), or None where there is none (musl, macOS, Windows)."""
    library = _c_library()
    function = getattr(library, name, None) if library is not None else None
    if function is not None:
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


@functools.cache
def _c_library():
    """The C library, found once: find_library runs ldconfig in a subprocess at every call (3 ms each;
    joining a small model's projections let go of 40 weights' pages, 0.12 s of its load)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


MADV_DONTNEED = 4  # from Linux's mman.h
PAGE = 4096


def drop_file_pages(tensor) -> int:
    """Let the kernel drop this process's resident pages of `tensor` where it lies in a file mapping
    (weights read straight from a safetensors file) and nothing will read it again: a copy replaced
    it. The pages stay in the page cache and would come back from the file if read. Anonymous memory
    is left alone (dropped, it would read as zeros). Bytes dropped; 0 where this is not Linux."""
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()  # contiguous: a weight
    first, last = -(-start // PAGE) * PAGE, end // PAGE * PAGE
    madvise = _glibc("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])
    if madvise is None or last <= first or not _in_file_mapping(first, last):
        return 0
    return last - first if madvise(first, last - first, MADV_DONTNEED) == 0 else 0


def _in_file_mapping(start: int, end: int) -> bool:
    """Whether [start, end) lies inside one mapping of a regular file (/proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                low, high = (int(part, 16) for part in fields[0].split("-"))
                if low <= start and end <= high:
                    path = fields[5].strip() if len(fields) > 5 else ""
                    return fields[4] != "0" and path.startswith("/")  # an inode: a file, not [heap] or anonymous
    except OSError:
        pass
    return False


ALIGNMENT = 64  # bytes: the widest vector loads BLAS aligns its sums to


def aligned_like(like, rows: int):
    """An empty (rows, like's columns) tensor of like's dtype starting at the same offset from a 64-byte
    boundary as `like`: BLAS peels unaligned leading elements off its sums, so a weight's products round
    by where it starts (weights mapped from a safetensors file start 8 bytes past a boundary, say)."""
    import torch

    columns = like.shape[1]
    spare = ALIGNMENT // like.element_size()
    buffer = torch.empty(rows * columns + spare, dtype=like.dtype)
    shift = (like.data_ptr() - buffer.data_ptr()) % ALIGNMENT // like.element_size()
    return buffer[shift : shift + rows * columns].view(rows, columns)
