"""Browsing a sandbox's file tree: list, stat, stream, append, mkdir, rename, remove.

Every operation is one small POSIX shell program run *inside* the sandbox
(``exec``), so it sees what the sandbox's processes see and never touches a
file of the host: a symbolic link can only lead to another file of the
sandbox.  As :meth:`AsyncFiles.read` and :meth:`AsyncFiles.download` do, a
path that is itself a symbolic link is never read or written through
(:class:`UnsafeLink`, naming its target); links are listed, renamed and
removed as links.  The programs answer with exit codes the errors below
are made from, so every failure is a typed error with a fix.
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import TYPE_CHECKING, Any, AsyncIterator

from .errors import PathExists, PathNotFound, SandboxError, UnsafeLink, WrongPathType

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

MISSING, EXISTS, LINK, NOT_FILE, NOT_FOLDER = 3, 4, 5, 6, 7
STAT = "stat -c '%f/%s/%Y/%n'"
LIST = f"""[ -e "$1" ] || [ -L "$1" ] || exit {MISSING}
{STAT} -- "$1" || exit 1
if [ -d "$1" ] && [ ! -L "$1" ]; then cd -- "$1" || exit 1; {STAT} -- * .[!.]* ..?* 2>/dev/null; fi
exit 0"""
CHECK_FILE = f"""[ -e "$1" ] || [ -L "$1" ] || exit {MISSING}
if [ -L "$1" ]; then readlink -- "$1"; exit {LINK}; fi
[ -f "$1" ] || exit {NOT_FILE}"""
CAT = CHECK_FILE + '\nexec cat -- "$1"'
APPEND = CHECK_FILE + '\nexec cat >> "$1"'
WRITABLE = f"""if [ -L "$1" ]; then readlink -- "$1"; exit {LINK}; fi
[ -d "$1" ] && exit {NOT_FILE}
[ -d "$(dirname -- "$1")" ] || exit {NOT_FOLDER}
[ -f "$1" ] && exec stat -c %a -- "$1"
exit 0"""
MKDIR = f"""{{ [ -e "$1" ] || [ -L "$1" ]; }} && exit {EXISTS}
[ -d "$(dirname -- "$1")" ] || exit {NOT_FOLDER}
exec mkdir -- "$1\""""
REMOVE = f"""[ -e "$1" ] || [ -L "$1" ] || exit {MISSING}
exec rm -rf -- "$1\""""
RENAME = f"""[ -e "$1" ] || [ -L "$1" ] || exit {MISSING}
{{ [ -e "$2" ] || [ -L "$2" ]; }} && exit {EXISTS}
[ -d "$(dirname -- "$2")" ] || exit {NOT_FOLDER}
exec mv -- "$1" "$2\""""

