#!/usr/bin/env bash
# Prepare this machine for jupyter-sandbox, idempotently.
#
#   1. Debian packages: docker.io, debootstrap and a runsc new enough for
#      Docker inside gVisor (bookworm-backports on bookworm, main on trixie).
#   2. /etc/docker/daemon.json (merged, other keys kept): the runsc runtimes, and experimental
#      mode (checkpoints, for snapshots and forks).
#   3. A running Docker engine (started in the background if needed; restarted for experimental
#      mode only when no container runs on it, or with JUPYTER_SANDBOX_RESTART_ENGINE=1).
#   4. For network mode "sandbox": the product's Docker network (jupyter-sandbox, bridge jsb0),
#      the sandboxes' resolv.conf and the firewall chains (iptables/ip6tables).
#
# Every step checks first and skips work that is already done, so a second
# run takes seconds.  Images are built afterwards by the Python package
# (`jupyter-sandbox image build`), see scripts/install.sh.
set -euo pipefail

log() { printf '\033[1m[setup-host]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup-host] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it installs Debian packages and starts dockerd"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/jupyter-sandbox-dockerd.log}
MIN_RUNSC_DATE=20240729
. /etc/os-release
CODENAME=${VERSION_CODENAME:-bookworm}

# The mirror the machine already uses (never a hard-coded host name).
debian_mirror() {
  local uri=""
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources \
          | grep -v -- '-security' | grep -m1 debian || true)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

runsc_date() {
  # runsc --version prints "runsc version release-20240729.0" (or 0.0~2024...)
  command -v runsc >/dev/null 2>&1 || { echo 0; return; }
  runsc --version 2>/dev/null | grep -oE '20[0-9]{6}' | head -1 || echo 0
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)   # the sandbox-mode firewall
  command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)         # finds a sandbox's bridge port
  if [ ${#missing[@]} -gt 0 ]; then
    apt_update_once
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  if [ "$(runsc_date)" -lt "$MIN_RUNSC_DATE" ]; then
    if [ "$CODENAME" = bookworm ]; then
      local list=/etc/apt/sources.list.d/jupyter-sandbox-backports.list
      if [ ! -f "$list" ]; then
        log "adding bookworm-backports from $(debian_mirror)"
        echo "deb $(debian_mirror) bookworm-backports main" > "$list"
        APT_UPDATED=0
      fi
      apt_update_once
      log "installing runsc from bookworm-backports"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports runsc >/dev/null
    else
      apt_update_once
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null
    fi
    [ "$(runsc_date)" -ge "$MIN_RUNSC_DATE" ] || die "runsc $(runsc_date) is older than $MIN_RUNSC_DATE: dockerd inside it dies with 'Devices cgroup isn't mounted'"
  fi
  log "packages ok: $(dockerd --version), runsc $(runsc_date)"
}

engine_answers() { timeout 5 docker info >/dev/null 2>&1; }

start_engine() {
  if engine_answers; then
    log "docker engine answering"
    return
  fi
  if ! pgrep -x dockerd >/dev/null; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # its own session: it must outlive the shell (or test) that happened to start it
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 600); do
    engine_answers && { log "docker engine answering"; return; }
    sleep 0.1
  done
  tail -20 "$DOCKERD_LOG" >&2 || true
  die "dockerd did not answer within 60 s (log above, full log in $DOCKERD_LOG)"
}

# runsc before 2024-08-07 refuses network mode "sandbox" on kernel >= 6.x ("cannot run with
# network enabled in root network namespace"): install the wrapper that hides /proc/sys/net/core
# from its check, and register it for that mode.  Newer runsc gets the plain binary.
WRAPPER=/usr/local/lib/jupyter-sandbox/runsc
install_netns_wrapper() {
  if (cd "$HERE/.." && python3 -c 'import sys; from jupyter_sandbox.runtimes import needs_wrapper, runsc_release; sys.exit(0 if needs_wrapper(runsc_release()) else 1)'); then
    if ! cmp -s "$HERE/runsc-netns-wrapper" "$WRAPPER"; then
      log "installing the runsc network-namespace wrapper at $WRAPPER"
      install -D -m 0755 "$HERE/runsc-netns-wrapper" "$WRAPPER"
    fi
    SANDBOX_RUNTIME=$WRAPPER
  else
    SANDBOX_RUNTIME=/usr/bin/runsc
  fi
}

# Runtimes and experimental mode (checkpoints: snapshots and forks) in daemon.json, before the
# engine starts when it does not run yet.
ENGINE_CONFIG_CHANGED=0
configure_engine() {
  local changed
  install_netns_wrapper
  # Says each change on stderr; refuses (and stops here) rather than replace a runtime an admin set up.
  changed=$(cd "$HERE/.." && python3 -m jupyter_sandbox.runtimes /etc/docker/daemon.json "$SANDBOX_RUNTIME") \
    || die "not changing /etc/docker/daemon.json (reason above)"
  if [ "$changed" = changed ]; then
    log "updated /etc/docker/daemon.json"
    ENGINE_CONFIG_CHANGED=1
  fi
}

# A running engine reloads runtimes on SIGHUP; experimental mode needs a restart, which stops every
# container on it: done only when none runs, or when told (JUPYTER_SANDBOX_RESTART_ENGINE=1).
apply_engine_config() {
  if [ "$ENGINE_CONFIG_CHANGED" = 1 ] && pgrep -x dockerd >/dev/null; then
    kill -HUP "$(pgrep -x dockerd | head -1)"
  fi
  for _ in $(seq 1 100); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc-sandbox"' && break
    sleep 0.1
  done
  docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc-sandbox"' \
    || die "dockerd does not list the runsc runtimes after reload; see $DOCKERD_LOG"
  log "runsc runtimes registered"
  [ "$(docker info --format '{{.ExperimentalBuild}}' 2>/dev/null)" = true ] && { log "experimental mode on (snapshots)"; return; }
  local running
  running=$(docker ps -q | wc -l)
  if [ "$running" -gt 0 ] && [ "${JUPYTER_SANDBOX_RESTART_ENGINE:-0}" != 1 ]; then
    log "WARNING: snapshots and forks need the engine's experimental mode, which takes a dockerd restart;"
    log "WARNING: $running container(s) run on it and a restart would stop them, so it was not restarted."
    log "WARNING: when they may stop: JUPYTER_SANDBOX_RESTART_ENGINE=1 bash scripts/setup-host.sh"
    return
  fi
  log "restarting dockerd for experimental mode ($running running container(s) stop)"
  restart_engine
  [ "$(docker info --format '{{.ExperimentalBuild}}' 2>/dev/null)" = true ] || die "dockerd restarted without experimental mode; see $DOCKERD_LOG"
  log "experimental mode on (snapshots)"
}

restart_engine() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
    systemctl restart docker
  else
    local pid
    pid=$(pgrep -x dockerd | head -1)
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop within 30 s"
  fi
  start_engine
}

# The network sandbox-mode sandboxes live on, its resolv.conf and the firewall chains
# (jupyter_sandbox/network.py and firewall.py; the core also does this lazily before a create).
setup_network() {
  log "$(cd "$HERE/.." && python3 -m jupyter_sandbox.network)"
}

install_packages
configure_engine
start_engine
apply_engine_config
setup_network
log "host ready"
