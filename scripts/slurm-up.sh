#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on localhost (for tests / CI).
#
#   munged -> mariadbd -> slurmdbd -> (sacctmgr: cluster) -> slurmctld -> slurmd
#
# Debian bookworm packages, no systemd: every daemon is started directly.
# Idempotent: daemons already running are left alone; only what this script
# starts is recorded in $STATE_FILE, which scripts/slurm-down.sh reads.
#
# Result: partition `debug` (Default=YES), node `hostname -s`, account
# `gradlab` with user root (and $SUDO_USER / the calling user if not root),
# accounting through slurmdbd + MariaDB so that `sacct` works (needed by
# snakemake-executor-plugin-slurm).
#
# Env overrides: GRADLAB_SLURM_STATE_DIR, GRADLAB_SLURM_MEM_HEADROOM_MB,
#                GRADLAB_SLURM_TIMEOUT (seconds per wait, default 60).
set -euo pipefail

STATE_DIR=${GRADLAB_SLURM_STATE_DIR:-/run/gradlab-slurm}
STATE_FILE=$STATE_DIR/started
TIMEOUT=${GRADLAB_SLURM_TIMEOUT:-60}
CLUSTER=gradlab
ACCOUNT=gradlab
PARTITION=debug
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=gradlab-slurmdbd   # local-only test cluster; mariadb listens on the socket/localhost
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

