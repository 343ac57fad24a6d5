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
import subprocess
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
_HAS_LIMIT = "detection_limit" in getattr(gradlab.result.BlockResult, "__dataclass_fields__", {})
BLIND = 0.25  # an estimate whose own true error exceeds this x the bug's size cannot see it
NAMED = {"flip": "flip", "transpos": "transpos", "swap": ("swap", "transpos", "permut"),
         "permut": ("permut", "transpos", "swap")}


def _check(c, grads, **kw):
    return gradlab.check(c.module.cost, lambda *_: grads, c.params, c.X, c.Y, **kw)


def _variants(c):
    yield None, None, c.module.gradients(c.params, c.X, c.Y)
    for bug in c.module.BUGS:
        for r in SIZES[c.float32]:
            yield bug, r, c.bug_gradients(bug, r)


def _over_numerical(c, block, grads, approx) -> float:
    """The true error ``||e|| / ||numerical||`` (the unit of ``BlockResult.detection_limit``)."""
    if approx is None:
        return float("nan")
    e = np.linalg.norm(c.truth[block].distance(grads["d" + block]))
    return float(e / max(np.linalg.norm(approx), 1e-300))


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
                        t = c.truth[b.name]
                        est = t.relative_error(res.approx[b.name]) if b.name in res.approx \
                            else float("nan")
                        step = getattr(b, "eps", float("nan"))  # per-block step (new API)
                        if method is None and np.isfinite(step):
                            base["eps"] = step
                        row = dict(base, block=b.name, verdict=b.verdict,
                                   measured=sizes[b.name], est_error=est,
                                   difference=b.difference, threshold=b.threshold,
                                   kink_block=bool(t.kink.any()), n_elements=t.value.size,
                                   diagnosis=b.diagnosis)
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
                        limit = getattr(b, "detection_limit", None)
                        if limit is not None and b.verdict in ("ok", "kink"):
                            err = _over_numerical(c, b.name, grads, res.approx.get(b.name))
                            if not err <= limit:  # the block's own promise broken
                                rows.append(dict(row, kind="over-limit", cause="",
                                                 limit=limit, error=err))
                        if method is None:
                            if sizes[b.name] >= VISIBLE[c.float32]:
                                rows.append(dict(row, kind="miss", cause="defaults"))
                        elif b.verdict in ("inconclusive", "non-finite"):
                            rows.append(dict(row, kind="inconclusive", cause=""))
                        else:  # could this estimate see the bug at all?
                            seen = est < BLIND * sizes[b.name]
                            rows.append(dict(row, kind="miss", cause="estimate could see it"
                                             if seen else "estimate blind"))
                        if bug and r is None and seed == 0 and method is None:
                            rows.append(dict(row, kind="diagnosis", cause=""))
    return rows


def _fmt(x):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "natural"
    return f"{x:.1e}" if isinstance(x, float) else str(x)


def _table(rows, cols):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in cols) + " |")
    return out


def _steps(values) -> str:
    exps = sorted({int(round(-np.log10(v))) for v in values})
    return ",".join(f"1e-{e}" for e in exps)


