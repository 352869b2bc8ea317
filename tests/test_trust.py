"""The host's extra CAs and proxy settings reach sandboxes: the pure parts, then a real HTTPS fetch."""

from __future__ import annotations

import io
import re
import tarfile
from urllib.parse import urlsplit

import pytest
from sandbox_test_support import unique_name

from jupyter_sandbox import trust
from jupyter_sandbox.doctor import debian_mirror
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.sync import Sandbox

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_by_default_the_hosts_extra_cas_are_taken():
    found = trust.extra_certificates({})
    on_disk = [p for p in __import__("glob").glob(trust.HOST_CA_DIR + "/**/*.crt", recursive=True)]
    assert len(found) == len(on_disk)


def test_a_bundle_file_replaces_them_and_off_turns_it_off(tmp_path):
    bundle = tmp_path / "corp.pem"
    bundle.write_bytes(PEM)
    assert trust.extra_certificates({trust.CA_BUNDLE_ENV: str(bundle)}) == {"bundle.crt": PEM}
    assert trust.extra_certificates({trust.CA_BUNDLE_ENV: "off"}) == {}


@pytest.mark.parametrize("content", [None, b"not a certificate"])
def test_a_bad_bundle_setting_names_the_variable_and_the_fix(tmp_path, content):
    bundle = tmp_path / "corp.pem"
    if content is not None:
        bundle.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        trust.extra_certificates({trust.CA_BUNDLE_ENV: str(bundle)})
    assert trust.CA_BUNDLE_ENV in str(caught.value) and "'off'" in str(caught.value)


def test_the_archive_puts_the_certificates_under_the_sandbox_ca_dir():
    with tarfile.open(fileobj=io.BytesIO(trust.archive({"a.crt": PEM}))) as tar:
        member = tar.getmember(trust.SANDBOX_CA_DIR.strip("/") + "/a.crt")
        assert tar.extractfile(member).read() == PEM


def test_proxy_settings_are_passed_on_only_when_set():
    assert trust.proxy_environment({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "", "PATH": "/bin"}) == {"HTTPS_PROXY": "http://proxy:3128"}


def body(pem: bytes) -> str:
    """A certificate's base64 body on one line (bundles may differ in headers and line ends)."""
    return "".join(re.sub(rb"-----[^-]+-----", b"", pem).decode().split())


@pytest.mark.integration
def test_https_from_inside_verifies_against_the_hosts_extra_cas(test_images, monkeypatch):
    """One small HTTPS request to the apt mirror, certificate checks on, from a sandbox with egress.
    Without the host's CAs it fails wherever a proxy re-signs TLS (our machines); the bundle is
    checked directly too, so the test means something where no proxy re-signs."""
    extra = trust.extra_certificates({})
    assert extra, "this host trusts no extra CA: nothing to carry"
    url = urlsplit(debian_mirror())
    release_gpg = f"https://{url.netloc}{url.path.rstrip('/')}/dists/bookworm/Release.gpg"
    sandbox = Sandbox.create(unique_name("trust"), network="sandbox", owner="test", use_pool=False)
    try:
        bundle = sandbox.exec(["cat", "/etc/ssl/certs/ca-certificates.crt"]).stdout.read()
        flat = "".join(bundle.split())
        assert all(body(pem) in flat for pem in extra.values())
        fetch = sandbox.exec(["/usr/lib/apt/apt-helper", "download-file", release_gpg, "/tmp/release.gpg"])
        assert fetch.wait() == 0, fetch.stdout.read() + fetch.stderr.read()
        assert "BEGIN PGP SIGNATURE" in sandbox.files.read("/tmp/release.gpg").decode()
    finally:
        sandbox.terminate()

    monkeypatch.setenv(trust.CA_BUNDLE_ENV, "off")
    plain = Sandbox.create(unique_name("trust-off"), image=test_images["tiny"], owner="test", use_pool=False)
    try:
        assert plain.exec(["ls", trust.SANDBOX_CA_DIR]).wait() != 0
    finally:
        plain.terminate()
