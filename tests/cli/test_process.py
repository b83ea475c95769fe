"""The `moss` process's exit (moss_cli/cli/process.py): the app's exit code, exit functions run and
streams flushed, other threads waited for, and no interpreter teardown after that."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_script(body: str) -> subprocess.CompletedProcess:
    script = "import atexit, sys, threading, time\nfrom moss_cli.cli.process import run_and_exit\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_exit_code_exit_functions_and_buffered_output_survive_the_quick_exit():
    done = run_script("""
        class Torn:
            def __del__(self):
                print("torn down", flush=True)
        kept = Torn()
        atexit.register(lambda: print("exit function ran"))
        def app():
            sys.stdout.write("buffered result")  # no newline, no flush: a pipe holds it
            sys.exit(3)
        run_and_exit(app)
    """)
    assert done.returncode == 3
    assert done.stdout == "buffered resultexit function ran\n"  # and no teardown: __del__ never ran


def test_a_returning_app_exits_0_and_a_message_exits_1_on_stderr():
    assert run_script("run_and_exit(lambda: None)").returncode == 0
    done = run_script("run_and_exit(lambda: sys.exit('moss: gone wrong'))")
    assert (done.returncode, done.stderr.strip()) == (1, "moss: gone wrong")


def test_a_thread_still_running_is_waited_for_as_the_normal_exit_does():
    done = run_script("""
        def late():
            time.sleep(0.5)
            print("late work done", flush=True)
        def app():
            threading.Thread(target=late).start()
            sys.exit(0)
        run_and_exit(app)
    """)
    assert (done.returncode, done.stdout) == (0, "late work done\n")
