"""%%sandbox_docker and the %sandbox actions through a real IPython shell, on one real sandbox with Docker inside."""

from __future__ import annotations

import _thread
import threading

import pytest
from sandbox_test_support import Tripwire, unique_name

from jupyter_sandbox.notebook import session

pytestmark = pytest.mark.integration


def interrupt_main_soon() -> None:
    """What a kernel interrupt does to the waiting cell, from another thread."""
    threading.Thread(target=_thread.interrupt_main).start()


@pytest.fixture(scope="module")
def sb(shell, test_images):
    """A Docker-enabled sandbox created by the magic (the current one), with the tiny image loaded."""
    name = unique_name("mg-docker")
    sandbox = shell.run_line_magic("sandbox", f"create --docker --name {name} --progress text")
    shell.run_line_magic("sandbox", f"load {test_images['tiny']}")
    yield sandbox
    sandbox.terminate()
    session().forget(name)


@pytest.fixture
def tiny(test_images, shell, sb):
    shell.run_line_magic("sandbox", f"use {sb.name}")
    return test_images["tiny"]


def running(sb) -> str:
    return sb.run(["ps", "-eo", "args"]).stdout.read()


def test_output_reaches_the_cell_before_the_command_ends(shell, sb, tiny, monkeypatch):
    """The command prints, then waits for a file the test writes only after the line reached the cell."""
    sb.run(["sh", "-c", "mkdir -p /gate && rm -f /gate/go"])
    out = Tripwire("first\n", lambda: sb.files.write("/gate/go", ""))
    monkeypatch.setattr("sys.stdout", out)
    result = shell.run_cell(
        f"%%sandbox_docker --timeout 120\n"
        f"run --rm -v /gate:/gate {tiny} sh -c 'echo first; while [ ! -e /gate/go ]; do sleep 0.05; done; echo second'\n"
    )
    monkeypatch.undo()
    assert result.success, result.error_in_exec
    assert out.fired and out.getvalue() == "first\nsecond\n"
    assert shell.user_ns["_exit_code"] == 0


def test_stdout_and_stderr_stay_apart(shell, tiny, capsys):
    shell.run_cell(f"%%sandbox_docker\ndocker run --rm {tiny} sh -c 'echo to-out; echo to-err >&2'\n")
    captured = capsys.readouterr()
    assert captured.out == "to-out\n" and captured.err == "to-err\n"


def test_the_cell_stops_at_the_first_failure_with_its_exit_code_and_hint(shell, tiny, capsys):
    shell.run_cell(f"""%%sandbox_docker
# three commands; the second fails
run --rm {tiny} echo before
run --rm {tiny} sh -c 'exit 3'
run --rm {tiny} echo after
""")
    captured = capsys.readouterr()
    assert "before\n" in captured.out and "after" not in captured.out
    assert "$ docker run --rm" in captured.out  # each command is announced in a multi-command cell
    assert "exited with code 3" in captured.err and shell.user_ns["_exit_code"] == 3
    shell.run_cell("%%sandbox_docker\nrun --rm no-such-image:never true\n")
    captured = capsys.readouterr()
    assert "exited with code 125" in captured.err and "hint: " in captured.err


def test_a_typo_in_a_docker_command_gets_did_you_mean(shell, capsys):
    shell.run_cell("%%sandbox_docker\nimgaes\n")
    captured = capsys.readouterr()
    assert "Did you mean `docker images`" in captured.err and shell.user_ns["_exit_code"] != 0
    assert len(captured.err.splitlines()) < 10, "a few lines, not the docker CLI's whole help"


def test_keep_going_runs_every_line(shell, tiny, capsys):
    shell.run_cell(f"%%sandbox_docker --keep-going\nrun --rm {tiny} sh -c 'exit 4'\nrun --rm {tiny} echo after\n")
    captured = capsys.readouterr()
    assert "after\n" in captured.out and "exited with code 4" in captured.err
    assert shell.user_ns["_exit_code"] == 4  # the first failure's, though the last line succeeded


def test_variables_expand_from_the_notebook_like_bang_commands(shell, tiny, capsys):
    shell.user_ns.update(greeting="hello world", line="the user's own 'line'", image=tiny)
    shell.run_cell('%%sandbox_docker\nrun --rm $image echo "$greeting" {6*7} "{line}"  # $greeting not here\n')
    assert capsys.readouterr().out == "hello world 42 the user's own 'line'\n"


