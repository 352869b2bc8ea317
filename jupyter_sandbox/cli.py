"""``jupyter sandbox``: the command-line face of the core (console script ``jupyter-sandbox``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rich.console import Console
from rich.markup import escape

from .errors import SandboxError, SandboxExpired, SpecError
from .options import add_limit_arguments, add_spec_arguments, spec_fields
from .progress import ready_text
from .spec import DEFAULT_IMAGE

if TYPE_CHECKING:
    from .sync import Process

TINY_IMAGE = "jupyter-sandbox/tiny:latest"

# Pipes get wide consoles: a table cut at 80 columns helps no script or log reader.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jupyter sandbox``."""
    parser = argparse.ArgumentParser(prog="jupyter sandbox", description="gVisor sandboxes with Docker inside, from Jupyter and the terminal.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("doctor", help="check every host prerequisite, with the fix for each failure")

    create = commands.add_parser("create", help="create a sandbox and wait until it is ready")
    add_spec_arguments(create)
    add_limit_arguments(create)
    create.add_argument("--json", action="store_true", help="print one JSON event per line, the final state last")

    ls = commands.add_parser("ls", help="list sandboxes")
    ls.add_argument("--json", action="store_true", help="print JSON")

    status = commands.add_parser("status", help="show one sandbox's state and startup phases")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="print JSON")

    exec_ = commands.add_parser("exec", help="run a command in a sandbox: exec NAME -- CMD...")
    exec_.add_argument("name")
    exec_.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    exec_.add_argument("--timeout", type=float, help="kill it after this many seconds")

    docker = commands.add_parser("docker", help="run a docker command in a sandbox: docker NAME -- ARGS...")
    docker.add_argument("name")
    docker.add_argument("args", nargs=argparse.REMAINDER, help="docker arguments (after --)")
    docker.add_argument("--timeout", type=float, help="kill it after this many seconds")

    load = commands.add_parser("load", help="copy an image from the host engine into a sandbox's Docker")
    load.add_argument("name")
    load.add_argument("image")

    save = commands.add_parser("save", help="copy an image from a sandbox's Docker into the host engine")
    save.add_argument("name")
    save.add_argument("image")
    save.add_argument("--tag", help="its name on the host (default: the same as inside)")
    save.add_argument("--replace", action="store_true", help="take the name even if the host has an image of it")

    shell = commands.add_parser("shell", help="an interactive login shell inside a sandbox (docker exec -it: a real TTY)")
    shell.add_argument("name")

    env = commands.add_parser("env", help="print `export DOCKER_HOST=...` for a sandbox's Docker daemon (eval it)")
    env.add_argument("name")

    logs = commands.add_parser("logs", help="show a sandbox's dockerd log (on a terminal, lines expected under gVisor are dimmed)")
    logs.add_argument("name")
    logs.add_argument("-n", "--lines", type=int, default=200, help="how many lines (default 200)")

    egress = commands.add_parser("egress", help="show or change a running sandbox's egress policy (new connections)")
    egress.add_argument("name")
    egress.add_argument("policy", nargs="?", help="public, none, or CIDR/host:port entries, comma-separated")
    egress.add_argument("--json", action="store_true", help="print JSON")
    pause = commands.add_parser("pause", help="freeze a sandbox (no CPU, memory and inner containers kept); any use resumes it")
    pause.add_argument("name")
    resume = commands.add_parser("resume", help="unfreeze a paused sandbox")
    resume.add_argument("name")

    snapshot = commands.add_parser(
        "snapshot", help="checkpoint a running sandbox whole (it keeps running): snapshot NAME TAG; snapshot rm TAG deletes one"
    )
    snapshot.add_argument("name", metavar="NAME|rm")
    snapshot.add_argument("tag", metavar="TAG")
    snapshot.add_argument("--json", action="store_true", help="print JSON")
    snapshots = commands.add_parser("snapshots", help="list the snapshots (fork one with create --snapshot TAG)")
    snapshots.add_argument("--json", action="store_true", help="print JSON")

    restart = commands.add_parser("restart-daemon", help="restart the Docker daemon inside a sandbox")
    restart.add_argument("name")

    rm = commands.add_parser("rm", help="remove sandboxes")
    rm.add_argument("names", nargs="*")
    rm.add_argument("--all", action="store_true", help="remove every sandbox")
    rm.add_argument("--orphans", action="store_true", help="remove sandboxes whose owning kernel or server is gone")

    pool = commands.add_parser("pool", help="the warm pool of pre-booted sandboxes")
    pool_commands = pool.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    fill = pool_commands.add_parser("fill", help="keep N ready sandboxes of a spec until Ctrl-C (then drain them)")
    add_spec_arguments(fill)
    fill.add_argument("--size", type=int, default=2, help="members to keep ready (default 2)")
    fill.add_argument("--max-age", type=float, help="replace members older than this many seconds")
    fill.add_argument("--once", action="store_true", help="fill once and exit, leaving the members for later creates")
    fill.add_argument(
        "--snapshot", metavar="TAG", help="keep forks of this snapshot ready (images loaded, services running): `create --snapshot TAG` takes one"
    )
    pool_commands.add_parser("ls", help="list the waiting pool members")
    pool_commands.add_parser("drain", help="remove every waiting pool member")

    image = commands.add_parser("image", help="sandbox images")
    image_commands = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = image_commands.add_parser("build", help="build a Docker-enabled sandbox image")
    build.add_argument("--docker", action="store_true", help="add Docker engine, CLI, Compose v2 and buildx")
    build.add_argument("--tag", default=DEFAULT_IMAGE, help=f"image tag (default {DEFAULT_IMAGE})")
    build.add_argument("--base", help="base image for the Dockerfile route (needs a registry or a local image)")
    build.add_argument("--offline", action="store_true", help="build the base with debootstrap from the Debian mirror (no registry)")
    build.add_argument("--suite", default="bookworm", help="Debian suite for --offline (default bookworm)")
    build.add_argument("--if-missing", action="store_true", help="do nothing if the tag exists")
    tiny = image_commands.add_parser("tiny", help="a 2 MB busybox image to load into sandboxes (offline demos)")
    tiny.add_argument("--tag", default=TINY_IMAGE, help=f"image tag (default {TINY_IMAGE})")
    return parser


