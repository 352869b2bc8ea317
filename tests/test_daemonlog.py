"""The dockerd log lines expected under gVisor (daemonlog), and the kernel id in a kernel's owner labels."""

from __future__ import annotations

import sys
import types

from jupyter_sandbox import labels as L
from jupyter_sandbox.daemonlog import HARMLESS, harmless, notes

# Lines from a real sandbox's dockerd.log (jupyter-sandbox/docker:bookworm, runsc), and ones worth reading.
EXPECTED = [
    'level=warning msg="failed to load plugin io.containerd.snapshotter.v1.devmapper" error="devmapper not configured"',
    'level=warning msg="could not use snapshotter devmapper in metadata plugin" error="devmapper not configured"',
    'level=warning msg="unable to modify root key limit, number of containers could be limited by this quota"',
    'level=warning msg="Failed to configure golang\'s threads limit: open /proc/sys/kernel/threads-max"',
    'level=warning msg="Your kernel does not support cgroup memory limit"',
    'level=warning msg="Unable to find pids cgroup in mounts"',
    'level=error msg="loading cgroup for 107" error="cgroups: cannot find cgroup mount destination"',
    'level=warning msg="cleaning up after shim disconnected" id=7616f2accc35 namespace=moby',
    'level=warning msg="containerd config version `1` has been deprecated and will be removed in containerd v2.0"',
]
WORTH_READING = [
    'level=info msg="API listen on /var/run/docker.sock"',
    'level=error msg="Handler for POST /v1.41/containers/create returned error: No such image: nginx"',
    'level=fatal msg="failed to start daemon: error initializing graphdriver: no space left on device"',
]


def test_expected_lines_are_explained_and_others_are_not() -> None:
    for line in EXPECTED:
        assert harmless(line), line
    for line in WORTH_READING:
        assert harmless(line) is None, line


def test_the_served_list_is_plain_lowercase_text_the_panel_matches_the_same_way() -> None:
    served = notes()
    assert served == [{"match": entry.match, "why": entry.why} for entry in HARMLESS]
    assert all(entry["match"] == entry["match"].lower() and entry["why"] for entry in served)


def test_a_kernels_owner_labels_carry_its_kernel_id(monkeypatch) -> None:
    connect = types.ModuleType("ipykernel.connect")
    connect.get_connection_file = lambda: "/run/user/0/jupyter/runtime/kernel-0f1e2d3c-aaaa-bbbb.json"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "ipykernel.connect", connect)
    assert L.owner_labels("kernel")[L.OWNER_KERNEL] == "0f1e2d3c-aaaa-bbbb"
    assert L.owner_labels("kernel-kept")[L.OWNER_KERNEL] == "0f1e2d3c-aaaa-bbbb"
    assert L.OWNER_KERNEL not in L.owner_labels("cli")
    monkeypatch.delitem(sys.modules, "ipykernel")
    assert L.OWNER_KERNEL not in L.owner_labels("kernel")  # not in a kernel: nothing to record
