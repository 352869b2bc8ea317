"""The host's extra certificate authorities and proxy settings, carried into every sandbox.

Many companies (and our own machines) reach the internet through a proxy that
re-signs TLS with a certificate authority the host trusts through
``/usr/local/share/ca-certificates/`` (Debian's place for local CAs).  A
sandbox's image knows nothing of it, so every HTTPS request from inside (pip,
``docker pull``, curl) would fail verification.  Before a sandbox starts, the
product copies those CAs into it (:func:`archive`); its init program appends
them to the image's CA bundle before anything else runs, so the sandbox, its
inner dockerd (pulls) and ``update-ca-certificates`` run later all trust them.

``JUPYTER_SANDBOX_CA_BUNDLE`` changes the source: a PEM file (one or more
certificates) to trust instead, or ``off`` to trust only the image's own CAs.

The creating process's ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (either case)
are passed on too (:func:`proxy_environment`), and never stored in labels.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import Mapping

from .errors import SpecError

HOST_CA_DIR = "/usr/local/share/ca-certificates"
"""Where Debian-family hosts keep the CAs an admin added."""
SANDBOX_CA_DIR = "/usr/local/share/ca-certificates/jupyter-sandbox"
"""Where the CAs land inside a sandbox (``update-ca-certificates`` run inside keeps them)."""
CA_BUNDLE_ENV = "JUPYTER_SANDBOX_CA_BUNDLE"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def extra_certificates(environ: Mapping[str, str] = os.environ) -> dict[str, bytes]:
    """The CA certificates to add to a sandbox, by file name (empty when there are none or it is off).

    Raises:
        SpecError: If ``JUPYTER_SANDBOX_CA_BUNDLE`` names a file that is missing or holds no certificate.
    """
    setting = environ.get(CA_BUNDLE_ENV, "").strip()
    if setting.lower() in ("off", "none", "0", "false"):
        return {}
    if setting:
        try:
            with open(setting, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise SpecError(
                CA_BUNDLE_ENV, f"cannot read {setting!r}: {error.strerror}", fix="point it at a PEM file of CA certificates, or set it to 'off'"
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise SpecError(
                CA_BUNDLE_ENV, f"{setting!r} holds no PEM certificate", fix="point it at a PEM file of CA certificates, or set it to 'off'"
            )
        return {"bundle.crt": data}
    found: dict[str, bytes] = {}
    for folder, _, files in os.walk(HOST_CA_DIR):
        for file_name in sorted(files):
            if not file_name.endswith(".crt"):
                continue
            path = os.path.join(folder, file_name)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if b"-----BEGIN CERTIFICATE-----" in data:
                relative = os.path.relpath(path, HOST_CA_DIR).replace(os.sep, "-")
                found[relative] = data
    return found


def archive(certificates: Mapping[str, bytes]) -> bytes:
    """A tar of the certificates under :data:`SANDBOX_CA_DIR`, for the engine's ``put_archive`` at ``/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        parts = SANDBOX_CA_DIR.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
        for file_name, data in certificates.items():
            info = tarfile.TarInfo(f"{SANDBOX_CA_DIR.strip('/')}/{file_name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def proxy_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The creating process's proxy settings, to pass to a sandbox (its own ``env`` wins)."""
    return {name: environ[name] for name in PROXY_VARIABLES if environ.get(name)}
