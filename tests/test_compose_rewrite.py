"""Compose projects rewritten onto the sandbox's network stack: the pure transform."""

from __future__ import annotations

import json

import pytest

from jupyter_sandbox.compose import ComposeNotSupported, rewrite

PROJECT = {
    "name": "demo",
    "networks": {"default": {"name": "demo_default"}, "front": {"name": "demo_front"}},
    "services": {
        "web": {
            "image": "web",
            "ports": [{"target": 80, "published": "8080", "protocol": "tcp"}],
            "networks": {"front": {"aliases": ["www"]}},
            "hostname": "web1",
            "environment": {"COST": "$5"},
        },
        "db": {"image": "db", "networks": {"default": None}, "extra_hosts": ["cache:10.9.9.9"]},
        "offline": {"image": "x", "network_mode": "none"},
        "built": {"build": {"context": "/p"}, "network_mode": "host"},
    },
}


def test_services_share_the_sandbox_stack_and_reach_each_other_by_name():
    result = rewrite(json.loads(json.dumps(PROJECT)))
    web, db, offline = (result.project["services"][n] for n in ("web", "db", "offline"))
    assert "networks" not in result.project
    assert web["network_mode"] == db["network_mode"] == "host" and offline == {"image": "x", "network_mode": "none"}
    assert "hostname" not in web and "networks" not in web and "ports" not in web
    assert set(db["extra_hosts"]) == {"cache:10.9.9.9", "web:127.0.0.1", "www:127.0.0.1", "offline:127.0.0.1", "built:127.0.0.1"}
    assert "db:127.0.0.1" in web["extra_hosts"] and "web:127.0.0.1" not in web["extra_hosts"]
    assert result.project["services"]["built"]["build"] == {"context": "/p", "network": "host"}


def test_every_change_is_noted_with_where_the_port_now_is():
    notes = "\n".join(rewrite(json.loads(json.dumps(PROJECT))).notes)
    assert "service web: runs on the sandbox's network stack (network_mode: host), without hostname" in notes
    assert "port 8080->80/tcp is not published" in notes and "127.0.0.1:80 (not 8080)" in notes
    assert "sb.url(80)" in notes


def test_dollars_are_doubled_because_compose_interpolates_again():
    text = rewrite(json.loads(json.dumps(PROJECT))).to_json()
    assert json.loads(text)["services"]["web"]["environment"]["COST"] == "$$5"


def test_two_services_on_one_port_are_refused_by_name():
    project = {"services": {"a": {"ports": [{"target": 80}]}, "b": {"ports": [{"target": 80, "published": "81"}]}}}
    with pytest.raises(ComposeNotSupported) as caught:
        rewrite(project)
    assert "'a' and 'b' both listen on port 80/tcp" in caught.value.message and caught.value.fix


def test_a_project_already_on_the_host_stack_is_left_alone():
    project = {"services": {"a": {"image": "x", "network_mode": "host"}}}
    result = rewrite(project)
    assert result.notes == [] and result.project["services"]["a"] == {"image": "x", "network_mode": "host"}
