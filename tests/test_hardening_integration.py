"""Issue 10 (hardening) on real runsc sandboxes: process limits, default limits, safe downloads,
secrets out of labels, host network with Docker, and isolation checked by what boots."""

from __future__ import annotations

import json
import os
import subprocess
import warnings

import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import Sandbox
from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.spec import host_pids_limit

pytestmark = pytest.mark.integration

FORK_BOMB = "n=0; while [ $n -lt 3000 ]; do sleep 600 & n=$((n+1)); echo $n > /tmp/spawned; done"
"""Spawns sleeps until a fork fails (the shell then exits) or 3,000 run; the count is left in /tmp/spawned."""


def host_pids(container_id: str) -> int:
    """Host PIDs (tasks) a sandbox's container holds, from its pids cgroup."""
    with open(f"/sys/fs/cgroup/pids/docker/{container_id}/pids.current") as f:
        return int(f.read())


def create(tag: str, **fields) -> Sandbox:
    """A fresh sandbox never taken from a warm pool (a unique env makes its pool key unique)."""
    name = unique_name(f"hd-{tag}")
    env = {**fields.pop("env", {}), "HD_TEST": name}
    return Sandbox.create(name, env=env, owner="test", **fields)


def test_a_fork_bomb_hits_the_sandbox_pids_limit_and_the_host_keeps_working(engine_client, no_leaks):
    with create("forkbomb", pids=64) as sandbox:
        cid = sandbox.core.container_id
        host = engine_client.api.inspect_container(cid)["HostConfig"]
        assert host["PidsLimit"] == host_pids_limit(64)
        assert {"Name": "nproc", "Soft": 64, "Hard": 64} in host["Ulimits"]
        before = host_pids(cid)
        bomb = sandbox.exec(["sh", "-c", FORK_BOMB], timeout=120)
        code = bomb.wait()
        err = bomb.stderr.read()
        held = host_pids(cid)
        assert subprocess.run(["true"]).returncode == 0  # the host still starts processes
        spawned = int(sandbox.run(["cat", "/tmp/spawned"]).stdout.read())
        print(
            f"fork bomb: {spawned} sleeps, then {err.strip()!r}; host PIDs of the sandbox {before} before, "
            f"{held} after (backstop {host_pids_limit(64)})"
        )
        assert code != 0 and "Cannot fork" in err  # the fork's own error: EAGAIN inside the sandbox
        assert "limit of 64 processes" in bomb.hint and "pids=" in bomb.hint  # and the product says why
        assert 16 < spawned < 64  # stopped by the sandbox's own limit, not by the loop's end
        assert held <= host_pids_limit(64)
        assert sandbox.run(["pkill", "-f", "sleep 600"]).exit_code == 0
        again = sandbox.run(["sh", "-c", "echo alive; sleep 0.1 & wait"])  # the sandbox survived and forks again
        assert again.exit_code == 0 and again.stdout.read() == "alive\n"
        print(f"host PIDs still held after the sleeps exited: {host_pids(cid)}")


def test_switching_users_does_not_get_around_the_pids_limit(engine_client, no_leaks):
    """RLIMIT_NPROC counts per user; the limit in gVisor's pids cgroup counts every process of the sandbox."""
    root_spawn = "for i in $(seq 30); do sleep 600 >/dev/null 2>&1 & done; echo spawned"
    user_spawn = "n=0; while [ $n -lt 60 ]; do sleep 600 >/dev/null 2>&1 & n=$((n+1)); echo $n > /tmp/by-user; done"
    with create("uids", pids=64) as sandbox:
        assert sandbox.run(["sh", "-c", root_spawn]).stdout.read() == "spawned\n"
        other = sandbox.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c", user_spawn], timeout=60)
        by_user = int(sandbox.run(["cat", "/tmp/by-user"]).stdout.read())
        print(f"30 sleeps as root, then {by_user} as uid 1000 with pids=64 ({other.stderr.read().strip()!r})")
        # not 30 + 60: the limit is the sandbox's, not per user (gVisor's count lets a few more through: up to 17 seen)
        assert other.exit_code != 0 and by_user < 60 and 30 + by_user <= 64 + 24
        assert sandbox.run(["pkill", "-f", "sleep 600"]).exit_code == 0
        assert sandbox.status().state == "ready"
        assert host_pids(sandbox.core.container_id) <= host_pids_limit(64)


