"""OpenMP's spin set short for the `moss` command, before torch loads, unless the user chose one."""

import os
import subprocess
import sys

from moss_cli.model.openmp import SPIN_COUNT, short_openmp_spin


def test_spin_is_set_where_nothing_chose_one(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ = {"PATH": "/bin"}
    assert short_openmp_spin(environ) is True
    assert environ["GOMP_SPINCOUNT"] == SPIN_COUNT


def test_the_users_spin_or_wait_policy_is_kept(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    for name, value in (("GOMP_SPINCOUNT", "7"), ("OMP_WAIT_POLICY", "ACTIVE")):
        environ = {name: value}
        assert short_openmp_spin(environ) is False
        assert environ == {name: value}


def test_nothing_is_set_once_torch_has_loaded_openmp():
    import torch  # noqa: F401 - loaded: OpenMP has read its settings already

    environ: dict = {}
    assert short_openmp_spin(environ) is False and environ == {}


def test_the_command_sets_it_before_torch_is_imported():
    code = "import os, sys, moss_cli.cli; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == [SPIN_COUNT, "False"]
