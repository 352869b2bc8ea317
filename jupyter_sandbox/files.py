"""``sandbox.files``: copy files in and out through the engine's archive API (tar streams)."""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from typing import IO, TYPE_CHECKING, Any

import docker.errors

from .errors import SandboxError

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

SPOOL_BYTES = 64 * 1024 * 1024


def tar_stream(local: str, arcname: str) -> IO[bytes]:
    """A tar of a local file or folder under ``arcname``, spooled to disk past 64 MB."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    with tarfile.open(fileobj=spool, mode="w") as tar:
        tar.add(local, arcname=arcname)
    spool.seek(0)
    return spool


def _check_remote(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise SandboxError(f"Sandbox paths must be absolute, got {path!r}", fix="use e.g. '/root/data.csv'")
    normal = posixpath.normpath(path)
    if normal == "/":
        raise SandboxError("Cannot use the sandbox's root folder itself here.", fix="name a file or folder under it")
    return normal


class AsyncFiles:
    """Files of a sandbox: upload, download, read and write."""

    def __init__(self, sandbox: "AsyncSandbox"):
        self._sandbox = sandbox

    @property
    def _api(self) -> Any:
        return self._sandbox.engine.client.api

    async def _put(self, parent: str, archive: IO[bytes] | bytes) -> None:
        sandbox = self._sandbox

        def put() -> None:
            try:
                self._api.put_archive(sandbox.container_id, parent, archive)
            except docker.errors.NotFound as error:
                if "No such container" in str(error):
                    raise
                raise FileNotFoundError(parent) from None

        try:
            await sandbox.engine.call(put)
        except SandboxError as error:
            raise await sandbox._explain_exec_failure(error) from None
        except FileNotFoundError:
            process = await sandbox.run(["mkdir", "-p", parent])
            if process.exit_code != 0:
                raise SandboxError(f"Cannot create folder {parent!r} in sandbox {sandbox.name!r}: {process.stderr_text.strip()}") from None
            if hasattr(archive, "seek"):
                archive.seek(0)
            await sandbox.engine.call(put)

    async def upload(self, local: str | os.PathLike[str], remote: str) -> None:
        """Copy a local file or folder to ``remote`` in the sandbox (a folder's contents become ``remote``)."""
        local = os.fspath(local)
        if not os.path.exists(local):
            raise SandboxError(f"{local!r} does not exist on this machine.", fix="check the path (relative paths start at the notebook's folder)")
        remote = _check_remote(remote)
        archive = tar_stream(local, posixpath.basename(remote))
        try:
            await self._put(posixpath.dirname(remote) or "/", archive)
        finally:
            archive.close()

    async def write(self, remote: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write ``data`` to a file in the sandbox (creating its folder)."""
        remote = _check_remote(remote)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(remote))
            info.size, info.mode, info.mtime = len(payload), mode, int(time.time())
            tar.addfile(info, io.BytesIO(payload))
        await self._put(posixpath.dirname(remote) or "/", buffer.getvalue())

    async def _archive(self, remote: str) -> tempfile.SpooledTemporaryFile:
        sandbox = self._sandbox
        remote = _check_remote(remote)

        def get() -> tempfile.SpooledTemporaryFile:
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
            try:
                stream, _ = self._api.get_archive(sandbox.container_id, remote)
            except docker.errors.NotFound as error:
                if "No such container" in str(error):
                    raise
                raise SandboxError(f"{remote!r} does not exist in sandbox {sandbox.name!r}.",
                                   fix="list the folder with sandbox.exec(['ls', '-la', FOLDER])") from None
            for piece in stream:
                spool.write(piece)
            spool.seek(0)
            return spool

        try:
            return await sandbox.engine.call(get)
        except SandboxError as error:
            if error.__cause__ is None:
                raise
            raise await sandbox._explain_exec_failure(error) from None

    async def read(self, remote: str) -> bytes:
        """The contents of a file in the sandbox."""
        spool = await self._archive(remote)
        with spool, tarfile.open(fileobj=spool, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    return extracted.read() if extracted else b""
                break
        raise SandboxError(f"{remote!r} in sandbox {self._sandbox.name!r} is not a regular file.",
                           fix="use download() for folders")

    async def download(self, remote: str, local: str | os.PathLike[str]) -> None:
        """Copy a file or folder from the sandbox to ``local`` on this machine."""
        local = os.fspath(local)
        spool = await self._archive(remote)
        with spool:
            staging = tempfile.mkdtemp(prefix=".jupyter-sandbox-", dir=os.path.dirname(os.path.abspath(local)) or ".")
            try:
                with tarfile.open(fileobj=spool, mode="r|") as tar:
                    tar.extractall(staging, filter="data")
                top = os.path.join(staging, posixpath.basename(_check_remote(remote)))
                if os.path.isdir(local) and not os.path.isdir(top):
                    local = os.path.join(local, os.path.basename(top))
                if os.path.isdir(top) and os.path.isdir(local):
                    shutil.copytree(top, local, dirs_exist_ok=True)
                else:
                    os.replace(top, local)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