def _strip_dashes(values: Sequence[str]) -> list[str]:
    values = list(values)
    return values[1:] if values and values[0] == "--" else values


def cmd_create(args: argparse.Namespace) -> int:
    from .sync import Sandbox, call
    from .terminal import JsonLines, LiveProgress

    core = Sandbox.prepare(args.name, owner="cli", **spec_fields(args))
    for warning in core.spec.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    lines = JsonLines() if args.json else None
    try:
        if lines is not None:
            core.events.add_listener(lines)
            try:
                sandbox = Sandbox.start(core)
            except SandboxError as error:
                lines.write({"event": "final", "sandbox": core.name, "state": "failed", **error.to_dict()})
                return 1
            lines.write({"event": "final", "sandbox": sandbox.name, "state": "ready", "seconds": round(sandbox.ready_seconds or 0, 3)})
            return 0
        call(core.check_name_free)  # a taken name is said once, before any progress
        with LiveProgress(core.name, core.spec.docker, err, restored=core.spec.snapshot is not None) as progress:
            core.events.add_listener(progress)
            sandbox = Sandbox.start(core)
        err.print(f"[green]✔[/] {escape(ready_text(sandbox.spec.docker, sandbox.ready_seconds or 0, name=sandbox.name))}")
        out.print(sandbox.name)
        return 0
    except KeyboardInterrupt:
        # Interrupted before the user was told it is ready (even if it just became ready): roll back.
        if core.container_id:
            call(core.terminate)
        if lines is not None:
            lines.write({"event": "final", "sandbox": core.name, "state": "cancelled"})
        raise


