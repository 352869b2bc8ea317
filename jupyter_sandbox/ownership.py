"""Who owns a sandbox: the owner labels of its creator, or of whoever claimed it from the warm pool.

A sandbox's owner labels (``owner``, ``owner.host``, ``owner.pid``, ``owner.started``,
``server``; see :func:`jupyter_sandbox.labels.owner_labels`) say which process or server it
belongs to: ``rm --orphans`` removes it when that process is gone, a server lists only its
own, and removes its own when it stops.  A warm-pool member is created by the pool's
process, and the engine cannot change a container's labels, so a claim (the rename, under
the pool's host-wide lock) also writes the claimer's owner labels to a claim record,
``<state dir>/claims/<container id>.json`` (the state dir of :mod:`jupyter_sandbox.lifecycle`,
beside the activity markers).  Every reader of ownership takes the labels through
:func:`labels_of`, which lays the record over the container's labels.

A claimed member without a record (the record could not be written, or it was written in
another user's state dir) keeps ``owner=pool`` under a name that is no longer a pool name:
its owner cannot be told, so it is never an orphan.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

from . import labels as L
from .lifecycle import state_dir

log = logging.getLogger(__name__)

OWNERSHIP = (L.OWNER, L.OWNER_HOST, L.OWNER_PID, L.OWNER_STARTED, L.OWNER_KERNEL, L.SERVER)
"""The labels a claim record replaces (a record without ``server`` drops the pool's)."""
FOLDER = "claims"


def _record(container_id: str) -> str:
    return os.path.join(state_dir(), FOLDER, f"{container_id}.json")


def record_claim(container_id: str, owner: str) -> None:
    """Record that this process (as ``owner``: ``kernel``, ``server``, ``cli``...) claimed a pool member.

    Best effort: a state dir that cannot be written leaves the member ownerless (see the module's docstring).
    """
    path = _record(container_id)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(L.owner_labels(owner), f)
        os.replace(path + ".tmp", path)
    except OSError as error:
        log.warning("cannot record the claim of pool member %s: %s", container_id[:12], error)


def labels_of(container_id: str, labels: Mapping[str, str]) -> dict[str, str]:
    """A sandbox's labels as its owner is known: its claim record's owner labels over the container's."""
    try:
        with open(_record(container_id)) as f:
            claim: Any = json.load(f)
    except (OSError, ValueError):
        return dict(labels)
    if not isinstance(claim, dict):
        return dict(labels)
    merged = {key: value for key, value in labels.items() if key not in OWNERSHIP}
    merged.update({key: str(value) for key, value in claim.items() if key in OWNERSHIP})
    return merged


def orphaned(container_name: str, container_id: str, labels: Mapping[str, str]) -> bool:
    """Whether ``rm --orphans`` removes a sandbox: its owning process (creator, or claimer) is gone.

    A claimed member whose claimer cannot be told (no record) is kept.
    """
    labels = labels_of(container_id, labels)
    if labels.get(L.OWNER) == "pool" and not L.in_pool(container_name):
        return False
    return L.owner_alive(labels) is False


def forget(container_id: str) -> None:
    """Remove a sandbox's claim record (it was removed)."""
    try:
        os.unlink(_record(container_id))
    except OSError:
        pass
