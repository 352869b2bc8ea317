"""Shared fixtures.  Integration tests run real runsc sandboxes on the host engine:
if the host is not set up they fail (they never skip), since that is what they test."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Iterator

import docker
import pytest
from sandbox_test_support import RUN_ID, leaks, run_resources, unique_name

from jupyter_sandbox import imagecache
from jupyter_sandbox import labels as L
from jupyter_sandbox.images import busybox_image
from jupyter_sandbox.ports import BASE_URL_ENV
from jupyter_sandbox.sync import Sandbox

TINY = "jupyter-sandbox-test/tiny:3"
NO_DOCKERD = "jupyter-sandbox-test/no-dockerd:3"
DOCKERD_EXITS = "jupyter-sandbox-test/dockerd-exits:3"
DOCKERD_SILENT = "jupyter-sandbox-test/dockerd-silent:3"

FAKE_DOCKERD_EXITS = """#!/bin/sh
echo 'level=info msg="fake dockerd starting"'
echo 'level=fatal msg="fake dockerd: refusing to start on purpose"' >&2
exit 1
"""
FAKE_DOCKERD_SILENT = """#!/bin/sh
echo 'level=info msg="fake dockerd: never opening the socket"'
exec sleep 3600
"""

TEST_IMAGES = {
    TINY: {},
    NO_DOCKERD: {},
    DOCKERD_EXITS: {"/bin/dockerd": FAKE_DOCKERD_EXITS},
    DOCKERD_SILENT: {"/bin/dockerd": FAKE_DOCKERD_SILENT},
}


RESTARTS_ENGINE_OPT_IN = "JUPYTER_SANDBOX_TEST_RESTART_ENGINE"


def pytest_configure(config: pytest.Config) -> None:
    """Every sandbox this run makes, in this process or in one it starts, is labelled with its RUN_ID.

    Ctrl-C tests interrupt the main thread as a user's Ctrl-C does (``_thread.interrupt_main``), which
    does nothing where SIGINT is ignored, as it is for a background job of a shell without job control
    (``bash .ci/run &``): those tests then waited forever. Give SIGINT back its KeyboardInterrupt."""
    os.environ[L.RUN_ENV] = RUN_ID
    # The host's saved image copies go to a folder of this run's own (children inherit it): a test
    # that counts host saves then never finds a copy an earlier run left, and the run leaves none.
    os.environ.setdefault(imagecache.DIR_ENV, tempfile.mkdtemp(prefix="jupyter-sandbox-test-images-"))
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this run's saved image copies (see :func:`pytest_configure`)."""
    folder = os.environ.get(imagecache.DIR_ENV, "")
    if os.path.basename(folder).startswith("jupyter-sandbox-test-images-"):
        shutil.rmtree(folder, ignore_errors=True)


REAL_PARTS = {"browser", "lab_url", "panel", "test_images", "docker_sandbox"}
"""Fixtures that start real sandboxes, a real Lab or Chromium: a test using one is an integration test."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``restarts_engine`` stop the host's dockerd, with every container on it: they run
    in CI (``CI=true``, a machine of its own) or when asked with JUPYTER_SANDBOX_TEST_RESTART_ENGINE=1,
    and are deselected (said on the terminal, never skipped quietly) on anyone else's machine.  And a
    test that uses real parts (:data:`REAL_PARTS`) without the ``integration`` marker stops the run."""
    unmarked = [
        item.nodeid for item in items if REAL_PARTS & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use real sandboxes, Lab or Chromium but are not marked integration "
            "(the other Pythons' unit runs would pick them up): " + ", ".join(unmarked)
        )
    if os.environ.get("CI") == "true" or os.environ.get(RESTARTS_ENGINE_OPT_IN) == "1":
        return
    chosen = [item for item in items if item.get_closest_marker("restarts_engine") is None]
    dropped = [item for item in items if item.get_closest_marker("restarts_engine") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"deselected {len(dropped)} test(s) that restart the host's dockerd; set {RESTARTS_ENGINE_OPT_IN}=1 (or CI=true) to run them"
            )


@pytest.fixture(scope="session")
def engine_client() -> docker.DockerClient:
    """The host engine (the suite fails here, loudly, if there is none)."""
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session")
def test_images(engine_client: docker.DockerClient) -> dict[str, str]:
    """Tiny busybox images for the tests, built once and reused across runs."""
    for tag, files in TEST_IMAGES.items():
        try:
            engine_client.images.get(tag)
        except docker.errors.ImageNotFound:
            busybox_image(tag, files)
    return {"tiny": TINY, "no_dockerd": NO_DOCKERD, "dockerd_exits": DOCKERD_EXITS, "dockerd_silent": DOCKERD_SILENT}


@pytest.fixture
def no_leaks(engine_client: docker.DockerClient) -> Iterator[None]:
    """Fails the test if it leaves a sandbox container, volume or network of this test run behind."""
    before = run_resources(engine_client)
    yield
    left = leaks(before, run_resources(engine_client))
    assert not left, "; ".join(left)


@pytest.fixture(scope="module")
def docker_sandbox(test_images: dict[str, str]) -> Iterator[Sandbox]:
    """One Docker-enabled sandbox shared by a module's tests, with the tiny image loaded."""
    # network "none": these tests send no traffic off this machine (a `docker pull` would go to a registry)
    sandbox = Sandbox.create(unique_name("test"), docker=True, network="none", owner="test")
    try:
        assert sandbox.docker.load(test_images["tiny"]).wait() == 0
        yield sandbox
    finally:
        sandbox.terminate()


@pytest.fixture(scope="module")
def shell():
    """A real IPython shell with the extension loaded; the sandboxes it owns are removed at the end."""
    import IPython
    from IPython.testing.globalipapp import start_ipython

    from jupyter_sandbox.notebook import session

    ip = start_ipython() or IPython.get_ipython()  # the one test shell of this process
    ip.run_line_magic("load_ext", "jupyter_sandbox")
    yield ip
    session().shutdown()


@pytest.fixture(autouse=True)
def no_warm_pool_claims(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creates in this process boot a sandbox for real, whatever pool members wait on the engine
    (this run's, a leftover, or another process's: the default ``use_pool=True`` takes any member
    with the same spec), so that no test passes thanks to a warm pool.  Tests of the pool itself are
    marked ``warm_pool`` and claim as the product does.  (Creates in processes a test starts, the CLI
    or a kernel, claim as usual: the tests that matter check those booted, see test_cli_integration.)"""
    if request.node.get_closest_marker("warm_pool") is not None:
        return
    from jupyter_sandbox import pool

    async def claim_nothing(engine: object, spec: object, owner: str) -> None:
        return None  # as pool.claim answers when no member matches

    monkeypatch.setattr(pool, "claim", claim_nothing)


@pytest.fixture(autouse=True)
def no_server_id_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An in-process test server sets JUPYTER_SANDBOX_SERVER_ID and JUPYTER_SANDBOX_BASE_URL; undo them
    after each test so later subprocesses (the CLI, a real Lab, the notebooks' kernels) do not label
    their sandboxes with a server that is gone, nor build URLs under its base URL."""
    monkeypatch.delenv(L.SERVER_ENV, raising=False)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    yield
    # monkeypatch restores only what was there before; a variable the server set during the test stays.
    os.environ.pop(L.SERVER_ENV, None)
    os.environ.pop(BASE_URL_ENV, None)
