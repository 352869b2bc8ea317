"""gVisor's docker-in-gVisor matrix, run inside one real sandbox through the product's API.

Each row is run for real. A row marked as working must pass, and a row marked as not working
must fail the way the table says, so the README's table (between the ``fidelity`` markers,
generated from ROWS by this module) stays true: when a row changes, this test fails. Rewrite
the README's table with ``JUPYTER_SANDBOX_WRITE_FIDELITY=1 pytest tests/test_fidelity_integration.py``.
"""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass
from typing import Callable

import pytest
from sandbox_test_support import unique_name

pytestmark = pytest.mark.integration

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"


@dataclass(frozen=True)
class Row:
    """One capability: what is run, whether it works on this runsc, and why not."""

    what: str
    network: str
    privileged: bool
    works: bool
    why: str
    check: Callable[..., bool]


def ran(process) -> bool:
    """Whether a docker command succeeded; a failure's stderr goes to the test's output."""
    if process.wait() == 0:
        return True
    print(f"{process!r} failed:\n{process.stderr.read()[-2000:]}")
    return False


def run(sb, tiny, network, privileged):
    return ran(sb.docker.run(tiny, "echo", "ok", rm=True, network=network, privileged=privileged))


def build(sb, tiny, network, context):
    (context / "Dockerfile").write_text(f"FROM {tiny}\nRUN echo built > /built\n")
    tag = f"fidelity-build-{network}:1"
    return ran(sb.docker.build(context, tag=tag, network=network)) and ran(sb.docker.run(tag, "cat", "/built", rm=True))


def exec_into(sb, tiny, privileged):
    name = unique_name("exec")
    try:
        return ran(sb.docker.run(tiny, "sleep", "300", detach=True, name=name, privileged=privileged)) and ran(sb.docker.exec(name, "true"))
    finally:
        sb.docker("rm", "-f", name).wait()


def container_to_container(sb, tiny, by_name: bool):
    network, server = unique_name("net"), unique_name("srv")
    try:
        assert ran(sb.docker("network", "create", network))
        assert ran(
            sb.docker.run(
                tiny, "sh", "-c", "mkdir -p /w && echo hi > /w/i && exec busybox httpd -f -p 80 -h /w", detach=True, name=server, network=network
            )
        )
        address = server
        if not by_name:
            inspect = sb.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", server)
            assert ran(inspect)
            address = inspect.stdout.read().strip()
        return ran(sb.docker.run(tiny, "busybox", "wget", "-qO-", f"http://{address}/i", rm=True, network=network, timeout=30))
    except Exception:
        return False
    finally:
        sb.docker("rm", "-f", server).wait()
        sb.docker("network", "rm", network).wait()


def publish(sb, tiny):
    server = unique_name("pub")
    try:
        assert ran(
            sb.docker.run(
                tiny, "sh", "-c", "mkdir -p /w && echo hi > /w/i && exec busybox httpd -f -p 80 -h /w", detach=True, name=server, publish="18080:80"
            )
        )
        return ran(sb.docker.run(tiny, "busybox", "wget", "-qO-", "http://127.0.0.1:18080/i", rm=True, network="host", timeout=30))
    except Exception:
        return False
    finally:
        sb.docker("rm", "-f", server).wait()


def compose(sb, tiny, folder, verbs, privileged=False):
    project = folder / unique_name("fidelity")  # compose makes the project's name (and image names) from it
    project.mkdir()
    (project / "compose.yaml").write_text(
        "services:\n  app:\n    build: .\n    command: sleep 300\n" + ("    privileged: true\n" if privileged else "")
    )
    (project / "Dockerfile").write_text(f"FROM {tiny}\nRUN echo built > /built\n")
    try:
        return all(ran(sb.docker.compose(*verb, project_dir=project)) for verb in verbs)
    finally:
        sb.docker.compose("down", "-t", "1", project_dir=project).wait()


ROWS = [
    Row("`docker run`", "host", False, True, "", lambda sb, t, p: run(sb, t, "host", False)),
    Row("`docker run`", "host", True, True, "", lambda sb, t, p: run(sb, t, "host", True)),
    Row("`docker run`", "default", False, True, "", lambda sb, t, p: run(sb, t, None, False)),
    Row("`docker run`", "default", True, True, "", lambda sb, t, p: run(sb, t, None, True)),
    Row("`docker build`", "host", False, True, "", lambda sb, t, p: build(sb, t, "host", p)),
    Row("`docker build`", "default", False, True, "", lambda sb, t, p: build(sb, t, "default", p)),
    Row("`docker exec`", "default", False, True, "", lambda sb, t, p: exec_into(sb, t, False)),
    Row("`docker exec`", "default", True, True, "", lambda sb, t, p: exec_into(sb, t, True)),
    Row(
        "`docker compose build` + `run`",
        "rewritten",
        False,
        True,
        "",
        lambda sb, t, p: compose(sb, t, p, [("build",), ("run", "--rm", "app", "cat", "/built")]),
    ),
    Row(
        "`docker compose up` + `exec`",
        "rewritten",
        False,
        True,
        "",
        lambda sb, t, p: compose(sb, t, p, [("up", "-d", "--build"), ("exec", "-T", "app", "cat", "/built")]),
    ),
    Row(
        "`docker compose up` + `exec`",
        "rewritten",
        True,
        True,
        "",
        lambda sb, t, p: compose(sb, t, p, [("up", "-d", "--build"), ("exec", "-T", "app", "cat", "/built")], privileged=True),
    ),
    Row("container to container by address", "user bridge", False, True, "", lambda sb, t, p: container_to_container(sb, t, by_name=False)),
    Row(
        "container to container by name",
        "user bridge",
        False,
        False,
        "the inner dockerd runs without iptables (gVisor 20240729's netstack lacks `-m addrtype`), and Docker's "
        "embedded DNS needs it; compose projects are rewritten so service names resolve (to 127.0.0.1)",
        lambda sb, t, p: container_to_container(sb, t, by_name=True),
    ),
    Row(
        "`docker run -p`",
        "default",
        False,
        False,
        "publishing needs iptables too; with `--network=host` a service is reachable on its own port",
        lambda sb, t, p: publish(sb, t),
    ),
]


def table() -> str:
    lines = ["| capability | inner network | privileged | works here | why not |", "|---|---|---|---|---|"]
    for row in ROWS:
        lines.append(f"| {row.what} | {row.network} | {'yes' if row.privileged else 'no'} | {'yes' if row.works else 'no'} | {row.why} |")
    return "\n".join(lines)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.what}-{r.network}-{'priv' if r.privileged else 'plain'}" for r in ROWS])
def test_row(row, docker_sandbox, test_images, tmp_path):
    outcome = row.check(docker_sandbox, test_images["tiny"], tmp_path)
    assert outcome == row.works, (
        f"{row.what} ({row.network}, privileged={row.privileged}) now {'works' if outcome else 'fails'}: update ROWS and the README's table"
    )


def test_the_readme_table_is_the_one_these_rows_make():
    text = README.read_text()
    block = f"{BEGIN}\n{table()}\n{END}"
    if os.environ.get("JUPYTER_SANDBOX_WRITE_FIDELITY") == "1":
        README.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
        text = README.read_text()
    assert block in text, "the README's fidelity table differs from ROWS: rerun with JUPYTER_SANDBOX_WRITE_FIDELITY=1"
