"""Run the corpus against the installed gradlab and list where its verdicts are wrong.

``python tests/corpus/survey.py [--quick] [--out FILE.md] [--csv FILE.csv]``

Part 1, default settings (``gradlab.check`` defaults), seeds 0-9: false alarms on the correct
gradients, bugs not flagged in a block whose true relative size the defaults should see
(>= 1e-6 float64, >= 1e-2 float32), blocks flagged that the bug does not touch, and the
diagnosis of every natural-size bug (seed 0). Part 2, every method x steps 1e-1 ... 1e-12,
seeds 0-2: false alarms, and "ok"/"kink" verdicts on bugged blocks, split into misses above the
block's own threshold (the verdict logic threw away a visible error) and misses below it (the
settings cannot see the bug but the verdict says "ok", not "inconclusive").
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _truth import case, model_names  # noqa: E402

import gradlab  # noqa: E402

METHODS = ("forward", "central", "five-point", "complex-step")
STEPS = tuple(10.0**-k for k in range(1, 13))
VISIBLE = {False: 0.9e-6, True: 0.9e-2}  # default settings must see this (float64, float32)
SIZES = {False: (None, 1e-1, 1e-3, 1e-6), True: (None, 1e-1, 1e-2)}
NAMED = {"flip": "flip", "transpos": "transpos", "swap": ("swap", "transpos", "permut"),
         "permut": ("permut", "transpos", "swap")}


def _true_difference(size: float) -> float:
    """The seed's metric ||g - a|| / (||g|| + ||a||) of an error of relative size ``size``."""
    return size / (2 + size)


def _check(c, grads, **kw):
    return gradlab.check(c.module.cost, lambda *_: grads, c.params, c.X, c.Y, **kw)


def _variants(c):
    yield None, None, c.module.gradients(c.params, c.X, c.Y)
    for bug in c.module.BUGS:
        for r in SIZES[c.float32]:
            yield bug, r, c.bug_gradients(bug, r)


def _fa_cause(c, block, method, eps):
    kinks = {b for b, t in c.truth.items() if t.kink.any()}
    if block in kinks:
        return "forward difference at a kink" if method == "forward" else "kink in the block"
    if kinks:
        return "kink elsewhere in the model"
    if eps is not None and eps >= 1e-2:
        return "truncation (large step)"
    if eps is not None and eps <= 1e-9:
        return "round-off (tiny step)"
    return "float32" if c.float32 else "other"


def survey(seeds_default, seeds_grid, methods, steps):
    """All rows: dicts with a ``kind`` (false-alarm, miss, wrong-block, diagnosis)."""
    rows = []
    settings = [(None, None, seeds_default)] + [(m, e, seeds_grid) for m in methods for e in steps]
    for name in model_names():
        for method, eps, seeds in settings:
            kw = {} if method is None else {"method": method, "eps": eps}
            for seed in seeds:
                c = case(name, seed)
                fam = c.module.FAMILY
                for bug, r, grads in _variants(c):
                    res = _check(c, grads, **kw)
                    sizes = c.sizes(grads)
                    declared = c.module.BUGS[bug][0] if bug else []
                    base = dict(family=fam, file=name, seed=seed, method=method or "default",
                                eps=eps if eps else res.eps, bug=bug or "", size=r)
                    for b in res.blocks:
                        row = dict(base, block=b.name, verdict=b.verdict,
                                   measured=sizes[b.name], difference=b.difference,
                                   threshold=b.threshold, diagnosis=b.diagnosis)
                        if b.verdict in ("bug", "shape-mismatch"):
                            if bug is None:
                                rows.append(dict(row, kind="false-alarm",
                                                 cause=_fa_cause(c, b.name, method, eps)))
                            elif b.name not in declared:
                                rows.append(dict(row, kind="wrong-block",
                                                 cause=_fa_cause(c, b.name, method, eps)))
                            if bug and r is None and seed == 0 and method is None:
                                rows.append(dict(row, kind="diagnosis", cause=""))
                            continue
                        if b.name not in declared or sizes[b.name] == 0:
                            continue
                        above = _true_difference(sizes[b.name]) > b.threshold
                        if method is None:
                            if sizes[b.name] >= VISIBLE[c.float32]:
                                rows.append(dict(row, kind="miss", cause="defaults"))
                        else:
                            rows.append(dict(row, kind="miss", cause="above own threshold"
                                             if above else "below own threshold"))
                        if bug and r is None and seed == 0 and method is None:
                            rows.append(dict(row, kind="diagnosis", cause=""))
    return rows


def _fmt(x):
    if x is None:
        return "natural"
    return f"{x:.1e}" if isinstance(x, float) else str(x)


