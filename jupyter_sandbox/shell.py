"""An interactive shell inside a sandbox: the ``docker exec -it`` command every face runs.

The Jupyter server runs it in a terminal of its own (a real TTY in Lab's
xterm.js), ``jupyter sandbox shell NAME`` in the user's terminal, and
``%sandbox shell`` prints it for frontends without Lab.  One command, built here.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from .errors import SandboxError, SandboxNotRunning
from .hostcli import docker_cli

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

LOGIN_SHELL = "command -v bash >/dev/null 2>&1 && exec bash -l || exec sh -l"
"""bash as a login shell where the image has it, else sh (a failed ``exec`` would end sh, so bash is looked up first)."""
TERM = "xterm-256color"
"""What the terminal inside says it is: xterm.js and most terminal emulators speak it, colours included."""


def shell_argv(container_id: str, *, tty: bool = True, docker: str = "docker") -> list[str]:
    """The host command that opens a login shell in a sandbox's container.

    Args:
        container_id: The sandbox's container on the host engine.
        tty: Give it a terminal (``-t``: resize, Ctrl-C, colours); only when the caller's stdin is one.
        docker: The docker CLI to run.
    """
    return [docker, "exec", "-it" if tty else "-i", "-e", f"TERM={TERM}", container_id, "sh", "-c", LOGIN_SHELL]


async def shell_command(sandbox: AsyncSandbox, *, tty: bool = True) -> list[str]:
    """The command for a shell in ``sandbox``, once it can run one: a paused sandbox is resumed first.

    Raises:
        SandboxNotRunning: If its container is stopped (it cannot run a shell).
        SandboxExpired: If its ttl ran out (it is removed).
        SandboxError: If the host has no docker CLI.
    """
    attrs = await sandbox.ensure_running()  # a shell is a use: resumes a paused one, removes an expired one
    if not (attrs.get("State") or {}).get("Running"):
        raise SandboxNotRunning(
            f"Sandbox {sandbox.name!r} is not running, so it cannot open a shell.",
            fix=f"create a new one (`jupyter sandbox rm {sandbox.name}` clears the name)",
        )
    cli = docker_cli()
    if cli is None:
        raise SandboxError(
            "The host has no docker CLI to open a shell in the sandbox with.",
            fix="install Debian's docker-cli or docker.io (scripts/setup-host.sh does)",
        )
    return shell_argv(sandbox.container_id, tty=tty, docker=cli)


def shell_hint(name: str, container_id: str) -> str:
    """Where to get the same shell from any terminal on this host."""
    return f"jupyter sandbox shell {name}    (or: {shlex.join(shell_argv(container_id[:12]))})"
