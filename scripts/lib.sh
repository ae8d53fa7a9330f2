# shellcheck shell=bash
# Shared helpers for the scripts that fetch, build and run Sluice's test infrastructure.
# Sourced, not executed.

# Built tools are cached outside the work tree so a fresh clone on the same machine reuses
# them; runtime state (data dirs, logs, kubeconfig) lives in the git-ignored .cache/.
SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLUICE_TOOLS_CACHE="${SLUICE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
SLUICE_STATE="${SLUICE_STATE:-$SLUICE_ROOT/.cache}"

die() {
  echo "error: $*" >&2
  exit 1
}

log() {
  echo "==> $*" >&2
}

need() {
  # need CMD "what to do when it is missing"
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; $2"
}

port_free() {
  # True when nothing listens on 127.0.0.1:$1.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

require_port_free() {
  port_free "$1" || die "port $1 on 127.0.0.1 is already in use ($2); stop whatever holds it (ss -ltnp 'sport = :$1') or choose another port with $3"
}

pid_alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

read_pid() {
  [ -f "$1" ] && cat "$1" 2>/dev/null || true
}

stop_pidfile() {
  # stop_pidfile FILE NAME: TERM, wait up to 20 s, then KILL.
  local pid
  pid="$(read_pid "$1")"
  if pid_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      pid_alive "$pid" || break
      sleep 0.2
    done
    if pid_alive "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
    fi
    log "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

wait_until() {
  # wait_until SECONDS DESCRIPTION PIDFILE COMMAND...: poll COMMAND until it succeeds.
  local deadline=$((SECONDS + $1)) what="$2" pidfile="$3"
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$(read_pid "$pidfile")"; then
      return 2
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.3
  done
  log "$what is ready"
}
