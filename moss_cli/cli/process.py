"""The `moss` process: runs the app, then leaves without tearing the interpreter down.

Python's own exit tears down every module and collects every object before the process ends; with
torch loaded that took 0.3-0.45 s on this project's 2-core machine (`python -c "import torch"`: 1.39 s
to the end, 1.05 s with the exit functions run and `os._exit`), a tenth of a short request's whole
process. The operating system frees the memory at once either way. So once the app has returned,
everything a normal exit does that anyone can see still happens, in the same order: other threads
are waited for (here: the normal exit is taken when a non-daemon thread is still running), the exit
functions run (atexit: logging, temporary folders, stoppable background work), the streams are
flushed; then the process ends with the app's exit code.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def run_and_exit(app) -> None:
    """app() as the console script runs it, ended by `exit_quickly` with its exit code."""
    try:
        app()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    exit_quickly(code)


def exit_quickly(code) -> None:
    """sys.exit(code), without the interpreter's teardown where nothing can still need it."""
    code = 0 if code is None else code
    if not isinstance(code, int) or _other_threads_running():
        raise SystemExit(code)  # a message to print, or threads the normal exit waits for
    atexit._run_exitfuncs()  # what the normal exit runs: handlers registered by moss and its libraries
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away: the normal exit reports it as it does
            raise SystemExit(code) from None
    os._exit(code)


def _other_threads_running() -> bool:
    current = threading.current_thread()
    return any(thread is not current and not thread.daemon and thread.is_alive() for thread in threading.enumerate())