def test_every_sandbox_gets_default_limits_and_unlimited_is_explicit(engine_client, test_images, no_leaks):
    from jupyter_sandbox.spec import DEFAULT_ENV, default_limit

    assert not any(os.environ.get(variable) for variable in DEFAULT_ENV.values())
    with create("defaults", docker=True) as sandbox:
        host = engine_client.api.inspect_container(sandbox.core.container_id)["HostConfig"]
        assert host["Memory"] == 4 * 2**30 == default_limit("memory") and host["NanoCpus"] == int(default_limit("cpu") * 1e9)
        assert host["PidsLimit"] == host_pids_limit(512)
        meminfo = sandbox.run(["grep", "MemTotal", "/proc/meminfo"]).stdout.read()
        assert int(meminfo.split()[1]) * 1024 == default_limit("memory")  # not the host's 24 GB
        assert sandbox.docker.load(test_images["tiny"]).wait() == 0  # Docker inside works within the defaults
        run = sandbox.docker.run(test_images["tiny"], "echo", "inner", rm=True)
        assert run.wait() == 0 and run.stdout.read() == "inner\n"
    with create("unlimited", cpu="unlimited", memory="unlimited", pids="unlimited") as sandbox:
        host = engine_client.api.inspect_container(sandbox.core.container_id)["HostConfig"]
        assert not host["Memory"] and not host["NanoCpus"] and not host.get("PidsLimit") and not host.get("Ulimits")
        assert sandbox.status().memory is None


def test_env_values_stay_out_of_labels_and_the_sandbox_still_has_them(engine_client, no_leaks):
    secret = f"s3cr3t-{os.urandom(4).hex()}"
    with create("env", env={"API_TOKEN": secret}) as sandbox:
        container = engine_client.containers.get(L.container_name(sandbox.name))
        assert secret not in json.dumps(container.labels)
        assert json.loads(container.labels[L.SPEC])["env"] == ["API_TOKEN", "HD_TEST"]
        assert sandbox.run(["sh", "-c", "echo $API_TOKEN"]).stdout.read() == secret + "\n"
        attached = Sandbox.get(sandbox.name)  # as another process finds it: from the engine only
        assert attached.spec == sandbox.spec and attached.spec.env["API_TOKEN"] == secret
        assert attached.status().state == "ready"


FAKE_RUNC = """#!/bin/sh
# a non-gVisor runtime called runsc: runc under runsc's name, dropping runsc's own flags
for a; do shift; case "$a" in --network=*|--net-raw|--cpu-num-from-quota|--overlay2=*|--host-uds=*) ;; *) set -- "$@" "$a";; esac; done
exec runc "$@"
"""
FAKE_VERSION = 'if [ "$1" = --version ]; then echo "runsc version 0.0~20240729.0"; exit 0; fi\n'
"""Makes the fake *claim* to be gVisor, so only the booted-kernel check can catch it."""


@pytest.fixture
def fake_runtimes(tmp_path):
    """Two runtimes registered on the host engine for this test: ``hd-fake-<pid>`` (a script named
    runsc that runs runc) and ``hd-liar-<pid>`` (the same, answering --version as runsc does)."""
    import signal
    import time

    import docker as docker_py

    names = {f"hd-fake-{os.getpid()}": FAKE_RUNC, f"hd-liar-{os.getpid()}": FAKE_RUNC.replace("\nfor", "\n" + FAKE_VERSION + "for", 1)}
    config_path = "/etc/docker/daemon.json"

    def edit(change) -> None:
        with open(config_path) as f:
            config = json.load(f)
        change(config.setdefault("runtimes", {}))
        with open(config_path + ".hd-tmp", "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        os.replace(config_path + ".hd-tmp", config_path)
        pid = int(subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0])
        os.kill(pid, signal.SIGHUP)

    def registered() -> set[str]:
        return set(docker_py.from_env().info().get("Runtimes") or {})

    paths = {}
    for name, script in names.items():
        folder = tmp_path / name
        folder.mkdir()
        paths[name] = folder / "runsc"
        paths[name].write_text(script)
        paths[name].chmod(0o755)
    edit(lambda runtimes: runtimes.update({n: {"path": str(p), "runtimeArgs": ["--network=none"]} for n, p in paths.items()}))
    try:
        deadline = time.monotonic() + 20
        while not set(names) <= registered():
            assert time.monotonic() < deadline, "dockerd did not load the fake runtimes"
            time.sleep(0.1)
        yield list(names)
    finally:
        edit(lambda runtimes: [runtimes.pop(n, None) for n in names])


def test_a_runtime_named_runsc_that_is_not_gvisor_is_refused(fake_runtimes, monkeypatch, engine_client, no_leaks):
    from jupyter_sandbox.engine import RUNTIME_ENV, Engine
    from jupyter_sandbox.errors import NotIsolated

    fake, liar = fake_runtimes
    for runtime, words in ((fake, "is not gVisor"), (liar, "not running under gVisor")):
        monkeypatch.setenv(RUNTIME_ENV, runtime)
        Engine.default()._runtimes = None  # see the freshly registered runtimes
        name = unique_name("hd-fake")
        with pytest.raises(NotIsolated, match=words):
            Sandbox.create(name, owner="test", network="none")  # the fakes are registered for network none
        assert not container_exists(name)
    monkeypatch.setenv(RUNTIME_ENV, "runsc")  # the real one, chosen the same way, still works
    with create("realrt", network="none") as sandbox:
        assert sandbox.status().state == "ready"


