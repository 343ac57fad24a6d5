#!/usr/bin/env bash
# Install everything gradlab's tests need on a fresh Debian machine, then run the whole suite.
#
#   bash scripts/test.sh [pytest args...]
#
# - Debian's chromium (the report is checked in a real headless browser)
# - a single-node SLURM with accounting on localhost (scripts/slurm-up.sh), for the cluster test
# - gradlab with its test and slurm extras (pip, editable), torch 2.13.0 (the CPU build) and jax
# Needs root for apt-get and SLURM; without root those steps are skipped and the tests that
# need them skip with a reason (they fail instead when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    if ! command -v chromium >/dev/null 2>&1; then
        echo "[test.sh] installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    echo "[test.sh] bringing up the local SLURM test cluster"
    bash scripts/slurm-up.sh
else
    echo "[test.sh] not root: skipping chromium and SLURM set-up"
fi

echo "[test.sh] installing gradlab with its test extras"
python -m pip install -q -e ".[test,slurm]"
echo "[test.sh] installing torch (CPU) and jax for the framework tests"
python -m pip install -q "torch==2.13.0"
python -m pip install -q jax jaxlib

echo "[test.sh] running the tests"
exec python -m pytest "$@"
