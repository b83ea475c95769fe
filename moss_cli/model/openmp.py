"""OpenMP's idle threads told to sleep soon instead of spinning, when other work shares the machine.

PyTorch's CPU build runs its parallel kernels on GNU OpenMP, whose threads spin for a while (300,000
rounds by default) at the end of each parallel region before they sleep. A decoding step is a few
hundred short regions. When another process holds one of the cores, the spinning thread burns the
time slice its descheduled partner needs, and every region waits for that partner. On the 2-core
machine this project is measured on, beside two busy processes, a 30 s clip (128 tokens) took
8.8-11.6 s with the default spin against 4.1-4.3 s with a spin of 1,000 rounds, and 8 rows of 64
tokens 7.1-8.8 s against 2.8-4.5 s. On an idle machine the short spin costs 3-7% in float32 and up
to a quarter with --quantize int8 on one row (threads asleep are woken for every region), so it is
set only when other work is running as moss starts (docs/performance.md, "A busy machine"). The
variable is read when the OpenMP library loads, with torch, so it is set before torch is imported.
"""

from __future__ import annotations

import os
import sys
import time

SPIN_COUNT = "1000"  # rounds a finished thread spins before it sleeps (GOMP_SPINCOUNT)
USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
SAMPLES, EVERY = 5, 0.005  # looks at the run queue over 20 ms


def short_openmp_spin(environ: dict | None = None, busy: bool | None = None) -> bool:
    """Set GOMP_SPINCOUNT when the machine is busy (`busy`, else `machine_is_busy()`), unless the user
    chose a spin or wait policy or torch (and so OpenMP) is already loaded; whether it was set."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(name in environ for name in USER_SETTINGS):
        return False
    if not (machine_is_busy() if busy is None else busy):
        return False
    environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True


def machine_is_busy(loadavg: str = "/proc/loadavg") -> bool:
    """Whether other tasks are running now: the kernel's count of runnable tasks (the 4th field of
    /proc/loadavg, this process's own thread included) above one in most of a few samples. False
    where the file cannot be read (not Linux: the OpenMP default stays)."""
    others = []
    try:
        for index in range(SAMPLES):
            if index:
                time.sleep(EVERY)
            with open(loadavg, encoding="ascii") as numbers:
                others.append(int(numbers.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return False
    return sorted(others)[len(others) // 2] >= 1
