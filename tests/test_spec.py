"""Unit tests of spec parsing: every bad value is refused with the field named and a fix."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.spec import DEFAULT_IMAGE, SandboxSpec, format_memory, parse_memory


def test_defaults():
    spec = SandboxSpec.parse("demo")
    assert spec.name == "demo"
    assert spec.image == DEFAULT_IMAGE
    assert spec.network == "sandbox" and spec.egress == "public"
    assert spec.timeout == 30
    assert spec.cpu == max(1, (os.cpu_count() or 1) // 2) and spec.memory == 4 * 2**30 and spec.pids == 512


def test_random_name_when_left_out():
    a, b = SandboxSpec.parse(), SandboxSpec.parse()
    assert a.name != b.name and a.name.startswith("sb-")


@pytest.mark.parametrize(
    "text, size", [("512Mi", 512 * 2**20), ("4Gi", 4 * 2**30), ("1G", 2**30), ("100m", 100 * 2**20), ("1.5Gi", int(1.5 * 2**30)), (2**30, 2**30)]
)
def test_memory_sizes(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "value, field, words",
    [
        ("", "name", "empty"),
        ("x" * 64, "name", "64 characters"),
        ("../x", "name", "not allowed"),
        ("my box", "name", "not allowed"),
        ("naïve", "name", "not allowed"),
    ],
)
def test_bad_names(value, field, words):
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse(value)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert "How to fix" in str(caught.value)


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"cpu": 0}, "cpu", "more than 0"),
        ({"cpu": -1}, "cpu", "more than 0"),
        ({"cpu": (os.cpu_count() or 1) + 1}, "cpu", "more than this host"),
        ({"cpu": "abc"}, "cpu", "not a number"),
        ({"memory": "4Gb"}, "memory", "unknown unit 'Gb'"),
        ({"memory": "-1"}, "memory", "not a size"),
        ({"memory": "abc"}, "memory", "not a size"),
        ({"memory": "1Ki"}, "memory", "minimum"),
        ({"memory": "64Ti"}, "memory", "more than this host"),
        ({"memory": float("inf")}, "memory", "not a size"),
        ({"memory": "64Mi", "docker": True}, "memory", "at least 128Mi"),
        ({"network": "bridge"}, "network", "not a network mode"),
        ({"timeout": 0}, "timeout", "more than 0"),
        ({"timeout": "soon"}, "timeout", "not a number"),
        ({"timeout": 10**6}, "timeout", "at most"),
        ({"docker": "yes"}, "docker", "true or false"),
        ({"env": {"1BAD": "x"}}, "env", "not a variable name"),
        ({"env": ["NOEQUALS"]}, "env", "KEY=VALUE"),
        ({"image": "has space"}, "image", "not an image reference"),
        ({"docker": True, "disk": "8 parsecs"}, "disk", "unknown unit"),
        ({"docker": True, "disk": "1Mi"}, "disk", "below the smallest store"),
        ({"docker": True, "memory": "1Gi", "disk": "1Gi"}, "disk", "does not fit in memory 1Gi"),
        ({"docker": True, "memory": "150Mi"}, "memory", "no room for the disk store"),
        ({"disk": "1Gi"}, "disk", "with Docker inside"),
        ({"docker": True, "storage": "zfs"}, "storage", "not a storage choice"),
        ({"images": ["x"]}, "images", "this sandbox has none"),
        ({"docker": True, "images": "two words"}, "images", "not an image reference"),
        ({"docker": True, "images": {"a": 1}}, "images", "must be a list"),
    ],
)
def test_bad_values(kwargs, field, words):
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("ok", **kwargs)
    assert caught.value.field == field
    assert words in caught.value.message


def test_from_dict_refuses_unknown_fields_and_wrong_types():
    with pytest.raises(SpecError) as caught:
        SandboxSpec.from_dict({"name": "x", "gpu": 1})
    assert caught.value.field == "gpu"
    with pytest.raises(SpecError) as caught:
        SandboxSpec.from_dict(["not", "an", "object"])
    assert caught.value.field == "body"
    with pytest.raises(SpecError) as caught:
        SandboxSpec.from_dict({"name": 5})
    assert caught.value.field == "name"


def test_round_trip_through_dict():
    spec = SandboxSpec.parse("rt", docker=True, cpu="500m", memory="1Gi", network="none", env={"A": "1"}, timeout=9)
    assert SandboxSpec(**spec.to_dict()) == spec
    assert spec.cpu == 0.5 and format_memory(spec.memory) == "1Gi"


@given(st.text(max_size=80))
def test_name_parser_never_crashes(text):
    try:
        spec = SandboxSpec.parse(text)
    except SpecError as error:
        assert error.field == "name"
    else:
        assert spec.name == text and len(text) <= 63


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans()))
def test_memory_and_cpu_parsers_never_crash(value):
    for field in ("memory", "cpu", "timeout"):
        try:
            SandboxSpec.parse("fuzz", **{field: value})
        except SpecError as error:
            assert error.field == field


def test_one_version_for_the_package_and_the_lab_extension():
    import json
    import pathlib

    import jupyter_sandbox

    package_json = pathlib.Path(__file__).resolve().parent.parent / "labextension" / "package.json"
    assert jupyter_sandbox.__version__ == json.loads(package_json.read_text())["version"]


def test_labels_of_a_newer_version_with_extra_spec_fields_still_read() -> None:
    import json as _json

    from jupyter_sandbox import labels as _labels

    spec = _labels.spec_from_labels({_labels.SPEC: _json.dumps({"name": "x", "network": "sandbox", "disk": "2Gi"})})
    assert (spec.name, spec.network) == ("x", "sandbox")


def test_disk_defaults_to_half_the_memory_and_says_how_to_fit():
    assert SandboxSpec.parse("a", docker=True, memory="2Gi").disk == 2**30
    assert SandboxSpec.parse("a", docker=True, memory="unlimited").disk == 4 * 2**30
    assert SandboxSpec.parse("a", docker=True).disk == SandboxSpec.parse("a", docker=True).memory // 2  # default memory
    assert SandboxSpec.parse("a").disk is None
    spec = SandboxSpec.parse("a", docker=True, memory="4Gi", disk="3Gi", images=["x", "y", "x"])
    assert (spec.disk, spec.disk_text, spec.images, spec.storage) == (3 * 2**30, "3Gi", ("x", "y"), "overlay2")
    assert SandboxSpec.from_dict(spec.to_dict()) == spec  # as REST bodies and labels carry it
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("a", docker=True, memory="1Gi", disk="2Gi")
    assert "raise memory to at least 2176Mi, or lower disk to at most 896Mi" in caught.value.fix
    assert SandboxSpec.parse("a", docker=True, memory="300Mi").disk == 150 * 2**20
    assert SandboxSpec.parse("a", docker=True, memory="200Mi").disk == 72 * 2**20
