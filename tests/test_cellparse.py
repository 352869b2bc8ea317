"""The %%sandbox_docker line parser: examples, and hypothesis fuzzing against shlex as the reference."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_sandbox.cellparse import CellSyntaxError, cell_lines, logical_lines, parse_cell, strip_comment


def argvs(cell: str, **kwargs) -> list[list[str]]:
    return [command.argv for command in parse_cell(cell, **kwargs)]


def test_comments_blank_lines_continuations_and_optional_docker():
    cell = """
# load and run
docker images   # what is there
run --rm \\
    busybox echo 'a # not a comment' b#c

ps -a
"""
    assert argvs(cell) == [["images"], ["run", "--rm", "busybox", "echo", "a # not a comment", "b#c"], ["ps", "-a"]]
    assert [c.lineno for c in parse_cell(cell)] == [3, 4, 7]
    assert argvs("echo a\\ #b \"#c\" '#d' #e") == [["echo", "a #b", "#c", "#d"]]


def test_expansion_applies_to_commands_but_never_to_comments():
    seen = []

    def expand(text: str) -> str:
        seen.append(text)
        return text.replace("$tag", "demo:1")

    assert argvs("build -t $tag .  # $tag\n", expand=expand) == [["build", "-t", "demo:1", "."]]
    assert seen == ["build -t $tag ."]


def test_errors_name_the_line_and_run_nothing():
    with pytest.raises(CellSyntaxError, match="line 2: cannot split") as caught:
        parse_cell("ps\nrun 'unclosed\n")
    assert caught.value.lineno == 2 and "close the quote" in str(caught.value)
    with pytest.raises(CellSyntaxError, match="line 1: no docker command"):
        parse_cell("docker\n")


def test_trailing_continuation_on_the_last_line_is_dropped():
    assert argvs("ps \\") == [["ps"]]
    assert argvs("echo a\\\\\n") == [["echo", "a\\"]]  # an escaped backslash does not continue


# Arguments as users write them: anything but line breaks (a command is one logical line).
argument = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=12)
command = st.lists(argument, min_size=1, max_size=6).filter(lambda argv: argv[0] != "docker")


@settings(max_examples=300)
@given(commands=st.lists(command, max_size=5), prefix=st.booleans(), comments=st.booleans(), continuation=st.booleans(), blank=st.booleans())
def test_quoted_commands_round_trip(commands, prefix, comments, continuation, blank):
    """Whatever shlex.quote produced comes back argument for argument, with the cell dressing around it."""
    lines = []
    for argv in commands:
        words = (["docker"] if prefix else []) + [shlex.quote(a) for a in argv]
        if continuation and len(words) > 1:
            text = " ".join(words[:1]) + " \\\n    " + " ".join(words[1:])
        else:
            text = " ".join(words)
        if comments:
            lines.append("# a comment with 'quotes and $vars")
            text += "  # trailing comment"
        lines.append(text)
        if blank:
            lines.append("   ")
    assert argvs("\n".join(lines)) == commands


@settings(max_examples=500)
@given(st.text(max_size=80))
def test_any_text_parses_or_fails_with_a_line_number(cell):
    try:
        commands = parse_cell(cell)
    except CellSyntaxError as error:
        assert 1 <= error.lineno <= len(cell_lines(cell))
        return
    for parsed in commands:
        assert parsed.argv and all(isinstance(arg, str) for arg in parsed.argv)
        assert 1 <= parsed.lineno <= len(cell_lines(cell))
        assert not parsed.source.startswith("#")


@given(st.text(st.characters(blacklist_characters="\n"), max_size=40))
def test_strip_comment_only_ever_cuts(line):
    assert line.startswith(strip_comment(line))


@given(st.lists(st.text(st.characters(blacklist_characters="\n\r#\\'\""), max_size=20), max_size=6))
def test_lines_without_special_characters_pass_through(lines):
    expected = [(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]
    assert logical_lines("\n".join(lines)) == expected


def test_a_lone_carriage_return_ends_a_line():
    assert logical_lines("\r#") == []
    assert logical_lines("ps\r# c") == [(1, "ps")]
    assert logical_lines("ps\rimages\r\nversion") == [(1, "ps"), (2, "images"), (3, "version")]
    assert argvs("run a \\\rb") == [["run", "a", "b"]]


def test_huge_cells_are_refused_before_anything_runs():
    with pytest.raises(CellSyntaxError, match="at most 500"):
        parse_cell("ps\n" * 501)
    with pytest.raises(CellSyntaxError, match="at most 1,000,000"):
        parse_cell("# " + "x" * 1_000_001)
    assert len(parse_cell("ps\n" * 500)) == 500
