"""The in-sandbox init program and the line protocol it reports phases in.

A sandbox's main process is :data:`INIT_SCRIPT`, a POSIX shell program (run
by bash when the image has it, for a spawn-free 10 ms poll).  It prints one
line per phase change to its stdout, which is the container's log, so every
process that can read the engine's logs (the creating kernel, the CLI, the
Jupyter server) sees the same phases, and late readers get them replayed::

    @@jupyter-sandbox <phase> <state> <uptime> <message...>
    @@jupyter-sandbox-log <a line of the dockerd log, sent before a failure>

With Docker enabled it runs PLATFORM.md section 2: unmount runsc's read-only
cgroup tree, mount a writable devices cgroup, mount the disk store (a
size-bounded tmpfs holding dockerd's data root, on which it runs overlay2,
plus ``/tmp`` and overlays over the image's directories), start dockerd, and
watch for the socket and the first answer.  dockerd's exit is seen within one poll
(10 ms) while starting and at once afterwards (``wait``).  It then stays as
PID 1, supervising dockerd: SIGUSR1 restarts it.

When the host gave the sandbox a directory at :data:`API_DIR` (see
:mod:`jupyter_sandbox.apisocket`), the inner daemon's API is also offered on
the socket :data:`API_SOCKET` there, which the host can open.  dockerd itself
listens only on ``/var/run/docker.sock``; a relay, supervised by this script
(restarted if it dies), forwards the host socket to it, because gVisor cannot
checkpoint a sandbox while a host socket is bound in it: :data:`CLOSE_SIGNAL`
closes the relay (the host socket disappears) and :data:`OPEN_SIGNAL` opens it
again.  The relay is one perl process for every connection (perl is in every
Debian image), or ``socat`` in an image without perl; an image with neither gets
dockerd listening on the host socket directly (then it cannot be closed).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, AsyncGenerator

from .threads import follow

MARKER = "@@jupyter-sandbox"
LOG_MARKER = "@@jupyter-sandbox-log"
DOCKERD_LOG = "/var/log/jupyter-sandbox/dockerd.log"
DISK_PATH = "/.jupyter-sandbox-disk"
"""Where the engine mounts a Docker-enabled sandbox's disk store (a size-bounded tmpfs inside gVisor)."""
RESTART_SIGNAL = "SIGUSR1"
API_DIR = "/run/jupyter-sandbox/api"
"""Where a sandbox sees its host socket directory (bind-mounted from the host)."""
API_SOCKET = API_DIR + "/docker.sock"
CLOSE_SIGNAL = "SIGUSR2"
"""Sent to the init program: close the host socket (stop the relay)."""
OPEN_SIGNAL = "SIGHUP"
"""Sent to the init program: open the host socket again (start the relay)."""