def test_downloads_never_plant_links_pointing_outside_what_was_downloaded(tmp_path, no_leaks):
    from jupyter_sandbox.errors import SkippedLinksWarning, UnsafeLink

    secret = tmp_path / "notebook_secret.txt"
    secret.write_text("host secret\n")
    with create("links") as sandbox:
        made = sandbox.run(
            [
                "sh",
                "-c",
                "set -e; cd /root; echo data > data.txt; ln -s notebook_secret.txt result.csv; "
                "mkdir out; echo inner > out/a.txt; ln -s a.txt out/ok; ln -s ../notebook_secret.txt out/up; "
                "ln -s /etc/passwd out/abs; mkdir out/sub; ln -s ../a.txt out/sub/fine",
            ]
        )
        assert made.exit_code == 0, made.stderr.read()

        with pytest.raises(UnsafeLink, match="symbolic link"):  # the probe's exact attack: refused, nothing written
            sandbox.files.download("/root/result.csv", tmp_path / "result.csv")
        assert not os.path.lexists(tmp_path / "result.csv")
        assert sorted(os.listdir(tmp_path)) == ["notebook_secret.txt"]  # no staging folder left either

        with pytest.warns(SkippedLinksWarning, match="out/up -> ../notebook_secret.txt"):
            skipped = sandbox.files.download("/root/out", tmp_path / "out")
        assert sorted(skipped) == ["out/abs -> /etc/passwd", "out/up -> ../notebook_secret.txt"]
        out = tmp_path / "out"
        assert sorted(os.listdir(out)) == ["a.txt", "ok", "sub"]
        assert os.readlink(out / "ok") == "a.txt" and (out / "ok").read_text() == "inner\n"  # links within are kept
        assert os.readlink(out / "sub" / "fine") == "../a.txt"
        for path in out.rglob("*"):
            if path.is_symlink():
                assert os.path.realpath(path).startswith(str(out.resolve()) + os.sep)
        assert secret.read_text() == "host secret\n"


def test_uploads_send_links_as_links_and_never_read_what_they_point_to(tmp_path, no_leaks):
    secret = tmp_path / "notebook_secret.txt"
    secret.write_text("host secret\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a\n")
    os.symlink(secret, data / "leak")
    with create("upload") as sandbox:
        sandbox.files.upload(data, "/root/data")
        listing = sandbox.run(["sh", "-c", "readlink /root/data/leak; cat /root/data/leak 2>&1; cat /root/data/a.txt"])
        text = listing.stdout.read()
        assert str(secret) in text and "host secret" not in text and "a\n" in text


def test_docker_on_the_host_network_is_refused_and_a_host_sandbox_cannot_touch_host_links(test_images, no_leaks):
    """dockerd on the host's network stack (with the NET_ADMIN it needs) deleted the host's docker0 bridge at
    start, and could reconfigure any host interface: refused before anything is created. A plain host-network
    sandbox has no NET_ADMIN, so it cannot change the host's links."""
    with pytest.raises(SpecError) as caught:
        Sandbox.create(unique_name("hd-nethost"), docker=True, network="host", owner="test", use_pool=False)
    assert caught.value.field == "network" and "docker0" in caught.value.message and "'sandbox'" in caught.value.fix
    bridge = f"hd{os.urandom(3).hex()}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sandbox = Sandbox.create(unique_name("hd-nethost"), image=test_images["tiny"], network="host", owner="test", use_pool=False)
        try:
            deleted = sandbox.run(["busybox", "ip", "link", "del", bridge])
            assert deleted.exit_code != 0 and "Permission denied" in deleted.stderr.read()
        finally:
            sandbox.terminate()
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def test_a_sandbox_runs_more_inner_containers_than_gvisors_key_quota(test_images, no_leaks):
    """gVisor never frees a session keyring, and allows 200: before the inner runc was given
    --no-new-keyring, the 201st inner container of a sandbox failed ("unable to create session
    key: disk quota exceeded") and so did every one after it."""
    runs = 205
    with create("keyring", docker=True, images=[test_images["tiny"]]) as sandbox:
        loop = (
            f"i=0; while [ $i -lt {runs} ]; do i=$((i+1)); "
            f"docker run --rm --network=host {test_images['tiny']} true 2>/tmp/err "
            '|| { echo "run $i"; cat /tmp/err; exit 1; }; done; echo ok'
        )
        result = sandbox.run(["sh", "-c", loop], timeout=900)
        assert result.exit_code == 0 and "ok" in result.stdout.read(), result.stdout.read() + result.stderr.read()