log() { printf '[slurm-up] %s\n' "$*"; }
die() { printf '[slurm-up] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# wait_for SECONDS DESCRIPTION CMD... : poll CMD until it succeeds
# (DESCRIPTION only documents the call site).
wait_for() {
    local secs=$1; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# pid_alive PID NAME : PID runs and its command name is NAME (guards PID reuse).
pid_alive() {
    local pid=$1 name=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# running NAME PIDFILE : echo the daemon's pid if it is running.
running() {
    local name=$1 pidfile=$2 pid
    if [ -r "$pidfile" ]; then
        pid=$(tr -dc '0-9' <"$pidfile")
        if pid_alive "$pid" "$name"; then echo "$pid"; return 0; fi
    fi
    # no (valid) pid file: look for the process by exact name
    pid=$(pgrep -x "$name" | head -n1 || true)
    [ -n "$pid" ] && { echo "$pid"; return 0; }
    return 1
}

record() { mkdir -p "$STATE_DIR"; echo "$1 $2" >>"$STATE_FILE"; }

# stop_if_ours NAME : stop a daemon recorded in the state file (used on config change).
stop_if_ours() {
    local name=$1 pid
    [ -r "$STATE_FILE" ] || return 0
    pid=$(awk -v n="$name" '$1 == n { p = $2 } END { print p }' "$STATE_FILE")
    if pid_alive "$pid" "$name"; then
        log "config changed: restarting $name (pid $pid)"
        kill "$pid"
        wait_for 30 "$name exit" bash -c "! [ -e /proc/$pid ]" || kill -9 "$pid" 2>/dev/null || true
    fi
    sed -i "/^$name /d" "$STATE_FILE"
}

# install_file SRC DEST MODE OWNER : install if content differs; return 0 if changed.
install_file() {
    local src=$1 dest=$2 mode=$3 owner=$4
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        chmod "$mode" "$dest"; chown "$owner" "$dest"; rm -f "$src"; return 1
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest"
    rm -f "$src"
    return 0
}

# ---------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    # keep package scripts from starting services: we start them ourselves
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$made_policy" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
else
    log "packages present"
fi

# ---------------------------------------------------------------- config
HOST=$(hostname -s)
CPUS=$(nproc --all)
MEM_MB=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
# leave headroom for the OS, mariadb and the daemons: 10%, at least 512 MB
HEADROOM_MB=${GRADLAB_SLURM_MEM_HEADROOM_MB:-$(( MEM_MB / 10 > 512 ? MEM_MB / 10 : 512 ))}
REAL_MB=$((MEM_MB - HEADROOM_MB))
[ "$REAL_MB" -gt 0 ] || REAL_MB=$MEM_MB

mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd "$STATE_DIR"
chown slurm:slurm /var/log/slurm /var/lib/slurm /var/lib/slurm/slurmctld

tmp=$(mktemp)
cat >"$tmp" <<EOF
# Written by gradlab scripts/slurm-up.sh -- single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
MpiDefault=none
MailProg=/bin/true
# no cgroup/systemd in this environment
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# accounting through slurmdbd: sacct must work for snakemake-executor-plugin-slurm
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
# short scheduling/cleanup latencies for a test cluster
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MessageTimeout=10
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurm_conf_changed=0
install_file "$tmp" /etc/slurm/slurm.conf 644 root:root && slurm_conf_changed=1

tmp=$(mktemp)
cat >"$tmp" <<EOF
# Written by gradlab scripts/slurm-up.sh -- single-node test cluster.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
dbd_conf_changed=0
install_file "$tmp" /etc/slurm/slurmdbd.conf 600 slurm:slurm && dbd_conf_changed=1

if [ "$slurm_conf_changed" -eq 1 ]; then
    log "wrote /etc/slurm/slurm.conf (node $HOST, CPUs=$CPUS, RealMemory=$REAL_MB)"
    stop_if_ours slurmd; stop_if_ours slurmctld
fi
if [ "$dbd_conf_changed" -eq 1 ]; then
    log "wrote /etc/slurm/slurmdbd.conf"
    stop_if_ours slurmdbd
fi

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge

if pid=$(running munged /run/munge/munged.pid); then
    log "munged already running (pid $pid)"
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    wait_for "$TIMEOUT" munge bash -c 'munge -n | unmunge' || die "munged did not come up"
    record munged "$(running munged /run/munge/munged.pid)"
fi

# ---------------------------------------------------------------- mariadb
mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
if mysqladmin --protocol=socket ping >/dev/null 2>&1; then
    log "mariadb already running"
else
    if [ ! -d /var/lib/mysql/mysql ]; then
        log "initialising mariadb data dir"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    log "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --bind-address=127.0.0.1 >>/var/log/slurm/mariadb.log 2>&1 </dev/null &
    wait_for "$TIMEOUT" mariadb mysqladmin --protocol=socket ping || die "mariadbd did not come up (see /var/log/slurm/mariadb.log)"
    record mariadbd "$(running mariadbd /run/mysqld/mysqld.pid)"
fi
# root connects through unix_socket auth on Debian
mysql --protocol=socket <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF

# ---------------------------------------------------------------- slurmdbd
if pid=$(running slurmdbd /run/slurmdbd.pid); then
    log "slurmdbd already running (pid $pid)"
else
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
    wait_for "$TIMEOUT" slurmdbd sacctmgr -n show cluster \
        || die "slurmdbd did not answer (see /var/log/slurm/slurmdbd.log)"
    record slurmdbd "$(running slurmdbd /run/slurmdbd.pid)"
fi

# cluster must exist in the database before slurmctld registers
if [ -z "$(sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]; then
    log "adding cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# ---------------------------------------------------------------- slurmctld
if pid=$(running slurmctld /run/slurmctld.pid); then
    log "slurmctld already running (pid $pid)"
else
    log "starting slurmctld"
    /usr/sbin/slurmctld
    wait_for "$TIMEOUT" slurmctld scontrol ping || die "slurmctld did not come up (see /var/log/slurm/slurmctld.log)"
    record slurmctld "$(running slurmctld /run/slurmctld.pid)"
fi

# ---------------------------------------------------------------- slurmd
if pid=$(running slurmd /run/slurmd.pid); then
    log "slurmd already running (pid $pid)"
else
    log "starting slurmd"
    /usr/sbin/slurmd
    wait_for "$TIMEOUT" slurmd test -s /run/slurmd.pid || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
    record slurmd "$(running slurmd /run/slurmd.pid)"
fi

# ---------------------------------------------------------------- node idle
node_state() { sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1; }
node_ready() { case "$(node_state)" in idle|mix|alloc) return 0 ;; *) return 1 ;; esac; }
if ! node_ready; then
    log "waiting for node $HOST"
    end=$((SECONDS + TIMEOUT))
    until node_ready; do
        case "$(node_state)" in
            drain*|down|drng) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
        esac
        [ "$SECONDS" -lt "$end" ] || die "node $HOST not idle (state: $(node_state)); see /var/log/slurm/slurmd.log"
        sleep 0.5
    done
fi

# ---------------------------------------------------------------- account / users
if [ -z "$(sacctmgr -n -P show account "$ACCOUNT" format=account)" ]; then
    log "adding account $ACCOUNT"
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=gradlab organization=gradlab >/dev/null
fi
users=(root)
[ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && users+=("$SUDO_USER")
for u in "${users[@]}"; do
    if [ -z "$(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$u" format=user)" ]; then
        log "adding user $u to account $ACCOUNT"
        sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
done

log "ready: node $HOST $(node_state), partition $PARTITION, account $ACCOUNT (state: $STATE_FILE)"