def test_arguments_are_argv_never_a_shell(shell, tiny, capsys):
    shell.run_cell(f"%%sandbox_docker\nrun --rm {tiny} echo '; id' '$(id)' '`id`' '&&' 'id'\n")
    assert capsys.readouterr().out == "; id $(id) `id` && id\n"


def test_a_syntax_error_runs_nothing(shell, tiny, sb, capsys):
    result = shell.run_cell(f"%%sandbox_docker\nrun -d --name never-started {tiny} sleep 100\nrun 'unclosed\n")
    assert not result.success and "line 2" in str(result.error_in_exec)
    assert "never-started" not in sb.docker.ps(all=True).stdout.read()


def test_a_huge_cell_is_refused_before_anything_runs(shell, tiny, sb):
    cell = f"run -d --name never-started-huge {tiny} sleep 100\n" + "ps\n" * 500
    result = shell.run_cell("%%sandbox_docker\n" + cell)
    assert not result.success and "at most 500" in str(result.error_in_exec)
    assert "never-started-huge" not in sb.docker.ps(all=True).stdout.read()


def test_interrupting_a_docker_line_stops_it_inside(shell, sb, tiny, monkeypatch):
    out = Tripwire("started", interrupt_main_soon)
    monkeypatch.setattr("sys.stdout", out)
    result = shell.run_cell(f"%%sandbox_docker\nrun --rm {tiny} sh -c 'echo started; sleep 4747'\n")
    monkeypatch.undo()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "the docker command was stopped" in result.error_in_exec._render_traceback_()[0]  # no traceback shown
    assert "sleep 4747" not in running(sb)
    assert sb.docker.ps(all=True, quiet=True).stdout.read().strip() == "", "the interrupted run's container is removed"


def test_interrupting_exec_kills_the_process_tree_inside(shell, sb, monkeypatch):
    out = Tripwire("started", interrupt_main_soon)
    monkeypatch.setattr("sys.stdout", out)
    result = shell.run_cell("%sandbox exec -- sh -c 'echo started; sleep 4646 & wait'")
    monkeypatch.undo()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "sleep 4646" not in running(sb)


def test_exec_streams_and_reports_the_exit_code(shell, capsys):
    shell.run_cell("%sandbox exec -- sh -c 'echo out; echo err >&2; exit 2'")
    captured = capsys.readouterr()
    assert captured.out == "out\n" and captured.err.startswith("err\n") and "exited with code 2" in captured.err
    assert shell.user_ns["_exit_code"] == 2


def test_ls_status_logs_restart_and_doctor(shell, sb, capsys):
    shell.run_line_magic("sandbox", "ls")
    assert f"* {sb.name}" in capsys.readouterr().out
    shell.run_cell(f"%sandbox status {sb.name}")
    status = capsys.readouterr().out
    assert f"Sandbox {sb.name}: ready" in status and "inner containers" in status
    bundle = sb._repr_mimebundle_()
    assert "Inner containers" in bundle["text/html"] and sb.name in bundle["text/plain"]
    shell.run_line_magic("sandbox", "logs")
    assert "API listen on" in capsys.readouterr().out
    shell.run_line_magic("sandbox", "restart-daemon")
    assert f"dockerd in {sb.name} restarted and answering" in capsys.readouterr().out
    assert sb.docker.ps().wait() == 0
    shell.run_line_magic("sandbox", "doctor")
    assert "PASS  runsc installed" in capsys.readouterr().out


def test_rm_all_removes_only_this_kernels_sandboxes(shell, capsys):
    from jupyter_sandbox.sync import Sandbox

    name = unique_name("mg-rm")
    extra = shell.run_line_magic("sandbox", f"create --name {name} --progress text")
    with Sandbox.create(owner="test") as outsider:  # not this kernel's: rm --all must leave it
        known = set(session().sandboxes)
        shell.run_line_magic("sandbox", "rm --all")
        out = capsys.readouterr().out
        assert all(f"removed {n}" in out for n in known) and extra.status().state == "gone"
        assert outsider.status().state == "ready"
    assert session().sandboxes == {} and session().current is None
