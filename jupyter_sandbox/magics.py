"""``%sandbox`` and ``%%sandbox_docker``: the notebook face, registered by ``%load_ext jupyter_sandbox``.

Thin on purpose: arguments are parsed here (with IPython's
``magic_arguments``, so ``%sandbox?`` is generated from them, the create
options being the CLI's own ``add_spec_arguments``), and everything else is
done by :mod:`jupyter_sandbox.notebook` (creates, the kernel's sandboxes)
and :mod:`jupyter_sandbox.streaming` (commands with live output).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
from typing import Any, Iterator

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import ArgDecorator, argument, argument_group, magic_arguments

from .cellparse import DockerLine, bounded_lines, split_command
from .errors import ExecTimeout, SandboxError
from .notebook import KernelSandboxes, session
from .options import LIMIT_FIELDS, SPEC_FIELDS, add_limit_arguments, add_spec_arguments, spec_fields
from .progress import MODES
from .streaming import CommandResult, load_image, run_command, run_docker, save_image

ACTIONS = (
    "create",
    "ls",
    "status",
    "use",
    "logs",
    "exec",
    "load",
    "expose",
    "rm",
    "restart-daemon",
    "doctor",
    "pause",
    "resume",
    "snapshot",
    "snapshots",
    "save",
    "shell",
)
CREATE_ONLY = ("name", "keep", "progress", *(field for field in SPEC_FIELDS + LIMIT_FIELDS if field != "timeout"))
"""The options only ``create`` takes (``--timeout`` also bounds exec, load and save)."""
TIMEOUT_EXIT_CODE = 124
"""``_exit_code`` after a command was killed for its timeout (as coreutils' ``timeout`` reports it)."""
RED, RESET = "\x1b[0;31m", "\x1b[0m"


class spec_arguments(ArgDecorator):
    """Adds the CLI's create options (``options.add_spec_arguments``): one definition, the same names in both faces."""

    def add_to_parser(self, parser: Any, group: Any) -> None:
        """Add the options to the parser (or to the current argument group)."""
        add_spec_arguments(
            group if group is not None else parser,
            timeout_help=("create: seconds the startup may take (default 30); exec and load: stop the command after this many seconds"),
        )
        add_limit_arguments(group if group is not None else parser)


@contextlib.contextmanager
def shown_errors(interrupted: str) -> Iterator[None]:
    """Let the core's errors (and an interrupt) reach IPython as a message alone, without a traceback.

    Args:
        interrupted: What a KeyboardInterrupt left behind, e.g. "the command was stopped inside the sandbox".
    """
    try:
        yield
    except SandboxError as error:
        lines = in_magic_terms(str(error)).splitlines() or [error.message]
        rendered = [f"{RED}{type(error).__name__}{RESET}: {lines[0]}", *lines[1:]]
        error._render_traceback_ = lambda: rendered  # type: ignore[attr-defined]
        raise
    except KeyboardInterrupt as interrupt:
        interrupt._render_traceback_ = lambda: [f"{RED}KeyboardInterrupt{RESET}: {interrupted}"]  # type: ignore[attr-defined]
        raise


def in_magic_terms(text: str) -> str:
    """An error's text as a notebook user acts on it: the core's hints name the CLI
    (`jupyter sandbox rm demo`), and where ``%sandbox`` has the same action the hint names the magic
    (`%sandbox rm demo`); commands the magic lacks (``image build``, ``env``) keep their CLI form."""

    def magic(match: re.Match[str]) -> str:
        return f"%sandbox {match.group(1)}" if match.group(1) in ACTIONS else match.group(0)

    return re.sub(r"jupyter sandbox ([a-z][a-z-]*)", magic, text)


def split_at_dashes(line: str) -> tuple[list[str], list[str]]:
    """Split a magic line into its options and the command after the first ``--``."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"cannot split the arguments: {error}") from None
    if "--" in words:
        index = words.index("--")
        return words[:index], words[index + 1 :]
    return words, []


def usage(magic: Any) -> str:
    """The magic's usage line(s), generated from its arguments."""
    text: str = magic.parser.format_usage()
    return "usage: " + text.strip().removeprefix("::").strip()


def actions_text(magic: Any) -> str:
    """The summary of a magic's actions: the paragraph of its docstring whose lines show it in use."""
    paragraphs = re.split(r"\n\s*\n", magic.__doc__ or "")
    return next((p.strip("\n") for p in paragraphs if p.lstrip().startswith("%sandbox ") and "[-h]" not in p), "")


def help_text(magic: Any) -> str:
    """The magic's full help (what ``%magic?`` shows), with a plain ``usage:`` heading."""
    return "usage: " + (magic.__doc__ or "").strip().removeprefix("::").strip()


def seconds(value: str | None) -> float | None:
    """A ``--timeout`` value in seconds (None if not given); a bad one is a usage error."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--timeout: {value!r} is not a number of seconds") from None
    if not number > 0:
        raise UsageError(f"--timeout: must be more than 0, got {value!r}")
    return number


def parse(magic: Any, words: list[str], help_hint: str) -> Any:
    """Parse with the magic's own parser; a mistake shows the usage line (and nothing runs)."""
    try:
        return magic.parser.parse_args(words)
    except UsageError as error:
        raise UsageError(f"{error}\n{usage(magic)}\n{help_hint}") from None


@magics_class
class SandboxMagics(Magics):
    """The ``%sandbox`` line magic and the ``%%sandbox_docker`` cell magic.

    Args:
        shell: The IPython shell.
        sandboxes: The kernel's sandboxes (created, attached, current).
    """

    shell: InteractiveShell

    def __init__(self, shell: Any, sandboxes: KernelSandboxes):
        super().__init__(shell)  # type: ignore[no-untyped-call]  # IPython's Magics.__init__ is unannotated
        self.sandboxes = sandboxes

    @magic_arguments()
    @argument("action", nargs="?", choices=ACTIONS, metavar="ACTION", help="one of: " + ", ".join(ACTIONS))
    @argument(
        "names",
        nargs="*",
        metavar="ARG",
        help="a sandbox name (default: the current sandbox); for load: [NAME] IMAGE; for expose: [NAME] PORT; for rm: NAME...",
    )
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument_group("create (options named as in `jupyter sandbox create`)")
    @spec_arguments()
    @argument("--keep", action="store_true", help="leave the sandbox running when this kernel shuts down")
    @argument(
        "--progress", choices=MODES, default="auto", help="startup view: widget, text lines, or auto (widget in a kernel; $JUPYTER_SANDBOX_PROGRESS)"
    )
    @argument_group("save")
    @argument("--tag", help="save: the image's name on the host (default: the same as inside)")
    @argument("--replace", action="store_true", help="save: take the name even if the host has an image of it")
    @argument_group("rm")
    @argument("--all", action="store_true", help="remove every sandbox of this kernel (created or attached here)")
    @line_magic
    def sandbox(self, line: str = "") -> Any:
        """Create and manage gVisor sandboxes, with their own Docker daemon, from this kernel.

        %sandbox create --docker [--name N] [--image I] [--cpu C] [--memory M] [--pids P]
                        [--disk D] [--image-load IMAGE] [--network MODE] [--egress POLICY] [--timeout S] [--env K=V] [--keep]
        %sandbox ls | status [N] | use N | logs [N] | exec [N] -- CMD...
        %sandbox load [N] IMAGE | save [N] IMAGE [--tag HOSTTAG] [--replace] | expose [N] PORT | rm [N...|--all] | restart-daemon [N] | doctor
        %sandbox pause [N] | resume [N]     (any use of a paused sandbox resumes it)
        %sandbox shell [N]                  (a terminal inside: a button in JupyterLab, the command elsewhere)
        %sandbox create ... --ttl 2h --idle-timeout 30m
        %sandbox snapshot [N] TAG | snapshots | snapshot rm TAG | create --snapshot TAG [--name F]

        N defaults to the current sandbox: the last one created or picked
        with `use`.  Sandboxes created here are terminated when the kernel
        shuts down, unless created with --keep; `use N` re-attaches to one
        after a kernel restart.

        Examples:
          sb = %sandbox create --docker --name demo
          %sandbox load busybox:latest
          %sandbox exec -- cat /etc/os-release
          %sandbox expose 8000       # a link to port 8000 through Jupyter (network 'sandbox')
          %sandbox rm demo
        """
        head, command = split_at_dashes(line)
        args = parse(self.sandbox, head, "%sandbox? or %sandbox --help shows every option")
        if args.help or args.action is None:
            if args.action is None and not args.help:
                raise UsageError(f"say what to do:\n{actions_text(self.sandbox)}\n`%sandbox?` shows every option")
            print(help_text(self.sandbox))
            return None
        self._check_options(args, command)
        interrupted = {
            "create": "the create was cancelled and what it had started was removed",
            "exec": "the command was stopped inside the sandbox",
        }.get(args.action, "stopped")
        with shown_errors(interrupted):
            return getattr(self, "_" + args.action.replace("-", "_"))(args, command)

    def _check_options(self, args: Any, command: list[str]) -> None:
        if args.action != "create":
            given = [f"--{name}" for name in CREATE_ONLY if getattr(args, name) not in (None, False, "auto")]
            if args.timeout is not None and args.action not in ("exec", "load", "save"):
                given.append("--timeout")
            if given:
                raise UsageError(f"{', '.join(given)} only applies to `%sandbox create`")
        if args.all and args.action != "rm":
            raise UsageError("--all only applies to `%sandbox rm`")
        if (args.tag is not None or args.replace) and args.action != "save":
            raise UsageError("--tag and --replace only apply to `%sandbox save`")
        if command and args.action != "exec":
            raise UsageError("only `%sandbox exec [N] -- CMD...` takes a command after --")
        most = {"create": 0, "ls": 0, "doctor": 0, "load": 2, "save": 2, "expose": 2, "rm": None, "snapshot": 2, "snapshots": 0}.get(args.action, 1)
        if most is not None and len(args.names) > most:
            raise UsageError(f"too many arguments for `%sandbox {args.action}`: {' '.join(args.names)}\n{usage(self.sandbox)}")

    def _target(self, args: Any) -> Any:
        return self.sandboxes.get(args.names[0] if args.names else None)

    def _create(self, args: Any, command: list[str]) -> Any:
        return self.sandboxes.create(args.name, keep=args.keep, progress=args.progress, **spec_fields(args))

    def _snapshot(self, args: Any, command: list[str]) -> None:
        from .sync import Sandbox

        if not args.names:
            raise UsageError("say which tag: %sandbox snapshot [N] TAG, or %sandbox snapshot rm TAG")
        if args.names[0] == "rm" and len(args.names) == 2:
            gone = Sandbox.remove_snapshot(args.names[1])
            print(f"removed snapshot {gone.tag}")
            return
        sandbox = self.sandboxes.get(args.names[0] if len(args.names) == 2 else None)
        print(f"Snapshotting {sandbox.name} (its Docker host socket closes while it runs)...", flush=True)
        snap = sandbox.snapshot(args.names[-1])
        print(
            f"Snapshot {snap.tag} of {sandbox.name}: {snap.size / 1e6:.0f} MB in {snap.seconds:.2f} s; "
            f"fork it with %sandbox create --snapshot {snap.tag} --name NEW"
        )

    def _snapshots(self, args: Any, command: list[str]) -> None:
        from .display import show, snapshot_list_bundle
        from .sync import Sandbox

        show(snapshot_list_bundle(Sandbox.snapshots()))

    def _pause(self, args: Any, command: list[str]) -> None:
        sandbox = self._target(args)
        paused = sandbox.pause()
        print(f"Paused {sandbox.name}; its next use resumes it." if paused else f"{sandbox.name} was already paused.")

    def _resume(self, args: Any, command: list[str]) -> None:
        sandbox = self._target(args)
        print(f"Resumed {sandbox.name}." if sandbox.resume() else f"{sandbox.name} was not paused.")

    def _shell(self, args: Any, command: list[str]) -> None:
        from .display import shell_bundle, show
        from .shell import shell_command
        from .sync import call

        sandbox = self._target(args)
        call(shell_command, sandbox.core)  # running (resumed if paused), or the reason why not
        show(shell_bundle(sandbox.name, sandbox.core.container_id))

    def _ls(self, args: Any, command: list[str]) -> None:
        from .display import sandbox_list_bundle, show
        from .sync import Sandbox

        show(sandbox_list_bundle(Sandbox.list(), self.sandboxes.current))

    def _status(self, args: Any, command: list[str]) -> None:
        from .display import sandbox_bundle, show

        show(sandbox_bundle(self._target(args)))

    def _use(self, args: Any, command: list[str]) -> Any:
        if not args.names:
            raise UsageError("say which sandbox: %sandbox use NAME (`%sandbox ls` lists them)")
        sandbox = self.sandboxes.use(args.names[0])
        print(f"Using sandbox {sandbox.name} ({sandbox.status().state}).")
        return sandbox

    def _logs(self, args: Any, command: list[str]) -> None:
        sys.stdout.write(self._target(args).dockerd_log())

    def _exec(self, args: Any, command: list[str]) -> None:
        if not command:
            raise UsageError("give the command after --: %sandbox exec [N] -- ls -l")
        self._report(shlex.join(command), run_command(self._target(args), command, timeout=seconds(args.timeout)))

    def _load(self, args: Any, command: list[str]) -> None:
        if not args.names:
            raise UsageError("say which image: %sandbox load [N] IMAGE")
        sandbox = self.sandboxes.get(args.names[0] if len(args.names) == 2 else None)
        self._report(f"docker load ({args.names[-1]})", load_image(sandbox, args.names[-1], timeout=seconds(args.timeout)))

    def _save(self, args: Any, command: list[str]) -> None:
        if not args.names:
            raise UsageError("say which image: %sandbox save [N] IMAGE [--tag HOSTTAG] [--replace]")
        sandbox = self.sandboxes.get(args.names[0] if len(args.names) == 2 else None)
        target = args.tag or args.names[-1]
        if self._report(
            f"save ({args.names[-1]} -> host {target})",
            save_image(sandbox, args.names[-1], tag=args.tag, replace=args.replace, timeout=seconds(args.timeout)),
        ):
            print(f"{target} is in the host engine now.")

    def _expose(self, args: Any, command: list[str]) -> None:
        from .display import port_link_bundle, show
        from .ports import check_port

        if not args.names:
            raise UsageError("say which port: %sandbox expose [N] PORT")
        port = check_port(args.names[-1])
        sandbox = self.sandboxes.get(args.names[0] if len(args.names) == 2 else None)
        sandbox.address()  # network 'none': says ports need network 'sandbox'
        found = next((p for p in sandbox.listening_ports() if p.port == port), None)
        note = (
            ""
            if found is not None and found.reachable
            else f"Nothing listens on port {port} yet; the link works once a server does (on 0.0.0.0)."
            if found is None
            else f"Port {port} listens only on {', '.join(found.addresses)}: make it listen on 0.0.0.0 to open it."
        )
        show(port_link_bundle(sandbox.name, port, sandbox.url(port), note))

    def _rm(self, args: Any, command: list[str]) -> None:
        if args.all:
            targets = list(self.sandboxes.sandboxes.values())
        else:
            targets = [self._target(args)] if not args.names else [self.sandboxes.get(name) for name in args.names]
        if not targets:
            print("This kernel has no sandboxes.")
        for sandbox in targets:
            removed = sandbox.terminate()
            self.sandboxes.forget(sandbox.name)
            print(f"removed {sandbox.name}" if removed else f"{sandbox.name} was already gone")

    def _restart_daemon(self, args: Any, command: list[str]) -> None:
        sandbox = self._target(args)
        sandbox.restart_daemon()
        print(f"dockerd in {sandbox.name} restarted and answering")

    def _doctor(self, args: Any, command: list[str]) -> None:
        from .doctor import run_checks

        ok = True
        for check in run_checks():
            mark = "PASS" if check.ok else ("FAIL" if check.required else "WARN")
            print(f"{mark}  {check.name}: {check.detail}")
            if not check.ok:
                ok = ok and not check.required
                print(f"      fix: {check.fix}")
        print("Docker-enabled sandboxes can be created." if ok else "Docker-enabled sandboxes cannot be created yet.")

    def _report(self, what: str, result: CommandResult) -> bool:
        """Record the exit code as ``_exit_code`` (as ``!cmd`` does) and explain a failure; True if it succeeded."""
        self.shell.user_ns["_exit_code"] = result.exit_code
        if result.exit_code != 0:
            print(f"✘ {what} exited with code {result.exit_code}", file=sys.stderr)
        if result.hint:
            print(f"hint: {in_magic_terms(result.hint)}", file=sys.stderr)
        return result.exit_code == 0

    @magic_arguments()
    @argument("name", nargs="?", help="the sandbox (default: the current one)")
    @argument("--keep-going", action="store_true", help="run the next lines even after a command failed")
    @argument("--timeout", type=float, help="kill each command after this many seconds")
    @cell_magic
    def sandbox_docker(self, line: str, cell: str) -> None:
        """Run each line of the cell as a docker command against the sandbox's own daemon, output streamed live.

        The leading `docker` is optional; `#` comments, blank lines and
        trailing-backslash continuations work; $name and {expr} expand from
        the notebook's variables as in `!cmd` (so write Go templates as
        '{{{{.Names}}}}').  Arguments go to docker as argv, never through a
        shell.  The cell stops at the first failing command (unless
        --keep-going) and sets _exit_code (the first failure's code, or 0).

        Example:
          %%sandbox_docker demo
          # images come from the host with %sandbox load (no registry needed)
          docker run --rm --network=none busybox:latest \\
              echo hello from {name}
          ps -a
        """
        args = parse(self.sandbox_docker, line.split(), "%%sandbox_docker? shows every option")
        commands: list[DockerLine] = []
        with shown_errors("the docker command was stopped inside the sandbox, and the containers it created removed"):
            for lineno, text in bounded_lines(cell):
                # depth=2 reads the locals of the frame that ran the cell (IPython's own rule for magic lines).
                expanded = self.shell.var_expand(text, depth=2)
                commands.append(DockerLine(lineno, text, split_command(lineno, expanded)))
            sandbox = self.sandboxes.get(args.name)
            self.shell.user_ns["_exit_code"] = first_failure = 0
            for command in commands:
                if len(commands) > 1:
                    print(f"$ docker {shlex.join(command.argv)}", flush=True)
                try:
                    result = run_docker(sandbox, command.argv, timeout=args.timeout)
                except ExecTimeout as error:
                    print(f"✘ {error.message}", file=sys.stderr)
                    result = CommandResult(TIMEOUT_EXIT_CODE)
                else:
                    self._report(f"docker {shlex.join(command.argv)}", result)
                first_failure = first_failure or result.exit_code
                self.shell.user_ns["_exit_code"] = first_failure
                if result.exit_code != 0 and not args.keep_going:
                    return


def register(ipython: Any) -> None:
    """Register the magics with a shell (called by ``%load_ext jupyter_sandbox``)."""
    ipython.register_magics(SandboxMagics(ipython, session()))


def unregister(ipython: Any) -> None:
    """Terminate the sandboxes this kernel created (unless kept) and remove the magics."""
    session().shutdown()
    magics = ipython.magics_manager.magics
    magics["line"].pop("sandbox", None)
    magics["cell"].pop("sandbox_docker", None)
    ipython.magics_manager.registry.pop("SandboxMagics", None)