INIT_SCRIPT = r"""
M=@@jupyter-sandbox
LOG=/var/log/jupyter-sandbox/dockerd.log
RUN=/run/jupyter-sandbox
API=/run/jupyter-sandbox/api
DISK=/.jupyter-sandbox-disk
PRELOAD=${4:-0}
DOCKERD_FLAGS="--iptables=false --ip6tables=false --bridge=none --storage-driver=${3:-overlay2}"
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

# The disk store: a tmpfs of $2 bytes the engine mounts at $DISK (gVisor-internal, sandbox memory).
# It holds dockerd's data root, /tmp and the writes to the image's directories (overlays), so a
# write past it fails with ENOSPC. Prepared in the background, alongside the cgroups.
store() {
  set -- docker tmp .keep
  for d in usr opt srv home root var etc; do
    [ -d "/$d" ] && [ ! -L "/$d" ] && set -- "$@" ".u/$d" ".w/$d" && OVERLAYS="$OVERLAYS $d"
  done
  cd $DISK && mkdir -p "$@" /var/lib/docker && chmod 1777 tmp && cd / || return 1
  KEEP=  # files the engine binds into /etc (hosts, resolv.conf...): kept aside, bound back over the overlay
  while read -r _ at _; do
    case "$at" in /etc/*/*) ;; /etc/*) [ -f "$at" ] && KEEP="$KEEP ${at#/etc/}" && : > "$DISK/.keep/${at#/etc/}";; esac
  done < /proc/mounts
  {
    for f in $KEEP; do printf '/etc/%s %s/.keep/%s none bind 0 0\n' $f $DISK $f; done
    for d in $OVERLAYS; do
      printf 'overlay /%s overlay lowerdir=/%s,upperdir=%s/.u/%s,workdir=%s/.w/%s 0 0\n' $d $d $DISK $d $DISK $d
    done
    for f in $KEEP; do printf '%s/.keep/%s /etc/%s none bind 0 0\n' $DISK $f $f; done
    printf '%s/docker /var/lib/docker none bind 0 0\n%s/tmp /tmp none bind 0 0\n' $DISK $DISK
  } > $DISK/.fstab
  mount -a -T $DISK/.fstab
}
storing=
if [ -n "${2:-}" ]; then store > $DISK/.err 2>&1 & storing=$!; fi

ev cgroups started
mkdir -p /var/run /var/log/jupyter-sandbox $RUN &
making=$!
# Every one of runsc's cgroup mounts must go (runc inside picks any left in mountinfo); umount -a
# can leave one behind while the disk store mounts beside it, so check and repeat.
for _ in 1 2 3 4 5; do
  umount -a -t cgroup 2>/dev/null
  grep -q ' cgroup ' /proc/self/mounts || break
done
if ! err=$(mount -t cgroup -o devices devices /sys/fs/cgroup/devices 2>&1); then
  ev cgroups failed "$(echo $err)"; exit 4
fi
wait $making
ev cgroups done

ev storage started
if [ -n "$storing" ]; then
  if ! wait $storing; then ev storage failed "$(echo $(cat $DISK/.err))"; exit 6; fi
  ev storage done "${3:-overlay2} on a $(($2 / 1048576)) MiB store"
else
  ev storage done "${3:-overlay2} on the root filesystem"
fi

# The inner dockerd's runtime is runc behind this filter.  On every create it adds --no-new-keyring:
# gVisor never frees a container's session keyring, so after ~200 inner containers every new one
# failed with "unable to create session key: disk quota exceeded" (measured).  And runsc before
# 2025-07 cannot setns into a nested PID namespace, so `docker exec` fails for every inner container
# that has its own: with SHARED_PID=1 the filter also drops the PID namespace from each new
# container's OCI config, so every inner container shares the sandbox's, however it was created.
# It also answers `--version` itself, with the text runc printed written into the filter (a rewrite in
# the background once the daemon is ready, swapped in whole): dockerd starts it on every `docker version`, and
# under gVisor a process start costs about 10 ms, runc's own 35-70 ms, and every file read more
# (measured: 13-16 ms when the filter read a copy of the text, 9.5-10 ms with the text inside it).
cat > $RUN/runc <<RUNC
#!/bin/sh
SHARED_PID=${JUPYTER_SANDBOX_SHARED_PID:-0}
RUNC
cat >> $RUN/runc <<'RUNC'
# One pass: the arguments go back as they came, with --no-new-keyring right after the command
# (the first word that is neither an option nor a global option's value) when it creates a container.
first=1 prev= bundle= cmd=
for a in "$@"; do
  [ "$first" = 1 ] && set -- && first=0
  set -- "$@" "$a"
  if [ -z "$cmd" ]; then
    case "$prev" in --root|--log|--log-format|--criu) ;; *) case "$a" in
      -*) ;;
      create|run) cmd=$a; set -- "$@" --no-new-keyring ;;
      *) cmd=$a ;;
    esac ;; esac
  fi
  case "$prev" in --bundle|-b) bundle=$a ;; esac
  case "$a" in --bundle=*) bundle=${a#--bundle=} ;; esac
  prev=$a
done
case "$cmd" in create|run)
  if [ "$SHARED_PID" = 1 ] && [ -f "$bundle/config.json" ]; then
    sed -i -e 's/{"type":"pid"},//' -e 's/,{"type":"pid"}//' -e 's/\[{"type":"pid"}\]/[]/' "$bundle/config.json"
  fi ;;
esac
exec runc "$@"
RUNC
chmod 755 $RUN/runc
# Run once the daemon is ready (not during boot, where its process starts would compete with dockerd's).
answer_version() {
  { version=$(runc --version 2>/dev/null) && case $version in ""|*"'"*) false ;; esac &&
    { printf '#!/bin/sh\nif [ "$*" = --version ]; then printf %s; exit 0; fi\n' "'%s\\n' '$version'"; tail -n +2 $RUN/runc; } > $RUN/runc.new &&
    chmod 755 $RUN/runc.new && mv -f $RUN/runc.new $RUN/runc; } &
}
DOCKERD_FLAGS="$DOCKERD_FLAGS --add-runtime=sandboxed-runc=$RUN/runc --default-runtime=sandboxed-runc"

tail_log() {
  tail -n 30 "$LOG" 2>/dev/null | while IFS= read -r line; do printf '%s-log %s\n' "$M" "$line"; done
}
# The host socket: relayed (closable for checkpoints) by one perl process, else socat; with neither,
# dockerd listens on it itself. Perl comes first: socat forks a process per connection, and a fork under
# gVisor made every new connection's first answer 10-17 ms late (measured; 1-2 ms through perl).
relay= relay_listening=0 want=open
if grep -q " $API " /proc/self/mountinfo 2>/dev/null; then
  if command -v perl >/dev/null 2>&1; then HOSTSOCK=relay RELAY=perl
    cat > $RUN/relay.pl <<'RELAY'
use strict; use warnings;
use IO::Socket::UNIX; use IO::Select; use Socket qw(SOCK_STREAM); use Errno qw(EAGAIN EINTR);
my ($path, $target) = @ARGV;
$0 = 'sandbox-relay';    # its name in ps (pkill -x sandbox-relay)
my $BUF = 1 << 20;
$SIG{PIPE} = 'IGNORE';
$SIG{TERM} = sub { unlink $path; exit 0 };
unlink $path;
umask 0177;
my $server = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 128) or die "relay: listen on $path: $!\n";
$server->blocking(0);
my %ends;    # fileno => {fh, peer, out (bytes waiting to be written to fh), eof (fh said EOF), shut}
sub drop {
  my ($e) = @_;
  for my $x ($e, $e->{peer}) { next unless $x->{fh}; delete $ends{fileno $x->{fh}}; close $x->{fh}; $x->{fh} = undef }
}
sub settle {
  my ($e) = @_;
  my $p = $e->{peer};
  for ([$e, $p], [$p, $e]) {
    my ($from, $to) = @$_;
    if ($from->{eof} && !length $to->{out} && !$to->{shut}) { shutdown($to->{fh}, 1); $to->{shut} = 1 }
  }
  drop($e) if $e->{shut} && $p->{shut};
}
while (1) {
  my $r = IO::Select->new($server);
  my $w = IO::Select->new;
  for my $e (values %ends) {
    $r->add($e->{fh}) if !$e->{eof} && length $e->{peer}{out} < $BUF;
    $w->add($e->{fh}) if length $e->{out};
  }
  my ($readable, $writable) = IO::Select->select($r, $w, undef);
  for my $fh (@{$writable || []}) {
    my $e = $ends{fileno $fh // -1} or next;
    next unless $e->{fh} == $fh;
    my $n = syswrite($fh, $e->{out});
    if (defined $n) { substr($e->{out}, 0, $n, ''); settle($e) }
    elsif ($! != EAGAIN && $! != EINTR) { drop($e) }
  }
  for my $fh (@{$readable || []}) {
    if ($fh == $server) {
      my $client = $server->accept or next;
      my $daemon = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $target) or do { close $client; next };
      $_->blocking(0) for $client, $daemon;
      my $a = {fh => $client, out => '', eof => 0, shut => 0};
      my $b = {fh => $daemon, out => '', eof => 0, shut => 0, peer => $a};
      $a->{peer} = $b;
      $ends{fileno $client} = $a;
      $ends{fileno $daemon} = $b;
      next;
    }
    my $e = $ends{fileno $fh // -1} or next;
    next unless $e->{fh} == $fh;
    my $n = sysread($fh, my $data, $BUF);
    if (!defined $n) { drop($e) unless $! == EAGAIN || $! == EINTR; next }
    if ($n == 0) { $e->{eof} = 1; settle($e); next }
    $e->{peer}{out} .= $data;
  }
}
RELAY
  elif command -v socat >/dev/null 2>&1; then HOSTSOCK=relay RELAY=socat
  else HOSTSOCK=direct
    DOCKERD_FLAGS="$DOCKERD_FLAGS -H unix:///var/run/docker.sock -H unix://$API/docker.sock"; fi
else HOSTSOCK=none; fi
# Started as soon as dockerd is (a perl start under gVisor is slow, and it overlaps dockerd's own start
# that way); the socket is waited for only before "answering".  Until dockerd listens, a connection
# through it is closed at once.
spawn_relay() {
  [ "$HOSTSOCK" = relay ] && [ "$want" = open ] && [ -z "$relay" ] || return 0
  rm -f "$API/docker.sock"
  if [ "$RELAY" = perl ]; then
    perl $RUN/relay.pl "$API/docker.sock" /var/run/docker.sock 2>>"$RUN/relay.log" &
  else
    # -t: after a client half-closes (docker run shuts its side once it has no stdin to send), keep
    # relaying the daemon's answer until the daemon ends it (socat's default gives it 0.5 s, losing output).
    # -b: 1 MiB transfers; socat's 8 KiB default caps a stream at ~50 MB/s under gVisor (measured).
    socat -t 86400 -b 1048576 UNIX-LISTEN:"$API/docker.sock",fork,mode=600,backlog=128 UNIX-CONNECT:/var/run/docker.sock 2>>"$RUN/relay.log" &
  fi
  relay=$! relay_listening=0
}
open_relay() {
  [ "$HOSTSOCK" = relay ] && [ "$want" = open ] || return 0
  spawn_relay
  [ "$relay_listening" = 0 ] || return 0
  while [ ! -S "$API/docker.sock" ]; do
    alive "$relay" || { wait "$relay"; relay=; return 1; }
    nap
  done
  relay_listening=1
}
close_relay() {
  [ -n "$relay" ] || return 0
  pkill -TERM -P "$relay" 2>/dev/null; kill "$relay" 2>/dev/null; wait "$relay" 2>/dev/null; relay=
  rm -f "$API/docker.sock"
}
start_dockerd() {
  ev dockerd_started started
  rm -f /var/run/docker.sock /var/run/docker.pid
  [ "$HOSTSOCK" = direct ] && rm -f "$API/docker.sock"
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
      if ! open_relay; then
        ev answering failed "the host socket relay ($RELAY) exited: $(tail -n 3 "$RUN/relay.log" | tr '\n' ' ')"
        return 1
      fi
      ev answering done "dockerd $version"
      # The host's turn before "ready": it loads the images asked for, and secures and checks the host
      # socket, then leaves a marker: in the socket directory when there is one (no exec needed),
      # else $RUN/preloaded. So "ready", which every observer reads, means the host is done too.
      marker=
      if [ "$HOSTSOCK" != none ]; then marker=$API/host-ready; elif [ "$PRELOAD" != 0 ]; then marker=$RUN/preloaded; fi
      if [ -n "$marker" ]; then
        while [ ! -e "$marker" ]; do
          alive "$pid" || { crashed images; return 1; }
          nap
        done
      fi
      ev ready done "Docker $version"
      return 0
    fi
    nap
  done
}
restart=0 relay_change=0
trap 'restart=1' USR1
trap 'want=closed relay_change=1' USR2
trap 'want=open relay_change=1' HUP
trap 'close_relay; kill "$pid" 2>/dev/null; exit 0' TERM INT
start_dockerd
spawn_relay
await_ready || exit 5
answer_version
running=1
while :; do
  # Wake on a signal, dockerd's exit or the relay's exit (bash); sh waits for dockerd or a signal only.
  # A signal that came before this loop (say, right after "ready") is handled at once, not at the next wake.
  ended= code=0
  if [ "$relay_change" = 0 ] && [ "$restart" = 0 ]; then
    sleep 86400 & nap_pid=$!
    if [ -n "${BASH_VERSION:-}" ]; then
      ids="$nap_pid"; [ "$running" = 1 ] && ids="$ids $pid"; [ -n "$relay" ] && ids="$ids $relay"
      wait -n -p ended $ids; code=$?
    elif [ "$running" = 1 ]; then wait "$pid"; code=$?; alive "$pid" || ended=$pid
    else wait "$nap_pid"; fi
    [ "$ended" = "$nap_pid" ] || { kill "$nap_pid" 2>/dev/null; wait "$nap_pid" 2>/dev/null; }
  fi
  if [ -n "$relay" ] && [ "$ended" = "$relay" ]; then relay=; fi
  if [ "$relay_change" = 1 ]; then
    relay_change=0
    [ "$want" = closed ] && close_relay
  fi
  if [ "$restart" = 1 ]; then
    restart=0
    ev daemon started "restarting dockerd"
    if alive "$pid"; then kill "$pid"; wait "$pid"; fi
    start_dockerd
    running=1
    await_ready || running=0
  elif [ "$running" = 1 ] && [ "$ended" = "$pid" ]; then
    running=0
    tail_log
    ev daemon failed "dockerd exited with code $code"
  fi
  [ "$running" = 1 ] && { open_relay || sleep 1; }
done
"""

