"""%sandbox pause|resume and the time-limit options of %sandbox create, through a real IPython shell."""

from __future__ import annotations

import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox.errors import SpecError

pytestmark = pytest.mark.integration


def test_create_with_limits_pause_and_a_use_resumes(shell, capsys, no_leaks):
    name = unique_name("lc")
    sandbox = shell.run_line_magic("sandbox", f"create --name {name} --ttl 1h --idle-timeout 30m --progress text")
    try:
        assert sandbox.spec.ttl == 3600 and sandbox.spec.idle_timeout == 1800
        capsys.readouterr()
        shell.run_line_magic("sandbox", "status")
        card = capsys.readouterr().out
        assert "ttl" in card and "1h (removed in " in card and "idle timeout" in card
        shell.run_line_magic("sandbox", "pause")
        assert capsys.readouterr().out == f"Paused {name}; its next use resumes it.\n"
        assert sandbox.status().state == "paused"
        shell.run_line_magic("sandbox", "exec -- echo hi")
        captured = capsys.readouterr()
        assert "hi" in captured.out
        assert f"sandbox {name} was paused; resumed it for this use" in captured.err
        assert sandbox.status().state == "ready"
        shell.run_line_magic("sandbox", f"pause {name}")
        shell.run_line_magic("sandbox", f"resume {name}")
        assert capsys.readouterr().out.splitlines()[-1] == f"Resumed {name}."
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")


def test_bad_times_are_refused_before_anything_is_created(shell, no_leaks):
    name = unique_name("lc")
    for option in ("--ttl=-5", "--idle-timeout=40d", "--ttl=soon"):
        with pytest.raises(SpecError):
            shell.run_line_magic("sandbox", f"create --name {name} {option} --progress text")
        assert not container_exists(name)
