"""What the magics say when a user gets something wrong (no sandbox is needed)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from jupyter_sandbox.docker import explain_failure
from jupyter_sandbox.errors import SandboxNotFound
from jupyter_sandbox.magics import ACTIONS, in_magic_terms, shown_errors


@pytest.mark.parametrize(
    "cli, magic",
    [
        ("`jupyter sandbox ls` lists the sandboxes", "`%sandbox ls` lists the sandboxes"),
        ("create a new one (`jupyter sandbox rm demo` clears the name)", "create a new one (`%sandbox rm demo` clears the name)"),
        ("run `jupyter sandbox restart-daemon demo`", "run `%sandbox restart-daemon demo`"),
        ("`jupyter sandbox snapshot rm base` first", "`%sandbox snapshot rm base` first"),
        # what the magic cannot do keeps its terminal form
        ("build it: `jupyter sandbox image build --docker --offline`", "build it: `jupyter sandbox image build --docker --offline`"),
        ('eval "$(jupyter sandbox env demo)"', 'eval "$(jupyter sandbox env demo)"'),
        ("no command here", "no command here"),
    ],
)
def test_hints_name_the_magic_where_it_has_the_action(cli, magic):
    assert in_magic_terms(cli) == magic


def test_a_raised_error_renders_with_the_magic_in_its_fix():
    with pytest.raises(SandboxNotFound) as raised, shown_errors("stopped"):
        raise SandboxNotFound("No sandbox named 'x'.", fix="`jupyter sandbox ls` lists the sandboxes")
    rendered = raised.value._render_traceback_()
    assert rendered[1] == "How to fix: `%sandbox ls` lists the sandboxes"
    assert raised.value.fix == "`jupyter sandbox ls` lists the sandboxes", "the error itself (for other faces) is untouched"


def test_a_bare_sandbox_magic_lists_the_actions(shell):
    with pytest.raises(UsageError) as raised:
        shell.run_line_magic("sandbox", "")
    text = str(raised.value)
    assert text.startswith("say what to do:") and "[-h]" not in text
    for action in ACTIONS:
        assert action in text, f"{action} is not in the summary"


@pytest.mark.parametrize(
    "stderr, expected",
    [
        ("docker: unknown command: docker imgaes\n\nRun 'docker --help' for more information", "Did you mean `docker images`"),
        ("docker: 'psx' is not a docker command.\nSee 'docker --help'", "Did you mean `docker ps`?"),
    ],
)
def test_a_mistyped_docker_command_gets_did_you_mean(stderr, expected):
    assert expected in (explain_failure(["docker", "x"], stderr, "sandbox") or "")


def test_an_unknown_command_like_nothing_known_gets_no_guess():
    assert explain_failure(["docker", "zzzzzz"], "docker: unknown command: docker zzzzzz", "sandbox") is None
