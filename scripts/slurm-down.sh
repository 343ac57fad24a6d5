#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started (read from its state file), newest first.
# Idempotent: fine when nothing runs or the state file is missing. Daemons that
# were already running before slurm-up (not recorded) are left alone.
set -euo pipefail

STATE_DIR=${GRADLAB_SLURM_STATE_DIR:-/run/gradlab-slurm}
STATE_FILE=$STATE_DIR/started

log() { printf '[slurm-down] %s\n' "$*"; }

if [ ! -s "$STATE_FILE" ]; then
    log "nothing recorded in $STATE_FILE; nothing to stop"
    exit 0
fi

pid_alive() {
    [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# reverse order: slurmd, slurmctld, slurmdbd, mariadbd, munged
tac "$STATE_FILE" | while read -r name pid; do
    [ -n "${name:-}" ] || continue
    if ! pid_alive "${pid:-}" "$name"; then
        log "$name (pid ${pid:-?}) not running"
        continue
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do          # up to 30 s (mariadb flushes on shutdown)
        pid_alive "$pid" "$name" || break
        sleep 0.5
    done
    if pid_alive "$pid" "$name"; then
        log "$name (pid $pid) did not exit; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

rm -f "$STATE_FILE"
log "done"
