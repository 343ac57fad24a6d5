"""gradlab.check_function on the torch corpus: every bug flagged in exactly its input, never a
correct backward, in float64 and float32. Truth: full Jacobians of the custom Function against
torch's own autograd of the same forward (no gradlab involved)."""

from __future__ import annotations

import pytest
from needs import need

torch = need("torch")

from torch_corpus import CASES  # noqa: E402

import gradlab  # noqa: E402

RUNS = [(c, v) for c in CASES for v in c.variants]


def truth(case, fn) -> set[str]:
    """Inputs whose Jacobian (through the custom backward) differs from autograd's."""
    xs = case.inputs(torch.float64)
    custom = torch.autograd.functional.jacobian(fn, xs)
    plain = torch.autograd.functional.jacobian(case.forward, xs)
    return {f"input{k}" for k, (a, b) in enumerate(
        zip(custom, plain, strict=True)) if not torch.allclose(a, b, rtol=1e-9, atol=1e-12)}


def test_corpus_size_and_every_bug_is_real():
    assert len(CASES) >= 10
    for case in CASES:
        fns = case.functions()
        assert truth(case, fns["correct"]) == set(), case.name
        assert len(fns) >= 2, case.name
        for variant, fn in fns.items():
            if variant != "correct":
                assert truth(case, fn), (case.name, variant)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "variant"), RUNS, ids=[f"{c.name}-{v}" for c, v in RUNS])
def test_flags_exactly_the_buggy_inputs(case, variant, dtype):
    fn = case.functions()[variant]
    xs = case.inputs(getattr(torch, dtype))
    result = gradlab.check_function(fn, xs)
    flagged = {b.name for b in result.blocks if b.verdict in ("bug", "shape-mismatch")}
    assert flagged == truth(case, fn), result.table()
    assert result.verdict == ("ok" if not flagged else "bug")
    assert all(b.verdict in ("ok", "bug", "shape-mismatch") for b in result.blocks)
