"""Section 2 and the element-by-element case: the sweep's worked examples, read from its tables.

The sweep computes them (:mod:`gradlab.examples`, ``gradlab sweep-examples``): the seed
exercise's three numbers, the buggy seed net's blocks and the difference-vs-eps curve of the
threshold trap (``seed*.parquet``), and one flagged cell recomputed element by element
(``case.parquet``). Here they are only turned into what the template and the figures show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..vocab import eps_label
from .data import Tables
from .sections import fmt_sci

__all__ = ["SeedSection", "seed_section", "case_section"]


@dataclass
class SeedSection:
    """Everything section 2 shows."""

    rows: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    truth: set[str]
    trap_eps: list[float] = field(default_factory=list)
    trap_correct: list[float] = field(default_factory=list)
    trap_buggy: list[float] = field(default_factory=list)
    trap_threshold: list[float] = field(default_factory=list)


def seed_section(t: Tables) -> SeedSection | None:
    """Section 2 from ``seed.parquet``, ``seed_blocks.parquet`` and ``seed_trap.parquet``;
    ``None`` when one of them is missing."""
    if t.seed is None or t.seed_blocks is None or t.seed_trap is None:
        return None
    rows = [{"case": r["case"], "published": r["published"], "gradlab": r["difference"],
             "agrees": bool(r["agrees"]), "seed_verdict": r["seed_verdict"],
             "gradlab_verdict": r["verdict"], "gradlab_threshold": r["threshold"],
             "expected": r["expected"]} for r in t.seed.to_dict("records")]
    blocks = [{"name": r["block"], "difference": r["difference"], "threshold": r["threshold"],
               "verdict": r["verdict"], "diagnosis": r["diagnosis"]}
              for r in t.seed_blocks.to_dict("records")]
    truth = set(t.seed_blocks.loc[t.seed_blocks["in_truth"].astype(bool), "block"])
    trap = t.seed_trap
    return SeedSection(rows, blocks, truth, [float(e) for e in trap["eps"]],
                       list(trap["correct"]), list(trap["buggy"]), list(trap["threshold"]))


def case_section(case: pd.DataFrame | None) -> tuple[dict[str, Any], list[tuple]]:
    """The case shown element by element, from ``case.parquet``.

    Returns:
        ``(case, failing)``: what the template shows (``error`` set when the sweep could not
        recompute it or the table is missing), and ``(block, grad, approx)`` of each failing
        block for the heatmap figure.
    """
    if case is None or case.empty:
        return {"model": "", "variant": "", "method": "", "eps": "", "seed": "", "dtype": "",
                "in_sweep": True, "agreement": "", "blocks": [], "truth": "",
                "error": "case.parquet is missing (run gradlab sweep-examples)"}, []
    head = case.iloc[0]
    out = {"model": head["model"], "dtype": head["dtype"], "variant": head["variant"],
           "method": head["method"], "seed": int(head["seed"]), "eps": eps_label(head["eps"]),
           "in_sweep": bool(head["in_sweep"]), "agreement": head["agreement"],
           "error": head["error"], "blocks": [], "truth": "",
           "title": f"{head['model']}, variant {head['variant']}, {head['method_used']}, "
                    f"eps {eps_label(head['eps'])}, seed {int(head['seed'])}"}
    if out["error"]:
        return out, []
    truth = case[case["in_truth"].astype(bool)]
    out["truth"] = ", ".join(f"{b} (relative change {fmt_sci(v)})"
                             for b, v in zip(truth["block"], truth["truth_change"], strict=True))
    out["blocks"] = [{"name": r["block"], "verdict": r["block_verdict"],
                      "diagnosis": r["diagnosis"], "difference": r["difference"],
                      "in_truth": bool(r["in_truth"])}
                     for r in case.to_dict("records") if r["block_verdict"] != "ok"]
    failing = [(r["block"], np.asarray(r["grad"], float).reshape(tuple(r["grad_shape"])),
                np.asarray(r["approx"], float).reshape(tuple(r["shape"])))
               for r in case.to_dict("records") if r["failing"]]
    return out, failing
