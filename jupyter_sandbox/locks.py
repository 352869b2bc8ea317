"""A host-wide lock: an exclusive ``flock`` on a file, shared by every process of the host.

Standard library only: ``setup-host.sh`` runs modules that take it before the package is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator


@contextlib.contextmanager
def host_lock(path: str) -> Iterator[None]:
    """Hold the lock of ``path`` (created if missing, with its folder) for the ``with`` block."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
