"""Mutations (gradlab/mutations.py) and the per-model cell cache of the sweep, without Snakemake."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradlab.config import normalise
from gradlab.mutations import (
    FIXED_KINDS,
    KINDS,
    LADDER_KINDS,
    Mutation,
    mutate,
    parse_variant,
    plan,
    reference_gradient,
    variant_name,
)
from gradlab.spec import ModelSpec, build_problem
from gradlab.sweep import CELL_COLUMNS, run_group

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_model.py"


def _grads(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal((4, 1)),
            "W2": rng.standard_normal((2, 4)), "b2": np.zeros((2, 1))}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_each_mutation_has_its_exact_ground_truth(kind, seed):
    grads = _grads(seed)
    size = 1e-5 if kind in LADDER_KINDS else math.nan
    out, truth = mutate(Mutation(kind, size), grads, seed)
    assert len(truth) == 1
    (block, rel), = truth.items()
    assert block != "b2"  # a zero gradient has no relative error to carry
    changed = [n for n in grads if not np.array_equal(grads[n], out[n])]
    assert changed == [block]
    # the truth recomputed here, independently of mutate's own arithmetic
    real = np.linalg.norm(out[block] - grads[block]) / np.linalg.norm(grads[block])
    assert rel == pytest.approx(real, rel=1e-9)
    expected = {"sign": 2.0, "zero": 1.0}.get(kind, size)
    if kind != "transpose":
        assert rel == pytest.approx(expected, rel=1e-6)
    else:
        assert rel > 1e-3
    if kind == "element":
        assert np.count_nonzero(out[block] - grads[block]) == 1
    if kind == "fraction":
        n = grads[block].size
        assert np.count_nonzero(out[block] - grads[block]) == max(1, round(0.1 * n))
    # the same seed draws the same block and the same error
    again, _ = mutate(Mutation(kind, size), grads, seed)
    assert np.array_equal(again[block], out[block])


def test_variant_names_round_trip_and_plan():
    for kind in KINDS:
        m = Mutation(kind, 1e-4 if kind in LADDER_KINDS else math.nan)
        back = parse_variant(variant_name(m))
        assert back.kind == kind and (kind in FIXED_KINDS or back.size == 1e-4)
    assert parse_variant("mut:reference") is None
    with pytest.raises(ValueError):
        parse_variant("seed-bugs")
    assert plan(["scale", "sign"], [1e-2, 1e-6]) == [
        "mut:reference", "mut:scale:1e-02", "mut:scale:1e-06", "mut:sign"]


def test_numerical_reference_is_accurate_and_its_error_bound_holds():
    problem = build_problem(ModelSpec(str(EXAMPLE), seed=3))
    grads, bound = reference_gradient(problem, trusted=False)
    # independent: the complex step at 1e-30 (no subtraction, exact to rounding)
    names = list(problem.params)
    for name in names:
        p = problem.params[name]
        exact = np.empty(p.shape)
        for idx in np.ndindex(p.shape):
            params = {k: v.astype(complex) for k, v in problem.params.items()}
            params[name][idx] += 1e-30j
            exact[idx] = np.imag(problem.cost(params, problem.X, problem.Y)) / 1e-30
        err = np.linalg.norm(grads[name] - exact) / np.linalg.norm(exact)
        assert err <= bound[name] and bound[name] < 1e-10, (name, err, bound[name])


def test_config_round_trips_and_turns_off():
    cfg = normalise({"mutations": {"kinds": "all", "sizes": "ladder", "seeds": "all"}})
    assert cfg["mutations"]["kinds"] == list(KINDS)
    assert cfg["mutations"]["sizes"] == [float(f"1e-{k}") for k in range(1, 10)]
    assert normalise(cfg) == cfg
    off = normalise({"mutations": "none"})
    assert off["mutations"] == {"kinds": [], "seeds": 0, "sizes": []} == normalise(off)[
        "mutations"]
    fixed_only = normalise({"mutations": {"kinds": ["sign", "zero"]}})["mutations"]
    assert fixed_only["sizes"] == []


def _grid(tmp_path: Path, **extra):
    shutil.copy(EXAMPLE, tmp_path / "m.py")
    raw = {"models": [{"kind": "seed-net"},
                      {"name": "mine", "kind": "file", "path": str(tmp_path / "m.py")}],
           "variants": ["correct", "seed-bugs"], "seeds": [0], "epsilons": [1e-6],
           "methods": ["central"], "mutations": {"kinds": ["scale", "sign"], "sizes": [1e-3],
                                                 "seeds": 1}} | extra
    return normalise(raw)


def test_cache_reuses_cells_and_recomputes_only_what_is_new(tmp_path):
    cache = tmp_path / "cache"
    grid = _grid(tmp_path)
    first = run_group(grid, "float64", 0, 1e-6, cache_dir=cache)
    n = len(first["timing"]["seconds"])
    # seed-net: 2 variants + 3 mutation variants; the file: correct + 3
    assert n == (2 + 3) + (1 + 3) and first["computed"] == n and first["reused"] == 0
    again = run_group(grid, "float64", 0, 1e-6, cache_dir=cache)
    assert again["computed"] == 0 and again["reused"] == n
    # the same rows, from the cache (NaN compares equal here)
    assert pd.DataFrame(again["cells"]).equals(pd.DataFrame(first["cells"]))
    more = run_group(_grid(tmp_path, methods=["central", "forward"]), "float64", 0, 1e-6,
                     cache_dir=cache)
    assert more["computed"] == n and more["reused"] == n
    fewer = run_group(grid, "float64", 0, 1e-6, cache_dir=cache)
    assert fewer["computed"] == 0
    # editing the model file invalidates its cells only
    (tmp_path / "m.py").write_text(EXAMPLE.read_text() + "\n# edited\n")
    edited = run_group(grid, "float64", 0, 1e-6, cache_dir=cache)
    assert edited["computed"] == 1 + 3 and edited["reused"] == 2 + 3
    # a damaged cache file is recomputed, never trusted
    for f in cache.rglob("*.json"):
        f.write_text("{not json")
    damaged = run_group(grid, "float64", 0, 1e-6, cache_dir=cache)
    assert damaged["computed"] == n


def test_mutation_rows(tmp_path):
    out = run_group(_grid(tmp_path), "float64", 0, 1e-6)
    cells = pd.DataFrame(out["cells"])
    assert list(cells.columns) == list(CELL_COLUMNS)
    mut = cells[cells["variant"].str.startswith("mut:")]
    ref = mut[mut["variant"] == "mut:reference"]
    assert (ref["expected"] == "ok").all() and not ref["in_truth"].any()
    scaled = mut[mut["variant"] == "mut:scale:1e-03"].drop_duplicates("model")
    assert (scaled["expected"] == "bug").all()
    assert scaled["mutation_size"].to_numpy() == pytest.approx([1e-3, 1e-3])
    # built-in reference: its verified backprop (exact to rounding); the file: measured
    errors = mut.drop_duplicates("model").set_index("model")["reference_error"]
    assert errors["seed-net"] == np.finfo(np.float64).eps and 0 < errors["mine"] < 1e-10
    own = cells[(cells["model"] == "mine") & (cells["variant"] == "correct")]
    assert (own["expected"] == "unknown").all()
    assert cells.loc[cells["status"] == "done", "detection_limit"].gt(0).all()


def test_mutation_cells_of_a_broken_model_file_fail_with_the_reason(tmp_path):
    models = Path(__file__).resolve().parent / "models"
    for name in ("raises.py", "segfault.py"):
        shutil.copy(models / name, tmp_path / name)
    shutil.copy(EXAMPLE, tmp_path / "m.py")
    grid = normalise({"models": [{"name": n.removesuffix(".py"), "kind": "file",
                                  "path": str(tmp_path / n)}
                                 for n in ("raises.py", "segfault.py", "m.py")],
                      "seeds": [0], "epsilons": [1e-6], "methods": ["central"],
                      "limits": {"seconds_per_check": 20}}, load_models=False)
    cells = pd.DataFrame(run_group(grid, "float64", 0, 1e-6)["cells"])
    per = cells.drop_duplicates(["model", "variant"]).set_index(["model", "variant"])
    assert len(per) == 3 * (1 + 1 + 2 * 4 + 1)
    for model, reason in (("raises", "ZeroDivisionError"), ("segfault", "SIGSEGV")):
        mine = per.loc[model]
        assert (mine["status"] == "failed").all(), mine["status"]
        assert mine["error"].str.contains(reason, regex=False).all()
    assert (per.loc["m", "status"] == "done").all()


def test_per_model_localise_reaches_the_check(tmp_path, monkeypatch):
    import importlib

    check_module = importlib.import_module("gradlab.check")  # gradlab.check is also a function
    seen = []
    real = check_module.check_problem

    def spy(problem, **options):
        seen.append(options.get("localise"))
        return real(problem, **options)

    monkeypatch.setattr(check_module, "check_problem", spy)
    grid = normalise({"models": [{"kind": "seed-net", "localise": "none"},
                                 {"name": "m", "kind": "mlp", "localise": "all"}],
                      "variants": ["correct"], "seeds": [0], "epsilons": [1e-6],
                      "methods": ["central"], "mutations": {"kinds": ["sign"], "seeds": 1}})
    out = run_group(grid, "float64", 0, 1e-6)
    models = out["cells"]["model"]
    assert len(seen) == 2 * 3  # correct, reference, sign for each model
    assert seen.count("all") == 3 and seen.count("none") == 3
    assert set(models) == {"seed-net", "m"}


def test_float32_truth_is_what_survives_the_rounding():
    grid = normalise({"models": [{"kind": "seed-net"}], "variants": ["correct"], "seeds": [0],
                      "epsilons": [1e-3], "methods": ["central"], "dtypes": ["float32"],
                      "mutations": {"kinds": ["scale"], "sizes": [1e-2, 1e-9], "seeds": 1}})
    cells = pd.DataFrame(run_group(grid, "float32", 0, 1e-3)["cells"])
    per = cells.drop_duplicates("variant").set_index("variant")
    assert per.loc["mut:reference", "reference_error"] == np.finfo(np.float32).eps
    # 1e-9 is below float32's resolution: nothing changed, so nothing to detect
    assert per.loc["mut:scale:1e-09", "expected"] == "ok"
    assert per.loc["mut:scale:1e-09", "mutation_size"] == 0
    assert per.loc["mut:scale:1e-02", "expected"] == "bug"
    assert per.loc["mut:scale:1e-02", "mutation_size"] == pytest.approx(1e-2, rel=1e-4)
