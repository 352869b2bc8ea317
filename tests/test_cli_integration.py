"""The `jupyter sandbox` command line, run as a user would (separate processes)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["jupyter", "sandbox", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_create_docker_run_and_rm(test_images, engine_client, no_leaks):
    name = f"cli-{os.getpid()}"
    created = cli("create", "--docker", "--name", name, "--json", check=True)
    lines = [json.loads(line) for line in created.stdout.splitlines()]
    progress = [(line["phase"], line["state"]) for line in lines if line["event"] == "progress"]
    # booted for real: a warm-pool claim replays only the phases' ends ("taken from the warm pool")
    assert ("sandbox_start", "started") in progress and not any("warm pool" in line.get("message", "") for line in lines)
    assert [line["phase"] for line in lines if line["event"] == "progress" and line["state"] == "done"][-1] == "ready"
    final = lines[-1]
    assert final["event"] == "final" and final["state"] == "ready" and final["seconds"] > 0
    try:
        cli("load", name, test_images["tiny"], check=True)
        hi = cli("docker", name, "--", "run", "--rm", "--network=host", test_images["tiny"], "echo", "hi", check=True)
        assert hi.stdout == "hi\n"
        assert cli("exec", name, "--", "sh", "-c", "exit 7").returncode == 7
        listed = json.loads(cli("ls", "--json", check=True).stdout)
        assert any(item["name"] == name and item["state"] == "ready" and item["owner"] == "cli" for item in listed)
        assert "API listen on" in cli("logs", name, check=True).stdout
        taken = cli("create", "--name", name)
        assert taken.returncode == 1 and taken.stderr.count("already exists") == 1
        assert "Image found" not in taken.stderr and "Traceback" not in taken.stderr
    finally:
        cli("rm", name, check=True)
    assert not engine_client.containers.list(all=True, filters={"name": f"jupyter-sandbox-{name}"})


def test_create_shows_phases_and_errors_are_clear(test_images, no_leaks):
    bad = cli("create", "--docker", "--memory", "4Gb")
    assert bad.returncode == 2
    assert "memory: '4Gb' has an unknown unit 'Gb'" in bad.stderr and "Traceback" not in bad.stderr
    crashed = cli("create", "--docker", "--image", test_images["dockerd_exits"])
    assert crashed.returncode == 1
    assert "dockerd exited with code 1" in crashed.stderr and "refusing to start on purpose" in crashed.stderr
    assert "Traceback" not in crashed.stderr
    missing = cli("exec", "no-such-sandbox", "--", "true")
    assert missing.returncode == 1 and "No sandbox named 'no-such-sandbox'" in missing.stderr


def test_doctor_passes_on_a_set_up_host(no_leaks):
    doctor = cli("doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert "PASS  Docker-enabled sandbox" in doctor.stderr


def test_pull_without_network_says_so(docker_sandbox):
    pulled = cli("docker", docker_sandbox.name, "--", "pull", "alpine")
    assert pulled.returncode != 0
    assert "network 'none'" in pulled.stderr and "load" in pulled.stderr
