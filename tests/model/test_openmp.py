"""OpenMP's spin set short for the `moss` command on a busy machine, before torch loads, unless the
user chose one."""

import os
import subprocess
import sys

from moss_cli.model.openmp import SPIN_COUNT, machine_is_busy, short_openmp_spin


def test_spin_is_set_on_a_busy_machine_where_nothing_chose_one(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ = {"PATH": "/bin"}
    assert short_openmp_spin(environ, busy=True) is True
    assert environ["GOMP_SPINCOUNT"] == SPIN_COUNT


def test_an_idle_machine_keeps_the_openmp_default(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ: dict = {}
    assert short_openmp_spin(environ, busy=False) is False and environ == {}


def test_the_users_spin_or_wait_policy_is_kept(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    for name, value in (("GOMP_SPINCOUNT", "7"), ("OMP_WAIT_POLICY", "ACTIVE")):
        environ = {name: value}
        assert short_openmp_spin(environ, busy=True) is False
        assert environ == {name: value}


def test_nothing_is_set_once_torch_has_loaded_openmp():
    import torch  # noqa: F401 - loaded: OpenMP has read its settings already

    environ: dict = {}
    assert short_openmp_spin(environ, busy=True) is False and environ == {}


def test_busy_means_other_tasks_runnable_in_most_samples(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 1/230 4242\n")  # only this process runs
    assert machine_is_busy(str(loadavg)) is False
    loadavg.write_text("2.10 1.90 1.50 3/231 4243\n")  # two other tasks runnable
    assert machine_is_busy(str(loadavg)) is True
    assert machine_is_busy(str(tmp_path / "missing")) is False


def test_the_command_sets_it_before_torch_is_imported_when_other_work_runs():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        code = "import os, sys, moss_cli.cli; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
        env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    finally:
        busy.kill()
        busy.wait()
    assert out.split() == [SPIN_COUNT, "False"]
