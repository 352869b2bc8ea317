"""``sandbox.files``: copy files in and out as tar streams through an exec of ``tar`` inside.

The engine's archive API (``docker cp``) cannot be used: runsc keeps the
sandbox's root filesystem changes in its own overlay and ``/tmp`` in its own
tmpfs, so the host sees neither what the sandbox wrote nor reliably shows the
sandbox what the host copied in.  ``tar`` running inside sees exactly what
the sandbox's processes see.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
import warnings
from typing import IO, Iterator

from .errors import SandboxError, SkippedLinksWarning, UnsafeLink
from .filetree import FileTree

SPOOL_BYTES = 64 * 1024 * 1024
CHUNK = 1 << 16
UNPACK = 'mkdir -p "$1" && exec tar -x -f - -C "$1"'


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def tar_stream(local: str, arcname: str | None) -> IO[bytes]:
    """A tar of a local file or folder, spooled to disk past 64 MB.

    Args:
        local: The file or folder.
        arcname: Its name in the archive; ``None`` puts a folder's *contents*
            at the archive's top (a build context).
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if arcname is None:
            for entry in sorted(os.listdir(local)):
                tar.add(os.path.join(local, entry), arcname=entry, filter=_as_root)
        else:
            tar.add(local, arcname=arcname, filter=_as_root)
    spool.seek(0)
    return spool


def iterate_file(stream: IO[bytes]) -> Iterator[bytes]:
    """Read a file object in chunks, closing it at the end."""
    with stream:
        while True:
            piece = stream.read(CHUNK)
            if not piece:
                return
            yield piece


