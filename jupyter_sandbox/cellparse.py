"""The ``%%sandbox_docker`` cell language: one docker command per line, parsed into argv lists.

Pure functions, no IPython and no sandbox: the magic hands in the cell and
IPython's ``var_expand`` as ``expand``.  The rules follow a shell script's,
minus everything a shell would run:

* a line ending in ``\\`` continues on the next one (backslash-newline is
  removed, as in ``sh``);
* ``#`` starts a comment where a word could start (``a#b`` is one word), and
  blank or comment-only lines are skipped;
* the rest of each command is expanded (``$name``, ``{expr}``), split with
  :func:`shlex.split` (quotes and backslashes as in ``sh``), and its
  leading ``docker``, if written, dropped.

Every line is parsed before anything runs, so a typo on line 5 runs nothing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Callable

from .errors import SandboxError


class CellSyntaxError(SandboxError):
    """A line of a ``%%sandbox_docker`` cell cannot be split into arguments.

    Args:
        lineno: The cell line (1-based) where the command starts.
        message: What is wrong.
        fix: How to write it instead.
    """

    code = "cell_syntax"
    http_status = 400

    def __init__(self, lineno: int, message: str, *, fix: str | None = None):
        super().__init__(f"line {lineno}: {message}", fix=fix)
        self.lineno = lineno


@dataclass(frozen=True)
class DockerLine:
    """One docker command of a cell.

    Attributes:
        lineno: The cell line (1-based) where it starts.
        source: The command as written (continuations joined, comment removed).
        argv: The docker arguments, without the leading ``docker``.
    """

    lineno: int
    source: str
    argv: list[str] = field(default_factory=list)


def strip_comment(line: str) -> str:
    """Remove an unquoted ``#`` comment that starts a word, and everything after it."""
    quote = ""
    escaped = False
    word_start = True
    for index, char in enumerate(line):
        separator = False
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and word_start:
            return line[:index]
        else:
            separator = char in " \t"
        word_start = separator
    return line


def _ends_with_continuation(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""``\\n``, ``\\r\\n`` and a lone ``\\r`` (old Mac files, pasted text) each end a line."""


def cell_lines(cell: str) -> list[str]:
    """A cell's physical lines: every line break (``\\n``, ``\\r\\n``, a lone ``\\r``) ends one."""
    return _LINE_BREAK.split(cell)


def logical_lines(cell: str) -> list[tuple[int, str]]:
    """Join ``\\`` continuations, drop comments and blank lines.

    Returns:
        ``(lineno, text)`` for each command, ``lineno`` being the 1-based
        cell line where it starts (lines counted as :func:`cell_lines` does).
    """
    commands: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, line in enumerate(cell_lines(cell), start=1):
        if not pending:
            start = number
        if _ends_with_continuation(line):
            pending += line[:-1]
            continue
        text = strip_comment(pending + line).strip()
        pending = ""
        if text:
            commands.append((start, text))
    text = strip_comment(pending).strip()
    if text:
        commands.append((start, text))
    return commands


def split_command(lineno: int, text: str) -> list[str]:
    """Split one (already expanded) command into docker arguments.

    Raises:
        CellSyntaxError: On an unclosed quote, or if nothing is left after ``docker``.
    """
    try:
        argv = shlex.split(text, comments=False, posix=True)
    except ValueError as error:
        raise CellSyntaxError(lineno, f"cannot split {text!r}: {error}", fix="close the quote, or escape it with a backslash") from None
    if argv and argv[0] == "docker":
        argv = argv[1:]
    if not argv:
        raise CellSyntaxError(lineno, "no docker command after 'docker'", fix="write e.g. `docker ps` or just `ps`")
    return argv


def parse_cell(cell: str, expand: Callable[[str], str] = lambda text: text) -> list[DockerLine]:
    """Parse a whole cell into docker commands.

    Args:
        cell: The cell's text.
        expand: Applied to each command before it is split (the magic passes
            IPython's ``var_expand``); comments are removed first, so they are
            never expanded.

    Raises:
        CellSyntaxError: For the first line that cannot be parsed, or a cell
            too big to be a list of docker commands.
    """
    return [DockerLine(lineno, text, split_command(lineno, expand(text))) for lineno, text in bounded_lines(cell)]


def bounded_lines(cell: str) -> list[tuple[int, str]]:
    """:func:`logical_lines` of a cell, refusing cells too big to be a list of docker commands.

    Raises:
        CellSyntaxError: If the cell has more than :data:`MAX_CELL_BYTES` characters
            or more than :data:`MAX_COMMANDS` commands.
    """
    if len(cell) > MAX_CELL_BYTES:
        raise CellSyntaxError(
            1,
            f"the cell has {len(cell):,} characters; %%sandbox_docker takes at most {MAX_CELL_BYTES:,}",
            fix="put long scripts in a file: sb.files.upload(...) then %sandbox exec -- sh FILE",
        )
    lines = logical_lines(cell)
    if len(lines) > MAX_COMMANDS:
        raise CellSyntaxError(
            lines[MAX_COMMANDS][0],
            f"the cell has {len(lines)} commands; %%sandbox_docker runs at most {MAX_COMMANDS}",
            fix="split it over several cells, or put the commands in a script and run it with %sandbox exec",
        )
    return lines


MAX_CELL_BYTES = 1_000_000
"""Cells longer than this are refused before anything runs."""
MAX_COMMANDS = 500
"""Docker commands one cell may hold."""