def cmd_ls(args: argparse.Namespace) -> int:
    from .sync import Sandbox
    from .terminal import sandbox_table

    infos = Sandbox.list()
    if args.json:
        print(json.dumps([{k: v for k, v in i.to_dict().items() if k != "phases"} for i in infos], indent=2))
    elif infos:
        out.print(sandbox_table(infos))
    else:
        err.print("No sandboxes. Create one with `jupyter sandbox create --docker`.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .sync import Sandbox
    from .terminal import sandbox_table

    info = Sandbox.get(args.name).status()
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    out.print(sandbox_table([info]))
    out.print(f"reason: {info.reason}")
    if info.network == "sandbox" and info.egress:
        from .egress import describe

        out.print(f"address: {info.address or '-'}, egress: {escape(describe(info.egress))}")
        for item in info.egress_resolved:
            out.print(f"  {escape(item['entry'])} -> {item['cidr']}" + (f" port {item['port']}" if item.get("port") else ""))
    for line in limit_lines(info):
        out.print(line)
    for phase in info.phases:
        uptime = f"{phase['uptime']:.2f}s" if phase.get("uptime") is not None else ""
        out.print(f"  {uptime:>7}  {phase['label']:<26} {phase['state']:<8} {phase['message']}")
    return 0


def limit_lines(info: Any) -> list[str]:
    """``status``'s lines about the time limits, with the time left."""
    from .spec import format_duration

    lines = []
    if info.ttl is not None:
        lines.append(f"ttl: {format_duration(info.ttl)} (removed in {format_duration(info.time_left)})")
    if info.idle_timeout is not None:
        left = f"paused after {format_duration(info.idle_left)} more without use" if info.idle_left is not None else info.state
        lines.append(f"idle timeout: {format_duration(info.idle_timeout)} ({left})")
    return lines


def cmd_pause(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    paused = Sandbox.get(args.name).pause()
    err.print(f"[green]✔[/] paused {args.name}; its next use resumes it" if paused else f"{args.name} was already paused")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    resumed = Sandbox.get(args.name).resume()
    err.print(f"[green]✔[/] resumed {args.name}" if resumed else f"{args.name} was not paused")
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    if args.name == "rm":
        gone = Sandbox.remove_snapshot(args.tag)
        err.print(f"[green]✔[/] removed snapshot {gone.tag}")
        return 0
    sandbox = Sandbox.get(args.name)
    with err.status(f"snapshotting {args.name} (its Docker host socket closes while it runs)..."):
        snap = sandbox.snapshot(args.tag)
    if args.json:
        print(json.dumps(snap.to_dict(), indent=2))
    else:
        err.print(
            f"[green]✔[/] snapshot [bold]{snap.tag}[/] of {args.name}: {snap.size / 1e6:.0f} MB in {snap.seconds:.2f} s; "
            f"fork it with `jupyter sandbox create --snapshot {snap.tag} --name NEW`"
        )
    return 0


def cmd_snapshots(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .display import SNAPSHOT_COLUMNS, snapshot_rows
    from .sync import Sandbox

    found = Sandbox.snapshots()
    if args.json:
        print(json.dumps([s.to_dict() for s in found], indent=2))
    elif found:
        table = Table(*SNAPSHOT_COLUMNS, box=None, header_style="bold")
        for row in snapshot_rows(found):
            table.add_row(*row)
        out.print(table)
    else:
        err.print("No snapshots. Take one with `jupyter sandbox snapshot NAME TAG`.")
    return 0


def stream_process(process: Process) -> int:
    """Copy a running process's output to this terminal as it arrives; return its exit code."""
    for chunk in process.iter_chunks():
        target = sys.stdout if chunk.stream == "stdout" else sys.stderr
        target.buffer.write(chunk.data)
        target.flush()
    code = process.wait()
    if process.hint:
        err.print(f"[yellow]hint:[/] {escape(process.hint)}")
    return code


def cmd_exec(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    command = _strip_dashes(args.cmd)
    if not command:
        raise SpecError("cmd", "no command given", fix="jupyter sandbox exec NAME -- ls -l")
    return stream_process(Sandbox.get(args.name).exec(command, timeout=args.timeout))


def cmd_docker(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    docker_args = _strip_dashes(args.args)
    if not docker_args:
        raise SpecError("args", "no docker arguments given", fix="jupyter sandbox docker NAME -- ps -a")
    return stream_process(Sandbox.get(args.name).docker(*docker_args, timeout=args.timeout))


def cmd_load(args: argparse.Namespace) -> int:
    from .streaming import load_progress
    from .sync import Sandbox

    report = load_progress(lambda line: err.print(line.rstrip(), style="dim"))
    return stream_process(Sandbox.get(args.name).docker.load(args.image, on_progress=report))


def cmd_save(args: argparse.Namespace) -> int:
    from .streaming import load_progress
    from .sync import Sandbox

    report = load_progress(lambda line: err.print(line.rstrip(), style="dim"))
    return stream_process(Sandbox.get(args.name).docker.save(args.image, tag=args.tag, replace=args.replace, on_progress=report))


def cmd_shell(args: argparse.Namespace) -> int:
    """Become ``docker exec -it`` into the sandbox (resumed first if paused): its exit code is the shell's."""
    import os

    from .shell import shell_command
    from .sync import Sandbox, call

    argv = call(shell_command, Sandbox.get(args.name).core, tty=sys.stdin.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return 0  # not reached


def cmd_env(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    sandbox = Sandbox.get(args.name)
    if not sandbox.spec.docker:
        raise SpecError("name", f"sandbox {args.name!r} has no Docker daemon", fix="create one with --docker")
    path = sandbox.docker.socket
    if path is None:
        raise SandboxError(
            f"Sandbox {args.name!r} has no host socket for its Docker daemon.", fix="create a new one: sandboxes made by older versions have none"
        )
    print(f"export DOCKER_HOST=unix://{path}")
    print(f"# Run this command to point docker (and docker-py, compose...) at sandbox {args.name}:")
    print(f'# eval "$(jupyter sandbox env {args.name})"')
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from .daemonlog import harmless
    from .sync import Sandbox

    text = Sandbox.get(args.name).dockerd_log(args.lines)
    if not sys.stdout.isatty():
        sys.stdout.write(text)
        return 0
    for line in text.splitlines():  # on a terminal: lines expected under gVisor dimmed
        out.print(escape(line), style="dim" if harmless(line) else None, soft_wrap=True)
    return 0


def cmd_egress(args: argparse.Namespace) -> int:
    from .egress import describe
    from .sync import Sandbox

    sandbox = Sandbox.get(args.name)
    if args.policy is None:
        info = sandbox.status()
        live = {"egress": info.egress, "resolved": info.egress_resolved, "ip": info.address}
    else:
        live = sandbox.set_egress(args.policy)
    if args.json:
        print(json.dumps(live, indent=2))
        return 0
    if not live["egress"]:
        err.print(f"{args.name} has network {sandbox.spec.network!r}: egress policies apply to network 'sandbox' only")
        return 0
    out.print(f"{args.name}: egress {escape(describe(live['egress']))}")
    for item in live["resolved"]:
        port = f" port {item['port']}" if item.get("port") else ""
        out.print(f"  {escape(item['entry'])} -> {item['cidr']}{port}")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from .sync import Sandbox

    Sandbox.get(args.name).restart_daemon()
    err.print(f"[green]✔[/] dockerd in {args.name} restarted and answering")
    return 0


def kernel_owner_note(info: Any) -> str:
    """``NAME belongs to kernel ID (pid N); ...``: said before removing a sandbox a kernel created."""
    kernel = f"kernel {info.kernel}" if info.kernel else "a kernel"
    pid = f" (pid {info.owner_pid})" if info.owner_pid else ""
    return f"{info.name} belongs to {kernel}{pid}: removing it anyway"


def cmd_rm(args: argparse.Namespace) -> int:
    from . import ownership
    from .engine import Engine
    from .sandbox import AsyncSandbox
    from .sync import Sandbox, call

    if not (args.names or args.all or args.orphans):
        raise SpecError("names", "no sandbox named", fix="jupyter sandbox rm NAME..., --all or --orphans")
    status = 0
    targets: dict[str, AsyncSandbox] = {}
    for name in args.names:
        try:
            targets[name] = call(AsyncSandbox.get, name)
        except SandboxExpired:
            err.print(f"removed {name} (its ttl had run out)")
        except SandboxError as error:
            err.print(f"[red]{escape(str(error))}[/]")
            status = 1
    if args.all or args.orphans:
        for container in call(Engine.default().containers):
            if args.all or ownership.orphaned(container.name or "", container.id or "", container.labels):
                sandbox = AsyncSandbox.from_container(container)
                targets[sandbox.name] = sandbox
    for name, sandbox in targets.items():
        if name in args.names and sandbox.owner.startswith("kernel"):
            err.print(escape(kernel_owner_note(call(sandbox.status))))
        removed = Sandbox(sandbox).terminate()
        err.print(f"removed {name}" if removed else f"{name} was already gone")
    if args.all or args.orphans:
        from .apisocket import reap

        for path in call(reap, Engine.default()):
            err.print(f"removed the socket directory {path} (its sandbox is gone)")
    return status


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    ok = True
    for check in run_checks():
        mark = "[green]PASS[/]" if check.ok else ("[red]FAIL[/]" if check.required else "[yellow]WARN[/]")
        err.print(f"{mark}  {check.name}: {escape(check.detail)}")
        if not check.ok:
            ok = ok and not check.required
            err.print(f"      fix: {escape(check.fix)}")
    err.print("[green]Docker-enabled sandboxes can be created.[/]" if ok else "[red]Docker-enabled sandboxes cannot be created yet.[/]")
    return 0 if ok else 1


def cmd_pool(args: argparse.Namespace) -> int:
    from .pool import WarmPool, drain_all
    from .sandbox import AsyncSandbox
    from .spec import SandboxSpec
    from .sync import call
    from .terminal import sandbox_table

    if args.pool_command == "ls":
        members = [info for info in call(AsyncSandbox.list) if info.pool]
        out.print(sandbox_table(members)) if members else err.print("The warm pool is empty.")
        return 0
    if args.pool_command == "drain":
        err.print(f"removed {call(drain_all)} pool members")
        return 0
    template = SandboxSpec.parse("template", **spec_fields(args, limits=False), snapshot=args.snapshot)
    pool = WarmPool([template], size=args.size, max_age=args.max_age)
    if args.once:
        call(pool.fill)
        err.print(f"[green]✔[/] pool has {args.size} ready members (created {pool.created} now)")
        return 0 if not pool.failures else 1
    err.print(f"keeping {args.size} ready sandboxes; creates with the same spec take one in milliseconds. Ctrl-C stops and drains.")
    call(pool.run)
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from .images import build_image, busybox_image

    if args.image_command == "tiny":
        busybox_image(args.tag)
        err.print(f"[green]✔[/] built {args.tag}")
        return 0
    return build_image(
        tag=args.tag, docker=args.docker, base=args.base, offline=args.offline, suite=args.suite, if_missing=args.if_missing, console=err
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "create": cmd_create,
    "ls": cmd_ls,
    "status": cmd_status,
    "exec": cmd_exec,
    "docker": cmd_docker,
    "load": cmd_load,
    "logs": cmd_logs,
    "env": cmd_env,
    "restart-daemon": cmd_restart,
    "egress": cmd_egress,
    "rm": cmd_rm,
    "doctor": cmd_doctor,
    "image": cmd_image,
    "pool": cmd_pool,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "snapshot": cmd_snapshot,
    "snapshots": cmd_snapshots,
    "save": cmd_save,
    "shell": cmd_shell,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (a command's own code for exec/docker)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        return 2
    except SandboxError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        return 1
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: cleaned up[/]")
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
