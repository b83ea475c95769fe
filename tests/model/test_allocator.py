"""glibc tuned to keep freed memory (moss_cli/allocator.py): large temporaries stop costing page faults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from moss_cli.model.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # once per process, true again
sizes = [3_000_000, 5_000_000, 1_200_000, 7_000_000]  # float32 temporaries of 5-28 MB, as a prefill makes

def layer():  # several alive at once, then all freed
    alive = [np.ones(size, np.float32) for size in sizes]
    del alive

layer()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    layer()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name
        return False


@pytest.mark.skipif(not glibc(), reason="mallopt is glibc's")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default, tuned = faults("default"), faults("tuned")
    assert default > 20_000  # by default most of the 65 MB freed each time goes back to the kernel
    assert tuned < default / 20


RELEASE = """
import numpy as np
from moss_cli.model.allocator import keep_freed_memory, release_freed_memory
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
assert keep_freed_memory()
base = resident()
blocks = [np.ones(2_500_000, dtype=np.float32) for _ in range(30)]  # 10 MB each: heap, not mmap
del blocks[:-1]  # the last one pins the heap's top, as the int8 layers made after them do
kept = resident() - base
assert release_freed_memory()
print(kept, resident() - base)
"""


@pytest.mark.skipif(not glibc(), reason="malloc_trim is glibc's")
def test_freed_heap_is_given_back_on_request():
    # The tuning keeps freed memory mapped (up to 1 GB); after a quantizing load the float32 layers it
    # freed must go back to the kernel, holes in the middle of the heap included.
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    kept, after = map(int, out.stdout.split())
    assert kept > 250 and after < 60, (kept, after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps and madvise: Linux")
def test_pages_of_a_weight_read_from_its_file_are_let_go_and_read_back_the_same(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from moss_cli.model.allocator import drop_file_pages

    def resident_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    weight = torch.randn(4096, 1024)  # 16 MB
    save_file({"w": weight}, tmp_path / "weights.safetensors")
    with safe_open(tmp_path / "weights.safetensors", framework="pt") as handle:
        mapped = handle.get_tensor("w")
    assert torch.equal(mapped, weight)  # every page read: resident
    before = resident_mb()
    dropped = drop_file_pages(mapped)
    assert dropped > 15 * 2**20 and resident_mb() < before - 14
    assert torch.equal(mapped, weight)  # read again from the file
    anonymous = weight.clone()
    assert drop_file_pages(anonymous) == 0 and torch.equal(anonymous, weight)  # never dropped: it would read zeros
