"""The pure parts of ``filetree``: sandbox paths are absolute and normalised, ``stat`` lines parse or are skipped."""

from __future__ import annotations

import pytest

from jupyter_sandbox.errors import WrongPathType
from jupyter_sandbox.filetree import Entry, normal_path, parse_line


@pytest.mark.parametrize(("given", "expected"), [("/", "/"), ("//etc//", "/etc"), ("/a/../../b", "/b"), ("/root/./x", "/root/x")])
def test_paths_are_normalised_and_never_climb_past_the_sandboxs_root(given: str, expected: str) -> None:
    assert normal_path(given) == expected


@pytest.mark.parametrize("given", ["relative", "", "/a\0b", None, 3])
def test_relative_or_odd_paths_are_refused(given: object) -> None:
    with pytest.raises(WrongPathType):
        normal_path(given)


def test_the_root_itself_is_refused_where_it_cannot_be_named() -> None:
    with pytest.raises(WrongPathType, match="root folder"):
        normal_path("/x/..", root=False)


def test_stat_lines_parse_into_entries() -> None:
    assert parse_line("41ed/40/1795987673/d", "/root") == Entry("/root/d", "directory", 40, 1795987673.0, 0o755)
    assert parse_line("a1ff/11/1795987673/sh", "/root").kind == "link"
    assert parse_line("81a4/571/1618084800/a/b c", None) == Entry("a/b c", "file", 571, 1618084800.0, 0o644)
    assert parse_line("21b6/0/1/null", "/dev").kind == "other"
    assert parse_line("second line of a name with a newline", "/root") is None
    assert parse_line("zz/1/2/x", "/") is None
    assert Entry("/", "directory", 0, 0, 0).name == "/"