def _group(rows, keys, extra=None):
    """One row per distinct ``keys``: count, seeds, sizes, steps, and the first row's values."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        first = dict(rs[0])
        first.update(dict(zip(keys, key, strict=True)))
        first["n"] = len(rs)
        first["seeds"] = ",".join(map(str, sorted({r["seed"] for r in rs})))
        first["sizes"] = ",".join(sorted({_fmt(r["size"]) for r in rs}))
        first["steps"] = _steps([r["eps"] for r in rs])
        first["verdicts"] = ",".join(sorted({r["verdict"] for r in rs}))
        first["methods"] = ",".join(sorted({r["method"] for r in rs}))
        if extra:
            first.update(extra(rs))
        out.append(first)
    return out


def _miss_cause(r) -> str:
    if r["kink_block"]:
        return "kink in the block"
    if r["difference"] > r["threshold"]:
        return "above its own threshold: re-check discarded it"
    if r["threshold"] > 10 * r["measured"] / 2:
        return "threshold >10x the bug (noise floor inflated)"
    return "threshold conservative (<10x the bug)"


def _diag_flag(row):
    bug, text = row["bug"], row["diagnosis"]
    if row["verdict"] != "bug":
        return "not flagged"
    for key, words in NAMED.items():
        words = (words,) if isinstance(words, str) else words
        if key in bug and not any(w in text for w in words):
            return f"'{key}' not named"
    if row["n_elements"] == 1 and "scale error" in text:
        return "one-element block called a scale error"
    if "wrong_element" in bug and "elements wrong" not in text:
        return "one wrong element not named"
    return ""


def _version() -> str:
    where = Path(gradlab.__file__).parent
    try:
        out = subprocess.run(["git", "-C", str(where), "log", "-1", "--format=%h", "--", "."],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        out = ""
    return f"{out or 'unknown commit'} ({where})"


def _count_table(rows) -> list[str]:
    lines = ["| method | " + " | ".join(f"1e-{k}" for k in range(1, 13)) + " |",
             "|---|" + "---|" * 12]
    for m in METHODS:
        counts = Counter(int(round(-np.log10(r["eps"]))) for r in rows if r["method"] == m)
        lines.append(f"| {m} | " + " | ".join(str(counts.get(k, 0)) for k in range(1, 13))
                     + " |")
    return lines


def report(rows, seconds, checks) -> str:
    """The survey as markdown, grouped by cause (every row is in the CSV)."""
    fa = [r for r in rows if r["kind"] == "false-alarm"]
    fa_keys = {(r["file"], r["seed"], r["method"], r["eps"], r["block"]) for r in fa}
    miss = [r for r in rows if r["kind"] == "miss"]
    dmiss = [dict(r, why=_miss_cause(r)) for r in miss if r["cause"] == "defaults"]
    seen = [dict(r, why=_miss_cause(r)) for r in miss if r["cause"] == "estimate could see it"]
    blind = [r for r in miss if r["cause"] == "estimate blind"]
    wrong = [r for r in rows if r["kind"] == "wrong-block"
             and (r["file"], r["seed"], r["method"], r["eps"], r["block"]) not in fa_keys]
    over = [r for r in rows if r["kind"] == "over-limit"]
    inconclusive = [r for r in rows if r["kind"] == "inconclusive"]
    diag = [dict(r, flag=_diag_flag(r)) for r in rows if r["kind"] == "diagnosis"]
    bad_diag = [r for r in diag if r["flag"]]
    lines = [f"# gradlab on the model-family corpus ({len(model_names())} files)", "",
             f"{checks} checks in {seconds:.0f} s (`python tests/corpus/survey.py`) on gradlab "
             f"{_version()}; every row in the CSV. Sizes are true relative errors per block "
             "against the long-double truth (0 inside a kink's one-sided interval); grouped "
             "rows show the values of their first occurrence.", "",
             "| finding | block verdicts |", "|---|---|",
             f"| false alarms, defaults (seeds 0-9) | "
             f"{sum(r['method'] == 'default' for r in fa)} |",
             f"| false alarms, methods x steps (seeds 0-2) | "
             f"{sum(r['method'] != 'default' for r in fa)} |",
             f"| missed, defaults, size >= 1e-6 (f64) / 1e-2 (f32) | {len(dmiss)} |",
             f"| missed in the grid although the estimate could see the bug | {len(seen)} |",
             f"| 'ok'/'kink' in the grid where the estimate was blind (needs inconclusive / "
             f"detection_limit) | {len(blind)} |",
             f"| 'ok'/'kink' on a bugged block whose true error exceeds its detection_limit | "
             f"{len(over) if _HAS_LIMIT else 'n/a (no BlockResult.detection_limit)'} |",
             f"| bugged blocks called 'inconclusive' in the grid | {len(inconclusive)} |",
             f"| bug flagged in an untouched block (beyond the false alarms) | {len(wrong)} |",
             f"| natural-size bugs with a wrong or vague diagnosis | {len(bad_diag)} of "
             f"{len(diag)} |", ""]
    lines += ["## 1. False alarms on correct models", ""]
    lines += _table(_group(fa, ["cause", "method", "file", "block"]),
                    ["cause", "method", "file", "block", "n", "steps", "seeds", "difference",
                     "threshold", "diagnosis"]) + [""]
    lines += ["## 2. Missed bugs at default settings", ""]
    lines += _table(_group(dmiss, ["why", "file", "bug", "block"]),
                    ["why", "file", "bug", "block", "n", "sizes", "seeds", "verdicts", "eps",
                     "measured", "difference", "threshold"]) + [""]
    lines += ["## 3. Grid misses the estimate could see (its true error < "
              f"{BLIND} x the bug's size)", ""]
    sub = (("3a. Above the block's own threshold, yet ok/kink (the re-check discarded it)",
            "above its own threshold: re-check discarded it", ["file", "bug", "block", "method"]),
           ("3b. A real error at a kink block accepted as 'kink'/'ok'", "kink in the block",
            ["file", "bug", "block"]),
           ("3c. Threshold more than 10x the bug although the estimate was 4x better than it",
            "threshold >10x the bug (noise floor inflated)", ["file"]))
    for title, why, keys in sub:
        part = [r for r in seen if r["why"] == why]
        lines += [f"### {title}: {len(part)}", ""]
        lines += _table(_group(part, keys),
                        [*keys, "n", "methods", "steps", "sizes", "verdicts", "measured",
                         "est_error", "difference", "threshold"]) + [""]
    part = [r for r in seen if r["why"] == "threshold conservative (<10x the bug)"]
    lines += [f"### 3d. Threshold within 10x of the bug (the safety margin): {len(part)}", ""]
    lines += _count_table(part) + [""]
    lines += ["## 4. 'ok'/'kink' where the estimate was blind (count per method and step)", ""]
    lines += _count_table(blind)
    lines += ["", "## 5. Bugs flagged in a block they do not touch (not already a false "
              "alarm of the correct model)", ""]
    lines += _table(_group(wrong, ["cause", "method", "file", "bug", "block"]),
                    ["cause", "method", "file", "bug", "block", "n", "steps", "seeds",
                     "diagnosis"]) + [""]
    lines += ["## 6. Diagnoses of natural-size bugs that are wrong or vague (defaults, seed 0)",
              ""]
    lines += _table(bad_diag, ["file", "bug", "block", "verdict", "flag", "diagnosis"]) + [""]
    lines += ["## 7. 'ok'/'kink' above the block's own detection_limit (new API)", ""]
    lines += _table(_group(over, ["method", "file", "bug", "block"]),
                    ["method", "file", "bug", "block", "n", "steps", "sizes", "verdicts",
                     "error", "limit", "difference", "threshold"]) + [""]
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
