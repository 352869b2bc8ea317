"""Unit tests: inner Docker networking that cannot work on this runsc gets advice, and only then."""

import pytest

from jupyter_sandbox.docker import advise_compose, advise_run
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.spec import SandboxSpec, parse_egress


@pytest.mark.parametrize(
    "args",
    [["-p", "8080:80", "img"], ["--publish=80", "img"], ["-P", "img"], ["-p8080:80", "img"], ["-d", "--network", "bridge", "-p", "1:1", "img"]],
)
def test_publishing_gets_advice(args):
    text = advise_run(args)
    assert text and "publish nothing" in text and "--network=host" in text


@pytest.mark.parametrize(
    "args",
    [
        ["--network=host", "-p", "80:80", "img"],
        ["--net", "host", "-P", "img"],
        ["img", "-p"],
        ["--rm", "img", "echo", "hi"],
        ["--network=none", "img"],
    ],
)
def test_no_advice_where_it_works(args):
    assert advise_run(args) is None


def test_user_network_names_get_advice():
    text = advise_run(["--network", "appnet", "img"])
    assert text and "by name" in text and "appnet" in text


def test_compose_ports_and_names():
    web = {"image": "w", "ports": ["8080:80"]}
    assert "publish nothing" in advise_compose({"services": {"web": web}})
    assert "by their names" in advise_compose({"services": {"web": {"image": "w"}, "db": {"image": "d"}}})
    assert (
        advise_compose(
            {"services": {"web": {"image": "w", "network_mode": "host", "ports": ["80:80"]}, "db": {"image": "d", "network_mode": "host"}}}
        )
        is None
    )
    assert advise_compose({"services": {"one": {"image": "w"}}}) is None


def test_egress_policies_parse():
    assert parse_egress(None) == "public" and parse_egress("none") == "none"
    assert parse_egress("203.0.113.7,Example.org:443") == ("203.0.113.7/32", "example.org:443")
    assert parse_egress(["198.51.100.0/24", "198.51.100.0/24"]) == ("198.51.100.0/24",)
    spec = SandboxSpec.from_dict({"name": "x", "egress": ["198.51.100.1:80"]})
    assert spec.egress == ("198.51.100.1:80",) and spec.network == "sandbox"


@pytest.mark.parametrize(
    "value, words",
    [
        ("example.org", "host:port"),
        ("a:0", "host:port"),
        ("::1", "IPv6"),
        ([], "empty"),
        (5, "must be"),
        (["bad host:80"], "not a host name"),
        ("10.0.0.0/33", "host:port"),
    ],
)
def test_bad_egress_is_refused_with_the_field(value, words):
    with pytest.raises(SpecError) as caught:
        parse_egress(value)
    assert caught.value.field == "egress" and words in str(caught.value) and "How to fix" in str(caught.value)


def test_egress_needs_network_sandbox():
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("x", network="none", egress="none")
    assert caught.value.field == "egress" and "network 'sandbox'" in str(caught.value)


def test_host_network_warns():
    assert SandboxSpec.parse("x", network="host").warnings
    assert not SandboxSpec.parse("x").warnings


def test_python_api_warns_for_host_network(monkeypatch):
    from jupyter_sandbox import sync

    monkeypatch.setattr(sync, "call", lambda *args, **kwargs: None)  # the warning comes before any create
    with pytest.warns(sync.HostNetworkWarning, match="not isolated|host's network namespace"):
        sync.Sandbox.create("x", network="host")


def test_a_sandbox_mode_sandbox_is_ready_only_once_its_rules_are_installed():
    import json as _json

    from jupyter_sandbox import labels as L
    from jupyter_sandbox.bootstrap import InitReport
    from jupyter_sandbox.status import info_from_container

    spec = SandboxSpec.parse("rules-pending")
    attrs = {
        "Id": "0" * 64,
        "Name": "/jupyter-sandbox-rules-pending",
        "State": {"Status": "running", "Running": True},
        "Config": {"Labels": {L.SPEC: _json.dumps(spec.to_dict()), L.NAME: spec.name}},
        "NetworkSettings": {"Networks": {"jupyter-sandbox": {"IPAddress": "172.29.16.250"}}},
    }
    ready = [InitReport("ready", "done", 0.5, "", "")]
    info = info_from_container(attrs, ready)  # no rules for this id: the init program said ready too early
    assert info.state == "starting" and "firewall" in info.reason
    attrs["NetworkSettings"]["Networks"] = {"bridge": {}}  # an older sandbox-mode sandbox, not on our network
    assert info_from_container(attrs, ready).state == "ready"
