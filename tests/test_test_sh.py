"""scripts/test.sh: says which services it started and how to stop them, stops them itself with
CI=true (whether the tests pass or fail), and exits with pytest's code.

The real script runs in a temporary copy of ``scripts/`` whose ``slurm-up.sh`` and
``slurm-down.sh`` are stand-ins (bringing up a real cluster is tests/test_slurm.py's job), with
stand-in ``id``, ``python`` and ``chromium`` first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_stubs(tmp: Path, uid: int) -> tuple[Path, dict]:
    repo, bin_dir, state = tmp / "repo", tmp / "bin", tmp / "state"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "test.sh", repo / "scripts" / "test.sh")
    (repo / "scripts" / "slurm-up.sh").write_text(
        f'mkdir -p {state}\nprintf "munged 111\\nslurmctld 222\\n" > {state}/started\n')
    (repo / "scripts" / "slurm-down.sh").write_text(f"echo stopped >> {tmp}/down-calls\n")
    bin_dir.mkdir()
    stubs = {
        "id": f"#!/bin/sh\necho {uid}\n",
        "chromium": "#!/bin/sh\nexit 0\n",
        "ruff": "#!/bin/sh\nexit 0\n",
        "snakefmt": "#!/bin/sh\nexit 0\n",
        # pip succeeds; pytest exits with $FAKE_PYTEST_RC
        "python": '#!/bin/sh\n[ "$2" = pytest ] && exit "$FAKE_PYTEST_RC"\nexit 0\n',
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
               GRADLAB_SLURM_STATE_DIR=str(state))
    env.pop("CI", None)
    return repo, env


def run(repo: Path, env: dict, rc: int, ci: bool) -> subprocess.CompletedProcess:
    env = env | {"FAKE_PYTEST_RC": str(rc)} | ({"CI": "true"} if ci else {})
    return subprocess.run(["bash", str(repo / "scripts" / "test.sh")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("rc", [0, 1, 5])
def test_ci_stops_the_cluster_and_keeps_pytest_exit_code(tmp_path, rc):
    repo, env = make_stubs(tmp_path, uid=0)
    res = run(repo, env, rc, ci=True)
    assert res.returncode == rc, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert ("[test.sh] services started: the local SLURM test cluster (scripts/slurm-up.sh): "
            "munged (pid 111), slurmctld (pid 222)") in lines
    assert "[test.sh] CI=true: stopping them with scripts/slurm-down.sh" in lines
    assert (tmp_path / "down-calls").read_text() == "stopped\n"


def test_without_ci_the_cluster_keeps_running_and_the_way_to_stop_it_is_shown(tmp_path):
    repo, env = make_stubs(tmp_path, uid=0)
    res = run(repo, env, 1, ci=False)
    assert res.returncode == 1
    assert res.stdout.splitlines()[-1] == ("[test.sh] they keep running for the next run; stop "
                                           "them with: bash scripts/slurm-down.sh")
    assert "munged (pid 111), slurmctld (pid 222)" in res.stdout
    assert not (tmp_path / "down-calls").exists()


def test_not_root_starts_nothing(tmp_path):
    repo, env = make_stubs(tmp_path, uid=1000)
    res = run(repo, env, 0, ci=True)
    assert res.returncode == 0
    assert res.stdout.splitlines()[-1] == "[test.sh] started no services"
    assert not (tmp_path / "down-calls").exists()
