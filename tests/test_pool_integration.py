"""The warm pool on real sandboxes: hands out working sandboxes, refills, drains, never hands one out twice;
and a create that must not take a member (``use_pool=False``, the doctor, any test not about the pool) boots one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import anyio
import pytest

from jupyter_sandbox import labels as L
from jupyter_sandbox import ownership
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.events import Phase, State
from jupyter_sandbox.pool import WarmPool, pool_key
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.spec import SandboxSpec
from jupyter_sandbox.sync import Sandbox, call

pytestmark = pytest.mark.integration


@pytest.fixture
def template() -> SandboxSpec:
    """A spec only this test process uses, so no other process claims its members."""
    return SandboxSpec.parse("template", docker=True, env={"POOL_TEST": f"{os.getpid()}-{time.time()}"})


@pytest.mark.warm_pool
def test_create_takes_a_ready_member_and_it_works(template, no_leaks):
    pool = WarmPool([template], size=1)
    call(pool.fill)
    try:
        with Sandbox.create("from-pool-" + str(os.getpid()), docker=True, env=template.env, owner="test") as sandbox:
            assert sandbox.core.from_pool
            assert sandbox.status().state == "ready" and not sandbox.status().pool
            assert sandbox.status().owner == "test", "a claimed member is its claimer's, as a create's would be"
            assert sandbox.docker.ps().wait() == 0
            assert sandbox.run(["hostname"]).exit_code == 0
            other = SandboxSpec.parse("x", docker=True, memory="300Mi", env=template.env)
            assert pool_key(other) != pool_key(template)
    finally:
        call(pool.drain)


@pytest.mark.warm_pool
def test_pool_refills_after_a_claim_and_drains_when_stopped(template, no_leaks):
    pool = WarmPool([template], size=1)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            await group.start(pool.run)
            with anyio.fail_after(120):
                while pool.created < 1:
                    await anyio.sleep(0.05)
                claimed = await AsyncSandbox.create(docker=True, env=template.env, owner="test")
                assert claimed.from_pool
                while pool.created < 2:  # the claim made the pool create a replacement
                    await anyio.sleep(0.05)
            await claimed.terminate()
            group.cancel_scope.cancel()  # stopping the pool drains it

    call(scenario)
    assert pool.created == 2, pool.failures
    left = call(Engine.default().containers)
    assert not [c for c in left if c.labels.get(L.POOL_KEY) == pool_key(template)], "a stopped pool must leave no members"


@pytest.mark.warm_pool
def test_concurrent_creates_never_get_the_same_member(template, no_leaks):
    pool = WarmPool([template], size=2)
    call(pool.fill)
    made: list[AsyncSandbox] = []

    async def create_many() -> list[AsyncSandbox]:
        async def one(i: int) -> None:
            made.append(await AsyncSandbox.create(name=f"race-{os.getpid()}-{i}", docker=True, env=template.env, owner="test"))

        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(one, i)
        return made

    try:
        sandboxes = call(create_many)
        assert len({s.container_id for s in sandboxes}) == 4
        assert sum(s.from_pool for s in sandboxes) == 2
        for sandbox in sandboxes:
            assert call(sandbox.status).state == "ready"
    finally:  # also after a failed create: the others, and the pool, are still there
        for sandbox in made:
            call(sandbox.terminate)
        call(pool.drain)


@pytest.mark.warm_pool
def test_a_claimed_member_is_orphaned_with_its_claimer_not_before(template, engine_client, no_leaks):
    """The claimer owns a claimed member exactly as a create's owner: `rm --orphans` (whose test,
    ownership.orphaned, is applied here to these two only: the engine is shared) takes the one
    whose claiming process died and keeps the one whose claimer lives."""
    pool = WarmPool([template], size=2)
    call(pool.fill)
    dead, alive = f"claimed-dead-{os.getpid()}", f"claimed-alive-{os.getpid()}"
    script = (
        f"from jupyter_sandbox.sync import Sandbox\n"
        f"assert Sandbox.create({dead!r}, docker=True, env={template.env!r}, owner='kernel').core.from_pool\n"
    )
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)  # claims one, exits without cleaning up
        with Sandbox.create(alive, docker=True, env=template.env, owner="kernel") as mine:
            assert mine.core.from_pool
            for name, orphan in ((dead, True), (alive, False)):
                container = engine_client.containers.get(L.container_name(name))
                assert container.labels[L.OWNER] == "pool"  # the engine's labels cannot change...
                owned = ownership.labels_of(container.id, container.labels)  # ...the claim record says who claimed it
                assert owned[L.OWNER] == "kernel" and (owned[L.OWNER_PID] == str(os.getpid())) is not orphan
                assert ownership.orphaned(container.name, container.id, container.labels) is orphan, name
                assert Sandbox.get(name).status().owner == "kernel"
    finally:
        subprocess.run(["jupyter", "sandbox", "rm", dead], capture_output=True, timeout=120)
        call(pool.drain)
    assert not os.path.exists(ownership._record(container.id)), "removing a sandbox removes its claim record"


def booted(sandbox: Sandbox) -> bool:
    """Whether a sandbox was started for real: not taken from a pool, and its own container start
    was seen (a claim replays only the phases' ends, "taken from the warm pool")."""
    events = [(e.phase, e.state) for e in sandbox.core.events.history]
    return not sandbox.core.from_pool and (Phase.SANDBOX_START.value, State.STARTED.value) in events


def waiting_members(template: SandboxSpec) -> set[str]:
    return {c.id for c in call(Engine.default().containers) if c.labels.get(L.POOL_KEY) == pool_key(template) and L.in_pool(c.name)}


@pytest.mark.warm_pool
def test_use_pool_false_boots_beside_a_matching_member(template, no_leaks):
    pool = WarmPool([template], size=1)
    call(pool.fill)
    try:
        members = waiting_members(template)
        assert len(members) == 1
        with Sandbox.create("own-" + str(os.getpid()), docker=True, env=template.env, owner="test", use_pool=False) as sandbox:
            assert booted(sandbox) and sandbox.core.container_id not in members
            assert sandbox.run(["true"]).exit_code == 0
        assert waiting_members(template) == members
    finally:
        call(pool.drain)


def test_outside_the_pool_tests_a_create_in_this_process_boots_beside_a_matching_member(template, no_leaks):
    """conftest's guard: the default use_pool=True takes no member in a test not marked warm_pool."""
    pool = WarmPool([template], size=1)
    call(pool.fill)
    try:
        members = waiting_members(template)
        with Sandbox.create("guarded-" + str(os.getpid()), docker=True, env=template.env, owner="test") as sandbox:
            assert booted(sandbox) and sandbox.core.container_id not in members
        assert waiting_members(template) == members
    finally:
        call(pool.drain)


@pytest.mark.warm_pool
@pytest.mark.slow
def test_doctor_boots_its_own_sandbox_beside_a_member_of_its_spec(no_leaks):
    """The README says `doctor` creates a real Docker-enabled sandbox: a member of the very spec it asks
    for (Docker, network none, the defaults) waits meanwhile and is still waiting after."""
    template = SandboxSpec.parse("template", docker=True, network="none")
    pool = WarmPool([template], size=1)
    call(pool.fill)
    try:
        members = waiting_members(template)
        assert len(members) == 1
        doctor = subprocess.run(["jupyter", "sandbox", "doctor"], capture_output=True, text=True, timeout=600)
        assert "PASS  Docker-enabled sandbox" in doctor.stderr, doctor.stderr
        assert waiting_members(template) == members, "doctor took the pool's member instead of booting a sandbox"
    finally:
        call(pool.drain)