LAUNCHER = '[ -x /bin/bash ] && exec /bin/bash -c "$0" jupyter-sandbox-init "$@"; eval "$0"'
"""Runs the init script with bash if the image has it, else with /bin/sh."""


PRELOADED = "/run/jupyter-sandbox/preloaded"
"""Created by the host (through exec) once the images to preload are loaded, in a sandbox without a socket directory."""
HOST_READY = "host-ready"
"""The marker the host leaves in a sandbox's socket directory once it has done its part of the startup
(images loaded, socket secured and checked); the init program says ready only after it."""


def init_command(docker: bool, disk: int | None = None, storage: str | None = None, preload: int = 0) -> list[str]:
    """The container command that runs the init script.

    Args:
        docker: Start dockerd.
        disk: Size in bytes of the disk store the engine mounts at :data:`DISK_PATH`
            (``None``: no store, dockerd's data on the root filesystem).
        storage: dockerd's storage driver (default: overlay2 on a store, vfs without one,
            as overlay2 cannot run on gVisor's root overlay).
        preload: How many images the host loads before the sandbox is ready.
    """
    if not docker:
        return ["/bin/sh", "-c", LAUNCHER, INIT_SCRIPT, "plain"]
    driver = storage or ("overlay2" if disk else "vfs")
    return ["/bin/sh", "-c", LAUNCHER, INIT_SCRIPT, "docker", str(disk or ""), driver, str(preload)]


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
            self._log_lines.append(line[len(LOG_MARKER) + 1 :])
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


