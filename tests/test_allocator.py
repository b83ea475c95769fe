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
    from moss_cli.allocator import keep_freed_memory
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
    root = Path(__file__).resolve().parents[1]
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