def _check_remote(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise SandboxError(f"Sandbox paths must be absolute, got {path!r}", fix="use e.g. '/root/data.csv'")
    normal = posixpath.normpath(path)
    if normal == "/":
        raise SandboxError("Cannot use the sandbox's root folder itself here.", fix="name a file or folder under it")
    return normal


def link_target(member: tarfile.TarInfo) -> str:
    """Where a link member of an archive points, as a normalised archive path (``..`` may remain)."""
    if member.issym():
        return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
    return posixpath.normpath(member.linkname)  # a hard link names another member


def within(path: str, top: str) -> bool:
    """Whether a normalised archive path is ``top`` or inside it."""
    return path == top or path.startswith(top + "/")


def safe_extract(tar: tarfile.TarFile, destination: str, top: str) -> list[str]:
    """Extract an archive of one tree ``top``, never creating a link that points outside it.

    A link inside the tree that points within it is kept; one that points outside (an
    absolute target, or ``..`` past ``top``) is not created, and its name is returned.
    Everything else goes through tarfile's ``data`` filter (no absolute or ``..`` paths,
    no device files, no set-uid bits).

    Raises:
        UnsafeLink: If ``top`` itself is a link (it can only point outside the tree).
    """
    skipped: list[str] = []

    def keep(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if member.issym() or member.islnk():
            name = posixpath.normpath(member.name)
            if name == top:
                raise UnsafeLink(
                    f"{top!r} is a symbolic link to {member.linkname!r} in the sandbox; downloading it "
                    "would plant a link on this machine pointing at a file of this machine.",
                    fix="download the file or folder it points to (sandbox.exec(['readlink', '-f', PATH]) says which)",
                )
            if posixpath.isabs(member.linkname) or not within(link_target(member), top):
                skipped.append(f"{name} -> {member.linkname}")
                return None
        return tarfile.data_filter(member, path)

    tar.extractall(destination, filter=keep)
    return skipped


class AsyncFiles(FileTree):
    """Files of a sandbox: upload, download, read and write; list, stat, mkdir, rename, remove (:class:`FileTree`)."""

    async def _unpack(self, parent: str, archive: IO[bytes]) -> None:
        process = await self._sandbox.exec(["/bin/sh", "-c", UNPACK, "upload", parent], stdin=iterate_file(archive))
        if await process.wait() != 0:
            raise SandboxError(
                f"Could not write into {parent!r} in sandbox {self._sandbox.name!r}: {process.stderr_text.strip() or 'tar failed'}",
                fix="check that the folder is writable and the image has tar",
            )

    async def upload(self, local: str | os.PathLike[str], remote: str) -> None:
        """Copy a local file or folder to ``remote`` in the sandbox (a folder's contents become ``remote``)."""
        local = os.fspath(local)
        if not os.path.exists(local):
            raise SandboxError(
                f"{local!r} does not exist on this machine.", fix="check the path (relative paths start at the notebook's or shell's folder)"
            )
        remote = _check_remote(remote)
        await self._unpack(posixpath.dirname(remote) or "/", tar_stream(local, posixpath.basename(remote)))

    async def write(self, remote: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write ``data`` to a file in the sandbox (creating its folder)."""
        remote = _check_remote(remote)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            info = _as_root(tarfile.TarInfo(posixpath.basename(remote)))
            info.size, info.mode, info.mtime = len(payload), mode, int(time.time())
            tar.addfile(info, io.BytesIO(payload))
        buffer.seek(0)
        await self._unpack(posixpath.dirname(remote) or "/", buffer)

    async def _archive(self, remote: str) -> IO[bytes]:
        remote = _check_remote(remote)
        process = await self._sandbox.exec(["tar", "-c", "-f", "-", "-C", posixpath.dirname(remote) or "/", posixpath.basename(remote)])
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        errors = bytearray()
        async for chunk in process.output():
            (spool.write(chunk.data) if chunk.stream == "stdout" else errors.extend(chunk.data))
        if process.exit_code != 0:
            spool.close()
            text = errors.decode(errors="replace").strip()
            if "No such file" in text or "Cannot stat" in text:
                raise SandboxError(
                    f"{remote!r} does not exist in sandbox {self._sandbox.name!r}.", fix="list the folder with sandbox.exec(['ls', '-la', FOLDER])"
                )
            raise SandboxError(f"Could not read {remote!r} in sandbox {self._sandbox.name!r}: {text or 'tar failed'}")
        spool.seek(0)
        return spool

    async def read(self, remote: str) -> bytes:
        """The contents of a file in the sandbox."""
        spool = await self._archive(remote)
        with spool, tarfile.open(fileobj=spool, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    return extracted.read() if extracted else b""
                break
        raise SandboxError(f"{remote!r} in sandbox {self._sandbox.name!r} is not a regular file.", fix="use download() for folders")

    async def download(self, remote: str, local: str | os.PathLike[str]) -> list[str]:
        """Copy a file or folder from the sandbox to ``local`` on this machine (never outside it).

        Symbolic links are never followed and never point out of what was downloaded: a link
        inside a folder that points within it is kept; one pointing elsewhere (an absolute
        path, or out through ``..``) is left out, with a :class:`SkippedLinksWarning`.

        Returns:
            The links left out, as ``"name -> target"``.

        Raises:
            UnsafeLink: If ``remote`` itself is a symbolic link (nothing is written).
        """
        local = os.fspath(local)
        spool = await self._archive(remote)
        parent = os.path.dirname(os.path.abspath(local)) or "."
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".jupyter-sandbox-", dir=parent)
        name = posixpath.basename(_check_remote(remote))
        try:
            with spool, tarfile.open(fileobj=spool, mode="r|") as tar:
                skipped = safe_extract(tar, staging, name)
            if skipped:
                warnings.warn(
                    SkippedLinksWarning(
                        f"Left out {len(skipped)} symbolic link(s) of {remote!r} pointing outside it: "
                        + ", ".join(skipped[:10])
                        + (" ..." if len(skipped) > 10 else "")
                    ),
                    stacklevel=2,
                )
            top = os.path.join(staging, name)
            if os.path.isdir(local) and not os.path.isdir(top):
                local = os.path.join(local, os.path.basename(top))
            if os.path.isdir(top) and os.path.isdir(local):
                shutil.copytree(top, local, dirs_exist_ok=True)
            else:
                os.replace(top, local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return skipped
