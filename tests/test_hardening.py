"""Issue 10 (hardening), the parts that need no sandbox: limits parsing and defaults, labels without
env values, the runtime check by version output, and the spec fuzzed with the new fields."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.runtimes import WRAPPER_PATH, is_gvisor, network_of, runtime_for
from jupyter_sandbox.spec import DEFAULT_ENV, SandboxSpec, default_limit, host_pids_limit, parse_limit, parse_pids


@pytest.mark.parametrize("value, pids", [(512, 512), ("64", 64), (" 100 ", 100), (16, 16), (2048.0, 2048), (None, None)])
def test_pids_values(value, pids):
    assert parse_pids(value) == pids


@pytest.mark.parametrize(
    "value, words",
    [
        (0, "from 16"),
        (-5, "from 16"),
        (15, "from 16"),
        ("many", "whole number"),
        ("²", "whole number"),
        (1.5, "whole number"),
        (True, "whole number"),
        (10**30, "from 16"),
        ([], "whole number"),
    ],
)
def test_bad_pids_are_refused_naming_the_field(value, words):
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("ok", pids=value)
    assert caught.value.field == "pids" and words in caught.value.message and caught.value.fix


def test_docker_needs_enough_pids():
    with pytest.raises(SpecError, match="at least 64") as caught:
        SandboxSpec.parse("ok", docker=True, pids=32)
    assert caught.value.field == "pids"


def test_every_limit_has_a_default_and_unlimited_is_explicit(monkeypatch):
    for variable in DEFAULT_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    spec = SandboxSpec.parse("x")
    assert spec.memory == 4 * 2**30 and spec.pids == 512 and spec.cpu == max(1, (os.cpu_count() or 1) // 2)
    spec = SandboxSpec.parse("x", cpu="unlimited", memory="Unlimited", pids="UNLIMITED")
    assert spec.cpu is None and spec.memory is None and spec.pids is None
    assert SandboxSpec.from_dict({"name": "x", "pids": 100, "memory": "unlimited"}).pids == 100


def test_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("JUPYTER_SANDBOX_DEFAULT_MEMORY", "1Gi")
    monkeypatch.setenv("JUPYTER_SANDBOX_DEFAULT_CPU", "500m")
    monkeypatch.setenv("JUPYTER_SANDBOX_DEFAULT_PIDS", "unlimited")
    spec = SandboxSpec.parse("x")
    assert (spec.memory, spec.cpu, spec.pids) == (2**30, 0.5, None)
    assert SandboxSpec.parse("x", memory="2Gi").memory == 2 * 2**30  # an explicit value wins
    monkeypatch.setenv("JUPYTER_SANDBOX_DEFAULT_MEMORY", "4Gb")
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("x")
    assert caught.value.field == "memory" and "JUPYTER_SANDBOX_DEFAULT_MEMORY" in str(caught.value)
    assert parse_limit("memory", "3Gi") == 3 * 2**30 and default_limit("cpu") == 0.5


def test_the_host_backstop_is_above_what_the_inner_limit_allows():
    # measured: about two host PIDs per inner process, plus about 40 for runsc itself
    for pids in (16, 64, 512, 4096):
        assert host_pids_limit(pids) >= 2 * pids + 100


def test_env_values_never_reach_the_labels():
    spec = SandboxSpec.parse("x", env={"API_TOKEN": "s3cr3t-value", "MODE": "dev"})
    labels = L.sandbox_labels(spec, "test")
    assert "s3cr3t-value" not in json.dumps(labels)
    assert json.loads(labels[L.SPEC])["env"] == ["API_TOKEN", "MODE"]
    rebuilt = L.spec_from_labels(labels, ["PATH=/bin", "API_TOKEN=s3cr3t-value", "MODE=dev"])
    assert rebuilt == spec
    assert L.spec_from_labels(labels).env == {"API_TOKEN": "", "MODE": ""}
    old = {**labels, L.SPEC: json.dumps({**spec.to_dict(), "pids": None})}  # a label written before this change
    assert L.spec_from_labels(old).env == spec.env


def test_the_pids_limit_is_part_of_what_makes_pool_members_interchangeable():
    from jupyter_sandbox.pool import pool_key

    assert pool_key(SandboxSpec.parse("a", pids=100)) != pool_key(SandboxSpec.parse("a", pids=200))
    assert pool_key(SandboxSpec.parse("a", pids=100)) == pool_key(SandboxSpec.parse("b", pids="100"))


def test_the_runtime_check_reads_the_binary_not_its_name(tmp_path):
    assert is_gvisor("/usr/bin/runsc")
    if os.path.exists(WRAPPER_PATH):
        assert is_gvisor(WRAPPER_PATH)  # the netns wrapper execs runsc, which answers
    fake = tmp_path / "runsc"
    fake.write_text('#!/bin/sh\nexec runc "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert not is_gvisor(str(fake))
    registered = {"runsc": {"path": str(fake), "runtimeArgs": ["--network=none"]}}
    assert network_of(registered["runsc"]) is None and runtime_for("none", registered) is None
    registered["real"] = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}
    assert runtime_for("none", registered) == "real"


@given(
    st.dictionaries(
        st.sampled_from(["name", "cpu", "memory", "pids", "env", "docker", "timeout", "network"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=12),
            st.lists(st.text(max_size=4), max_size=3),
            st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
        ),
    )
)
def test_any_body_is_a_spec_or_a_spec_error(body):
    try:
        spec = SandboxSpec.from_dict(body)
    except SpecError as error:
        assert error.field and error.fix
    else:
        assert spec.pids is None or spec.pids >= 16


def test_the_cli_refuses_bad_limits_with_exit_2_naming_the_field_or_variable():
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "jupyter_sandbox.cli", "create", "--pids", "3", "--name", "hd-never"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "pids: must be from 16" in bad.stderr and "Traceback" not in bad.stderr
    env = {**os.environ, "JUPYTER_SANDBOX_DEFAULT_MEMORY": "4Gb"}
    bad = subprocess.run(
        [sys.executable, "-m", "jupyter_sandbox.cli", "create", "--name", "hd-never"], capture_output=True, text=True, timeout=60, env=env
    )
    assert bad.returncode == 2 and "JUPYTER_SANDBOX_DEFAULT_MEMORY" in bad.stderr and "Traceback" not in bad.stderr
