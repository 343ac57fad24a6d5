"""Make a large sweep's group files by replicating real ones under new seeds (for benchmarks).

Reads every group file given (through :func:`gradlab.sweep.read_group`, whatever the layout)
and writes ``copies`` copies of each under ``OUT/copyK/<its path relative to --root>`` with
every seed shifted by ``K x (largest seed + 1)``, so the copies are a realistic grid of
``copies x`` the cells. Prints the config (JSON) whose grid they fill::

    python benchmarks/replicate_groups.py --root results/cells --copies 38 --out /tmp/big \\
        --config config/config.yaml results/cells/float64/*.json > /tmp/big/config.json
    gradlab sweep-aggregate --config-json "$(cat /tmp/big/config.json)" \\
        --out-dir /tmp/big/tables $(find /tmp/big -name '*.json' -path '*copy*')
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradlab.config import normalise
from gradlab.sweep import read_group, write_group
from gradlab.sweep_cli import load_config_file


def main() -> None:
    """Parse the arguments, write the copies, print the config."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="folder the group files' paths are taken from")
    p.add_argument("--copies", type=int, required=True, help="copies of every group file")
    p.add_argument("--out", required=True, help="folder to write the copies into")
    p.add_argument("--config", required=True, help="the config the group files were made with")
    p.add_argument("groups", nargs="+", help="group files")
    args = p.parse_args()
    cfg = normalise(load_config_file(args.config), load_models=False)
    step = max(cfg["seeds"]) + 1
    root, out = Path(args.root).resolve(), Path(args.out)
    for f in args.groups:
        data = read_group(f)
        rel = Path(f).resolve().relative_to(root)
        for k in range(args.copies):
            shift = k * step
            copy = dict(data, seed=int(data["seed"]) + shift)
            for part in ("cells", "timing"):
                copy[part] = dict(data[part], seed=[s + shift for s in data[part]["seed"]])
            write_group(out / f"copy{k:04d}" / rel, copy)
    cfg["seeds"] = [s + k * step for k in range(args.copies) for s in cfg["seeds"]]
    print(json.dumps(cfg))


if __name__ == "__main__":
    main()
