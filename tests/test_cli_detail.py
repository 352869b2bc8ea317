"""``jupyter sandbox rm`` of a sandbox a kernel created: it is removed, saying which kernel (pid) owned it."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.sync import call

pytestmark = pytest.mark.integration


def test_rm_of_a_kernels_sandbox_names_the_kernel_and_removes_it(monkeypatch, no_leaks: None) -> None:
    connect = types.ModuleType("ipykernel.connect")
    connect.get_connection_file = lambda: "/tmp/kernel-5ca1ab1e-0000.json"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))  # as in a kernel
    monkeypatch.setitem(sys.modules, "ipykernel.connect", connect)
    name = unique_name("dt-rmk")
    sandbox = call(AsyncSandbox.create, name=name, owner="kernel", use_pool=False)
    try:
        done = subprocess.run([sys.executable, "-m", "jupyter_sandbox.cli", "rm", name], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"{name} belongs to kernel 5ca1ab1e-0000 (pid {os.getpid()}): removing it anyway" in done.stderr
        assert f"removed {name}" in done.stderr
        assert not container_exists(name)
    finally:
        call(sandbox.terminate)
