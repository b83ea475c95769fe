"""OpenMP's idle threads told to sleep soon instead of spinning, for a machine shared with other work.

PyTorch's CPU build runs its parallel kernels on GNU OpenMP, whose threads spin for a while (300,000
rounds by default) at the end of each parallel region before they sleep. A decoding step is a few
hundred short regions. When another process holds one of the cores, the spinning thread burns the
time slice its descheduled partner needs, and every region waits for that partner: on the 2-core
machine this project is measured on, with two other busy processes, 8 rows of 64 tokens took 13-20 s
with 2 threads against 3.7-4.1 s with 1 (docs/performance.md, "A busy machine"). A short spin gives
the core back at once: 3.7-3.8 s with 2 threads under the same load. The variable is read when the
OpenMP library loads, with torch, so it must be set before torch is first imported.
"""

from __future__ import annotations

import os
import sys

SPIN_COUNT = "1000"  # rounds a finished thread spins before it sleeps (GOMP_SPINCOUNT)
USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def short_openmp_spin(environ: dict | None = None) -> bool:
    """Set GOMP_SPINCOUNT unless the user chose a spin or wait policy, or torch (and so OpenMP) is
    already loaded; whether it was set."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(name in environ for name in USER_SETTINGS):
        return False
    environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
