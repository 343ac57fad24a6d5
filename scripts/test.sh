#!/usr/bin/env bash
# Install everything gradlab's tests need on a fresh Debian machine, then run the whole suite.
#
#   bash scripts/test.sh [pytest args...]
#
# Without arguments: lint (ruff, snakefmt), the fast tests, then the slow ones.
# - Debian's chromium (the report is checked in a real headless browser)
# - a single-node SLURM with accounting on localhost (scripts/slurm-up.sh), for the cluster test
# - gradlab with its test and slurm extras (pip, editable), torch 2.13.0 (the CPU build) and jax
# Needs root for apt-get and SLURM; without root those steps are skipped and the tests that
# need them skip with a reason (they fail instead when CI=true).
#
# At the end (pass or fail) it says which services it started and how to stop them; with
# CI=true it stops them itself (scripts/slurm-down.sh). The exit code is pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."

SLURM_STATE=${GRADLAB_SLURM_STATE_DIR:-/run/gradlab-slurm}/started
STARTED_SLURM=0

services() {  # the daemons slurm-up.sh recorded as started by it: "munged (pid 12), ..."
    [ -s "$SLURM_STATE" ] || return 0
    awk '{ printf "%s%s (pid %s)", sep, $1, $2; sep = ", " }' "$SLURM_STATE"
}

on_exit() {
    local rc=$?
    trap - EXIT
    if [ "$STARTED_SLURM" = 1 ]; then
        local list
        list=$(services)
        echo "[test.sh] services started: the local SLURM test cluster (scripts/slurm-up.sh):" \
            "${list:-none recorded in $SLURM_STATE}"
        if [ "${CI:-}" = "true" ]; then
            echo "[test.sh] CI=true: stopping them with scripts/slurm-down.sh"
            bash scripts/slurm-down.sh || echo "[test.sh] warning: scripts/slurm-down.sh failed"
        else
            echo "[test.sh] they keep running for the next run; stop them with:" \
                "bash scripts/slurm-down.sh"
        fi
    else
        echo "[test.sh] started no services"
    fi
    exit "$rc"
}
trap on_exit EXIT

if [ "$(id -u)" -eq 0 ]; then
    if ! command -v chromium >/dev/null 2>&1; then
        echo "[test.sh] installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    echo "[test.sh] bringing up the local SLURM test cluster"
    STARTED_SLURM=1  # before: a half-started cluster is reported and stopped too
    bash scripts/slurm-up.sh
else
    echo "[test.sh] not root: skipping chromium and SLURM set-up"
fi

echo "[test.sh] installing gradlab with its test extras"
python -m pip install -q -e ".[test,slurm]"
echo "[test.sh] installing torch (CPU) and jax for the framework tests"
python -m pip install -q "torch==2.13.0"
python -m pip install -q jax jaxlib

echo "[test.sh] lint: ruff check . && snakefmt --check ."
ruff check .
snakefmt --check .

# exit codes are the script's (set -e, then on_exit keeps them)
if [ "$#" -gt 0 ]; then
    echo "[test.sh] running: pytest $*"
    python -m pytest "$@"
else
    echo "[test.sh] running the fast tests, then the slow ones"
    python -m pytest -m "not slow"
    python -m pytest -m slow
fi