def _table(rows, cols):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in cols) + " |")
    return out


def _diag_flag(row):
    bug, text = row["bug"], row["diagnosis"]
    for key, words in NAMED.items():
        words = (words,) if isinstance(words, str) else words
        if key in bug and not any(w in text for w in words):
            return f"'{key}' not named"
    if "wrong_element" in bug and "scale error" in text:
        return "one wrong element called a scale error"
    if row["verdict"] != "bug":
        return "not flagged"
    return ""


def report(rows, seconds, checks) -> str:
    """The survey as markdown."""
    lines = [f"# gradlab on the model-family corpus ({len(model_names())} files)", "",
             f"{checks} checks in {seconds:.0f} s; gradlab from {Path(gradlab.__file__).parent}",
             ""]
    fa = [r for r in rows if r["kind"] == "false-alarm"]
    for title, sel in (("default settings (seeds 0-9)", lambda r: r["method"] == "default"),
                       ("all methods x steps (seeds 0-2)", lambda r: r["method"] != "default")):
        part = [r for r in fa if sel(r)]
        lines += [f"## False alarms, {title}: {len(part)} block verdicts", ""]
        by = Counter((r["cause"], r["method"], r["eps"]) for r in part)
        lines += ["| cause | method | eps | blocks |", "|---|---|---|---|"]
        lines += [f"| {c} | {m} | {e:.0e} | {n} |" for (c, m, e), n in sorted(by.items())]
        lines += ["", "Examples (first per cause and file):", ""]
        seen, ex = set(), []
        for r in part:
            if (r["cause"], r["file"]) not in seen:
                seen.add((r["cause"], r["file"]))
                ex.append(r)
        lines += _table(ex, ["cause", "family", "file", "seed", "method", "eps", "block",
                             "difference", "threshold", "diagnosis"]) + [""]
    miss = [r for r in rows if r["kind"] == "miss"]
    dmiss = [r for r in miss if r["cause"] == "defaults"]
    lines += [f"## Missed bugs, default settings: {len(dmiss)} blocks "
              "(true size >= 1e-6 float64, >= 1e-2 float32)", ""]
    lines += _table(dmiss, ["family", "file", "bug", "size", "seed", "eps", "block", "verdict",
                            "measured", "difference", "threshold"]) + [""]
    for cause in ("above own threshold", "below own threshold"):
        part = [r for r in miss if r["cause"] == cause]
        lines += [f"## Grid misses {cause}: {len(part)} block verdicts ok/kink", ""]
        by = Counter((r["method"], r["eps"]) for r in part)
        lines += ["| method | eps | blocks |", "|---|---|---|"]
        lines += [f"| {m} | {e:.0e} | {n} |" for (m, e), n in sorted(by.items())]
        if cause == "above own threshold":
            lines += ["", "Detail:", ""]
            lines += _table(part, ["family", "file", "bug", "size", "seed", "method", "eps",
                                   "block", "verdict", "measured", "difference", "threshold",
                                   "diagnosis"])
        lines.append("")
    wrong = [r for r in rows if r["kind"] == "wrong-block"]
    lines += [f"## Bug flagged in a block it does not touch: {len(wrong)}", ""]
    lines += _table(wrong, ["cause", "file", "bug", "size", "seed", "method", "eps", "block",
                            "difference", "threshold", "diagnosis"]) + [""]
    diag = [dict(r, flag=_diag_flag(r)) for r in rows if r["kind"] == "diagnosis"]
    lines += ["## Diagnoses of natural-size bugs (default settings, seed 0)", ""]
    lines += _table(diag, ["file", "bug", "block", "verdict", "flag", "diagnosis"]) + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the survey; write markdown (and optionally every row as CSV)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seed 0 only, central and forward")
    ap.add_argument("--out", default="/work/notes/corpus-survey.md")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args(argv)
    np.seterr(all="ignore")
    started = time.perf_counter()
    if args.quick:
        rows = survey([0], [0], ("forward", "central"), STEPS[::3])
    else:
        rows = survey(range(10), range(3), METHODS, STEPS)
    checks = _count_checks(args.quick)
    text = report(rows, time.perf_counter() - started, checks)
    Path(args.out).write_text(text + "\n")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            keys = sorted({k for r in rows for k in r})
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {args.out}: {len(rows)} rows, {checks} checks")
    return 0


def _count_checks(quick: bool) -> int:
    n = 0
    for name in model_names():
        c = case(name, 0)
        variants = 1 + len(c.module.BUGS) * len(SIZES[c.float32])
        n += variants * ((1 + 2 * 4) if quick else (10 + 3 * len(METHODS) * len(STEPS)))
    return n


if __name__ == "__main__":
    sys.exit(main())