KINDS = {0o040000: "directory", 0o100000: "file", 0o120000: "link"}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file, folder or link in a sandbox (as ``lstat`` sees it: a link is never followed).

    Attributes:
        path: Absolute path inside the sandbox.
        kind: ``file``, ``directory``, ``link`` or ``other`` (devices, sockets, fifos).
        size: Bytes (a link's own size: the length of its target).
        modified: Last modification, Unix time.
        mode: Permission bits.
    """

    path: str
    kind: str
    size: int
    modified: float
    mode: int

    @property
    def name(self) -> str:
        """The last part of the path (``/`` for the root)."""
        return posixpath.basename(self.path) or "/"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"name": self.name, "path": self.path, "kind": self.kind, "size": self.size, "modified": self.modified, "mode": self.mode}


def normal_path(path: Any, *, root: bool = True) -> str:
    """An absolute, normalised sandbox path (``..`` cannot climb past ``/``, which is the sandbox's own root).

    Args:
        root: Whether ``/`` itself may be named.

    Raises:
        SandboxError: For a relative path, or ``/`` where it may not be named.
    """
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise WrongPathType(f"Sandbox paths must be absolute, got {path!r}", fix="use e.g. '/root/data.csv'")
    normal = posixpath.normpath(path)
    normal = "/" + normal.lstrip("/")  # normpath keeps a leading '//'
    if normal == "/" and not root:
        raise WrongPathType("Cannot use the sandbox's root folder itself here.", fix="name a file or folder under it")
    return normal


def parse_line(line: str, folder: str | None) -> Entry | None:
    """One line of :data:`STAT` output (``None`` for one that does not parse, such as a name with a newline)."""
    parts = line.split("/", 3)
    if len(parts) != 4 or not parts[3]:
        return None
    try:
        raw, size, modified = int(parts[0], 16), int(parts[1]), float(parts[2])
    except ValueError:
        return None
    path = parts[3] if folder is None else posixpath.join(folder, parts[3])
    return Entry(path, KINDS.get(raw & 0o170000, "other"), size, modified, raw & 0o7777)


class FileTree:
    """The operations, for one sandbox (``sandbox.files`` delegates to it)."""

    def __init__(self, sandbox: "AsyncSandbox"):
        self._sandbox = sandbox

    async def _run(self, script: str, *paths: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        process = await self._sandbox.exec(["/bin/sh", "-c", script, "files", *paths], stdin=stdin)
        code = await process.wait()
        return code, process.stdout_text, process.stderr_text

    def _error(self, code: int, path: str, out: str, err: str, action: str, other: str = "") -> SandboxError:
        name = self._sandbox.name
        if code == MISSING:
            return PathNotFound(f"{path!r} does not exist in sandbox {name!r}.", fix="refresh the listing; it may have been moved or removed")
        if code == EXISTS:
            return PathExists(f"{other or path!r} already exists in sandbox {name!r}.", fix="choose another name, or remove that one first")
        if code == LINK:
            target = out.strip()
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            return UnsafeLink(
                f"{path!r} in sandbox {name!r} is a symbolic link to {target!r}; links are never read or written through.",
                fix=f"use the file it points to, {resolved!r} in the sandbox",
            )
        if code == NOT_FILE:
            return WrongPathType(
                f"{path!r} in sandbox {name!r} is not a regular file.", fix="open a file; folders are listed, devices and sockets cannot be read"
            )
        if code == NOT_FOLDER:
            return PathNotFound(f"The folder of {other or path!r} does not exist in sandbox {name!r}.", fix="create the folder first")
        return SandboxError(
            f"Could not {action} {path!r} in sandbox {name!r}: {err.strip() or f'exit code {code}'}",
            fix="check the path and that the folder is writable",
        )

    async def stat(self, path: str) -> Entry:
        """What is at ``path`` (not following a link)."""
        entry, _ = await self.list(path)
        return entry

    async def list(self, path: str) -> tuple[Entry, list[Entry]]:
        """The entry at ``path`` and, for a folder (not a link to one), its entries sorted by name."""
        path = normal_path(path)
        code, out, err = await self._run(LIST, path)
        lines = out.splitlines()
        if code != 0 or not lines:
            raise self._error(code, path, out, err, "list")
        top = parse_line(lines[0], None)
        if top is None:
            raise SandboxError(f"Could not read {path!r} in sandbox {self._sandbox.name!r}: {lines[0][:200]!r}")
        top = dataclasses.replace(top, path=path)
        entries = [e for e in (parse_line(line, path) for line in lines[1:]) if e is not None]
        return top, sorted(entries, key=lambda e: e.name)

    async def stream(self, path: str) -> AsyncIterator[bytes]:
        """The bytes of a regular file as they are read (a link, folder or missing path raises first)."""
        path = normal_path(path, root=False)
        code, out, err = await self._run(CHECK_FILE, path)
        if code != 0:
            raise self._error(code, path, out, err, "read")
        process = await self._sandbox.exec(["/bin/sh", "-c", CAT, "files", path])
        errors = bytearray()
        async for chunk in process.output():
            if chunk.stream == "stdout":
                yield chunk.data
            else:
                errors.extend(chunk.data)
        if process.exit_code != 0:
            raise self._error(process.exit_code or 1, path, "", errors.decode(errors="replace"), "read")

    async def check_writable(self, path: str) -> int | None:
        """Refuse a write to a link, a folder, or into a missing folder.

        Returns:
            The permission bits of the regular file already there (a rewrite keeps them), or None.
        """
        path = normal_path(path, root=False)
        code, out, err = await self._run(WRITABLE, path)
        if code != 0:
            raise self._error(code, path, out, err, "write")
        return int(out.strip(), 8) if out.strip() else None

    async def append(self, path: str, data: bytes) -> None:
        """Add ``data`` at the end of an existing regular file (the later chunks of an upload)."""
        path = normal_path(path, root=False)
        code, out, err = await self._run(APPEND, path, stdin=data)
        if code != 0:
            raise self._error(code, path, out, err, "write")

    async def mkdir(self, path: str) -> None:
        """Create one folder (its parent must exist; an existing name raises :class:`PathExists`)."""
        path = normal_path(path, root=False)
        code, out, err = await self._run(MKDIR, path)
        if code != 0:
            raise self._error(code, path, out, err, "create")

    async def remove(self, path: str) -> None:
        """Remove a file, a link (not what it points to) or a folder with everything in it."""
        path = normal_path(path, root=False)
        code, out, err = await self._run(REMOVE, path)
        if code != 0:
            raise self._error(code, path, out, err, "remove")

    async def rename(self, path: str, new_path: str) -> None:
        """Move ``path`` to ``new_path`` (never over an existing one)."""
        path, new_path = normal_path(path, root=False), normal_path(new_path, root=False)
        code, out, err = await self._run(RENAME, path, new_path)
        if code != 0:
            raise self._error(code, path, out, err, "rename", other=new_path)
