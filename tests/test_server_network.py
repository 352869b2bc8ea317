"""The server extension's network rules: allowed modes (403 otherwise), egress in the body, live egress changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sandbox_test_support import container_exists, server_config, unique_name
from test_server_api import expect_error, fetch_json, wait_for_state

from jupyter_sandbox.errors import NetworkNotAllowed

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return server_config()


async def test_host_network_is_refused_with_403_and_nothing_is_created(jp_fetch: Any, jp_serverapp: Any) -> None:
    name = unique_name("net-srv")
    error = await expect_error(jp_fetch, 403, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "network": "host"}))
    assert error["error"] == "network_not_allowed" and error["field"] == "network"
    assert "allowed: sandbox, none" in error["message"] and error["fix"]
    assert not container_exists(name)


def test_allowed_networks_is_configurable() -> None:
    from jupyter_sandbox_server.manager import SandboxManager

    only_offline = SandboxManager(allowed_networks=["none"])
    with pytest.raises(NetworkNotAllowed):
        only_offline.spec_from_body({"name": "x"})  # the default mode, sandbox, is not in the list
    assert only_offline.spec_from_body({"name": "x", "network": "none"}).network == "none"
    trusting = SandboxManager(allowed_networks=["sandbox", "none", "host"])
    assert trusting.spec_from_body({"name": "x", "network": "host"}).warnings


async def test_bad_egress_gets_400_naming_the_field(jp_fetch: Any, jp_serverapp: Any) -> None:
    for egress in ("nowhere", ["::1"], {"a": 1}):
        error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"egress": egress}))
        assert error["field"] == "egress", error


async def test_create_with_an_allow_list_then_change_it_live(jp_fetch: Any, jp_serverapp: Any) -> None:
    name = unique_name("net-srv")
    answer = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "egress": ["192.0.2.10:80"]}))
    assert answer["spec"]["network"] == "sandbox" and answer["spec"]["egress"] == ["192.0.2.10:80"]
    assert answer["warnings"] == []
    try:
        info = await wait_for_state(jp_fetch, name)
        assert info["state"] == "ready", info
        assert info["egress"] == ["192.0.2.10:80"] and info["egress_resolved"][0]["cidr"] == "192.0.2.10/32"
        live = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name, "egress", method="PUT", body=json.dumps({"egress": "none"}))
        assert live["egress"] == "none"
        assert (await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name))["egress"] == "none"
        error = await expect_error(
            jp_fetch, 400, "sandbox", "api", "sandboxes", name, "egress", method="PUT", body=json.dumps({"egress": "sometimes"})
        )
        assert error["field"] == "egress"
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
