"""Ownership of a claimed pool member (the claim record laid over the labels), without a sandbox."""

from __future__ import annotations

import os

from jupyter_sandbox import labels as L
from jupyter_sandbox import lifecycle, ownership

POOL_LABELS = {
    L.MANAGED: "1",
    L.OWNER: "pool",
    L.OWNER_HOST: "elsewhere",
    L.OWNER_PID: "1",
    L.OWNER_STARTED: "1",
    L.SERVER: "pool-server",
    L.NAME: "abcd1234",
}


def test_a_claim_record_replaces_the_pools_owner_labels(tmp_path, monkeypatch):
    monkeypatch.setenv(lifecycle.STATE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(L.SERVER_ENV, raising=False)
    assert ownership.labels_of("c1", POOL_LABELS) == POOL_LABELS  # no record: the labels as they are
    ownership.record_claim("c1", "kernel")
    owned = ownership.labels_of("c1", POOL_LABELS)
    assert owned[L.OWNER] == "kernel" and owned[L.OWNER_PID] == str(os.getpid()) and owned[L.NAME] == "abcd1234"
    assert L.SERVER not in owned, "a claimer outside any server takes the sandbox out of the pool's server"
    assert not ownership.orphaned(L.container_name("mine"), "c1", POOL_LABELS)  # this process lives
    ownership.forget("c1")
    assert ownership.labels_of("c1", POOL_LABELS) == POOL_LABELS


def test_orphans_among_pool_members_and_claimed_ones(tmp_path, monkeypatch):
    monkeypatch.setenv(lifecycle.STATE_DIR_ENV, str(tmp_path))
    import socket

    dead = {**POOL_LABELS, L.OWNER_HOST: socket.gethostname(), L.OWNER_PID: "999999999"}
    assert ownership.orphaned(L.POOL_CONTAINER_PREFIX + "abcd1234", "c2", dead), "an unclaimed member of a dead pool"
    assert not ownership.orphaned(L.container_name("x"), "c2", dead), "claimed, no record: its owner cannot be told"
    with open(_make(tmp_path, "c2"), "w") as record:
        record.write(
            '{"io.jupyter.sandbox.owner": "kernel", "io.jupyter.sandbox.owner.host": "%s", '
            '"io.jupyter.sandbox.owner.pid": "999999999"}' % socket.gethostname()
        )
    assert ownership.orphaned(L.container_name("x"), "c2", dead), "claimed by a process that is gone"
    lifecycle.prune(present={"other"}, grace=-1)
    assert not os.path.exists(os.path.join(tmp_path, "claims", "c2.json")), "records of vanished containers are pruned"


def _make(root, container_id: str) -> str:
    os.makedirs(os.path.join(root, "claims"), exist_ok=True)
    return os.path.join(root, "claims", f"{container_id}.json")