async def follow_reports(client: Any, container_id: str, skip: int = 0) -> AsyncGenerator[InitReport, None]:
    """The init program's reports as it writes them (its container's log, followed), after the first ``skip``.

    The log replays from the start on every open, so a follower that reopens
    it (the creating process, the server's watcher) passes the number it has seen.
    The iteration ends when the log does (the container stopped).
    """
    parser = InitReportParser()
    index = 0
    chunks = follow(lambda: client.api.logs(container_id, stream=True, follow=True, stdout=True, stderr=False))
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            for report in parser.feed(chunk.decode("utf-8", errors="replace")):
                index += 1
                if index > skip:
                    yield report


_KNOWN_CAUSES = [
    (
        "Devices cgroup isn't mounted",
        "this runsc is too old for Docker inside gVisor: install runsc 20240729 or newer (bookworm-backports; `bash scripts/setup-host.sh` does it)",
    ),
    ("iptables", "dockerd tried to use iptables, which gVisor lacks: start it with --iptables=false"),
    (
        "no space left on device",
        "the sandbox's disk store is full: remove images or files inside, or create it with a larger disk= (--disk), raising memory= with it",
    ),
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
    return (
        "read the dockerd log lines below for the cause; `jupyter sandbox doctor` checks the host, "
        "and a Docker-enabled image can be built with `jupyter sandbox image build --docker --offline`"
    )
