"""The in-sandbox init program and the line protocol it reports phases in.

A sandbox's main process is :data:`INIT_SCRIPT`, a POSIX shell program (run
by bash when the image has it, for a spawn-free 10 ms poll).  It prints one
line per phase change to its stdout, which is the container's log, so every
process that can read the engine's logs (the creating kernel, the CLI, the
Jupyter server) sees the same phases, and late readers get them replayed::

    @@jupyter-sandbox <phase> <state> <uptime> <message...>
    @@jupyter-sandbox-log <a line of the dockerd log, sent before a failure>

With Docker enabled it runs PLATFORM.md section 2: unmount runsc's read-only
cgroup tree, mount a writable devices cgroup, start dockerd, and watch for
the socket and the first answer.  dockerd's exit is seen within one poll
(10 ms) while starting and at once afterwards (``wait``).  It then stays as
PID 1, supervising dockerd: SIGUSR1 restarts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "@@jupyter-sandbox"
LOG_MARKER = "@@jupyter-sandbox-log"
DOCKERD_LOG = "/var/log/jupyter-sandbox/dockerd.log"
RESTART_SIGNAL = "SIGUSR1"

INIT_SCRIPT = r"""
M=@@jupyter-sandbox
LOG=/var/log/jupyter-sandbox/dockerd.log
RUN=/run/jupyter-sandbox
DOCKERD_FLAGS="--iptables=false --ip6tables=false --bridge=none --storage-driver=vfs"
ev() { read -r u _ < /proc/uptime; printf '%s %s %s %s %s\n' "$M" "$1" "$2" "$u" "${3:-}"; }
alive() { [ -r "/proc/$1/stat" ] || return 1; read -r _ _ st _ < "/proc/$1/stat"; [ "$st" != Z ]; }
idle() { trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done; }
# The sandbox-wide process limit, in gVisor's own pids cgroup (it stays after the unmount below,
# counts every user's processes, and docker exec'd ones too); RLIMIT_NPROC alone is per user.
[ -n "${JUPYTER_SANDBOX_PIDS:-}" ] && { echo "$JUPYTER_SANDBOX_PIDS" > /sys/fs/cgroup/pids/pids.max; } 2>/dev/null
read -r _ _ kernel _ < /proc/version || kernel=unknown
ev booted done "kernel $kernel"
CA=/usr/local/share/ca-certificates/jupyter-sandbox
if [ -d $CA ]; then
  bundle=/etc/ssl/certs/ca-certificates.crt
  for b in /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do [ -f $bundle ] || [ ! -f $b ] || bundle=$b; done
  mkdir -p "${bundle%/*}"; cat $CA/*.crt >> "$bundle" 2>/dev/null
fi
if [ "${1:-plain}" != docker ]; then ev ready done; idle; fi

if [ -n "${BASH_VERSION:-}" ]; then
  eval 'exec 9<> <(:)'
  nap() { read -t 0.01 -u 9 _ || :; }
else
  nap() { sleep 0.01; }
fi

ev dockerd_present started
if ! command -v dockerd >/dev/null 2>&1; then
  ev dockerd_present failed "no dockerd on the image's PATH ($PATH)"; exit 3
fi
ev dockerd_present done

ev cgroups started
mkdir -p /var/run /var/log/jupyter-sandbox $RUN &
umount -a -t cgroup 2>/dev/null
if ! err=$(mount -t cgroup -o devices devices /sys/fs/cgroup/devices 2>&1); then
  ev cgroups failed "$(echo $err)"; exit 4
fi
wait
ev cgroups done
# With the host's network (runsc --network=host) ip_forward cannot be written; dockerd then
# refuses to start unless told not to touch it (inner --network=host still works).
{ read -r fwd < /proc/sys/net/ipv4/ip_forward && [ "$fwd" = 1 ]; } 2>/dev/null ||
  { echo 1 > /proc/sys/net/ipv4/ip_forward; } 2>/dev/null || DOCKERD_FLAGS="$DOCKERD_FLAGS --ip-forward=false"

# runsc before 2025-07 cannot setns into a nested PID namespace, so `docker exec` fails for
# every inner container that has its own.  With SHARED_PID=1 the inner dockerd's default
# runtime is runc behind this filter, which drops the PID namespace from each new container's
# OCI config: every inner container shares the sandbox's PID namespace, however it was created.
if [ "${JUPYTER_SANDBOX_SHARED_PID:-0}" = 1 ]; then
  cat > $RUN/runc <<'RUNC'
#!/bin/sh
bundle= create=0 prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a ;; esac
  case "$a" in create|run) create=1 ;; --bundle=*) bundle=${a#--bundle=} ;; esac
  prev=$a
done
if [ "$create" = 1 ] && [ -f "$bundle/config.json" ]; then
  sed -i -e 's/{"type":"pid"},//' -e 's/,{"type":"pid"}//' -e 's/\[{"type":"pid"}\]/[]/' "$bundle/config.json"
fi
exec runc "$@"
RUNC
  chmod 755 $RUN/runc
  DOCKERD_FLAGS="$DOCKERD_FLAGS --add-runtime=shared-pid=$RUN/runc --default-runtime=shared-pid"
fi

tail_log() {
  tail -n 30 "$LOG" 2>/dev/null | while IFS= read -r line; do printf '%s-log %s\n' "$M" "$line"; done
}
start_dockerd() {
  ev dockerd_started started
  rm -f /var/run/docker.sock /var/run/docker.pid
  dockerd $DOCKERD_FLAGS >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" > $RUN/dockerd.pid
  ev dockerd_started done "pid $pid"
}
crashed() {
  wait "$pid"; code=$?
  tail_log
  ev "$1" failed "dockerd exited with code $code"
}
await_ready() {
  ev socket started
  while [ ! -S /var/run/docker.sock ]; do
    alive "$pid" || { crashed socket; return 1; }
    nap
  done
  ev socket done /var/run/docker.sock
  ev answering started
  while :; do
    docker version --format '{{.Server.Version}}' > $RUN/answer 2>&1 &
    probe=$!
    while alive "$probe"; do
      alive "$pid" || { kill "$probe" 2>/dev/null; crashed answering; return 1; }
      nap
    done
    if wait "$probe"; then
      read -r version < $RUN/answer
      ev answering done "dockerd $version"
      ev ready done "Docker $version"
      return 0
    fi
    nap
  done
}
restart=0
trap 'restart=1' USR1
trap 'kill "$pid" 2>/dev/null; exit 0' TERM INT
start_dockerd
await_ready || exit 5
while :; do
  wait "$pid"; code=$?
  if [ "$restart" = 1 ]; then
    restart=0
    ev daemon started "restarting dockerd"
    if alive "$pid"; then kill "$pid"; wait "$pid"; fi
    start_dockerd
    await_ready || continue
  elif ! alive "$pid"; then
    tail_log
    ev daemon failed "dockerd exited with code $code"
    while [ "$restart" = 0 ]; do sleep 86400 & wait $!; kill $! 2>/dev/null; done
  fi
done
"""

LAUNCHER = '[ -x /bin/bash ] && exec /bin/bash -c "$0" jupyter-sandbox-init "$@"; eval "$0"'
"""Runs the init script with bash if the image has it, else with /bin/sh."""


def init_command(docker: bool) -> list[str]:
    """The container command that runs the init script."""
    return ["/bin/sh", "-c", LAUNCHER, INIT_SCRIPT, "docker" if docker else "plain"]


_LINE = re.compile(r"^@@jupyter-sandbox (\S+) (\S+) (\S+) ?(.*)$")


@dataclass(frozen=True)
class InitReport:
    """One parsed protocol line from the init script.

    Attributes:
        phase: The phase name.
        state: ``started``, ``done`` or ``failed``.
        uptime: The sandbox kernel's uptime in seconds.
        message: The rest of the line.
        log_tail: dockerd log lines sent just before this line (failures only).
    """

    phase: str
    state: str
    uptime: float | None
    message: str
    log_tail: str = ""


class InitReportParser:
    """Turns the init script's output (arriving in arbitrary chunks) into :class:`InitReport` s."""

    def __init__(self) -> None:
        self._pending = ""
        self._log_lines: list[str] = []

    def feed(self, data: str) -> list[InitReport]:
        """Add output text; return the reports completed by it."""
        self._pending += data
        *lines, self._pending = self._pending.split("\n")
        reports = []
        for line in lines:
            report = self._parse(line.rstrip("\r"))
            if report:
                reports.append(report)
        return reports

    def _parse(self, line: str) -> InitReport | None:
        if line.startswith(LOG_MARKER + " ") or line == LOG_MARKER:
            self._log_lines.append(line[len(LOG_MARKER) + 1:])
            return None
        match = _LINE.match(line)
        if not match:
            return None
        phase, state, uptime, message = match.groups()
        try:
            up: float | None = float(uptime)
        except ValueError:
            up = None
        tail = "\n".join(self._log_lines) if state == "failed" else ""
        if state == "failed":
            self._log_lines = []
        return InitReport(phase, state, up, message, tail)


_KNOWN_CAUSES = [
    ("Devices cgroup isn't mounted",
     "this runsc is too old for Docker inside gVisor: install runsc 20240729 or newer "
     "(bookworm-backports; `bash scripts/setup-host.sh` does it)"),
    ("iptables", "dockerd tried to use iptables, which gVisor lacks: start it with --iptables=false"),
    ("no space left on device", "the sandbox ran out of disk or memory-backed storage: give it more memory or free space"),
    ("cannot allocate memory", "the sandbox hit its memory limit: create it with more memory (e.g. memory='2Gi')"),
    ("operation not permitted", "dockerd lacks a capability: Docker-enabled sandboxes need cap_add ALL (jupyter-sandbox sets it)"),
    ("address already in use", "another dockerd already holds /var/run/docker.sock in this sandbox"),
]


def diagnose(log_tail: str) -> str:
    """A fix for the first known cause found in a dockerd log tail (a generic one otherwise)."""
    lowered = log_tail.lower()
    for needle, fix in _KNOWN_CAUSES:
        if needle.lower() in lowered:
            return fix
    return ("read the dockerd log lines below for the cause; `jupyter sandbox doctor` checks the host, "
            "and a Docker-enabled image can be built with `jupyter sandbox image build --docker --offline`")
