"""``jupyter sandbox shell NAME`` in a real pseudo-terminal and through a pipe, and ``%sandbox shell``'s output."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
from IPython.utils.capture import capture_output
from ptyprocess import PtyProcessUnicode
from sandbox_test_support import unique_name

from jupyter_sandbox.display import TERMINAL_MIME
from jupyter_sandbox.errors import SandboxNotFound
from jupyter_sandbox.sync import Sandbox

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "jupyter_sandbox.cli"]


@pytest.fixture(scope="module")
def plain_sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox.create(name=unique_name("shell"), owner="test", use_pool=False)
    try:
        yield sandbox
    finally:
        sandbox.terminate()


def read_until(terminal: PtyProcessUnicode, wanted: str, timeout: float = 20.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, f"{wanted!r} never appeared; the terminal showed {seen[-2000:]!r}"
        seen += terminal.read(4096)
    return seen


def test_the_cli_shell_is_a_real_tty_that_resizes_and_takes_ctrl_c(plain_sandbox: Sandbox) -> None:
    plain_sandbox.pause()  # a shell is a use: it resumes the sandbox first
    terminal = PtyProcessUnicode.spawn([*CLI, "shell", plain_sandbox.name], dimensions=(24, 80))
    try:
        terminal.write("echo hi-$((6*7)) $TERM\r")
        read_until(terminal, "hi-42 xterm-256color")
        terminal.setwinsize(41, 123)
        terminal.write("stty size\r")
        read_until(terminal, "41 123")
        terminal.write("sleep 300\r")
        time.sleep(0.5)
        terminal.write("\x03")
        terminal.write("echo after-$((1+1))\r")
        read_until(terminal, "after-2")
        terminal.write("exit 5\r")
        deadline = time.monotonic() + 20
        while terminal.isalive() and time.monotonic() < deadline:
            try:
                terminal.read(4096)
            except EOFError:
                break
        terminal.wait()
        assert terminal.exitstatus == 5  # the shell's own exit code
    finally:
        terminal.terminate(force=True)
    assert plain_sandbox.status().state == "ready"


def test_the_cli_shell_reads_a_pipe_and_names_a_missing_sandbox(plain_sandbox: Sandbox) -> None:
    piped = subprocess.run([*CLI, "shell", plain_sandbox.name], input="echo hi-$((6*7)); tty; exit 3\n", capture_output=True, text=True, timeout=60)
    assert piped.returncode == 3 and piped.stdout.splitlines() == ["hi-42", "not a tty"], piped
    missing = subprocess.run([*CLI, "shell", "no-such-sandbox"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "No sandbox named 'no-such-sandbox'" in missing.stderr


def test_the_magic_shows_a_lab_button_and_the_commands_for_other_terminals(shell: Any, plain_sandbox: Sandbox) -> None:
    with capture_output() as captured:
        shell.run_line_magic("sandbox", f"shell {plain_sandbox.name}")
    (output,) = captured.outputs
    assert output.data[TERMINAL_MIME] == {"name": plain_sandbox.name}
    text = output.data["text/plain"]
    assert f"jupyter sandbox shell {plain_sandbox.name}" in text
    assert f"exec -it -e TERM=xterm-256color {plain_sandbox.core.container_id[:12]} sh -c" in text
    with pytest.raises(SandboxNotFound):
        shell.run_line_magic("sandbox", "shell no-such-sandbox")
