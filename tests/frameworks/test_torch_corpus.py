"""gradlab.check_function on the torch corpus: every bug flagged in exactly its input, never a
correct backward, in float64 and float32. Truth: full Jacobians of the custom Function against
torch's own autograd of the same forward (no gradlab involved)."""

from __future__ import annotations

import pytest
from needs import need

import gradlab

#: the corpus's case names (tests/frameworks/torch_corpus.py; pinned against it below), so that
#: collecting these tests does not import torch
NAMES = ["square", "sigmoid", "tanh", "matmul", "add_bias", "softmax", "logsumexp", "mul",
         "norm", "mse", "cumsum", "scale_exp", "log"]


def corpus():
    """The corpus's cases (imports torch)."""
    need("torch")
    from torch_corpus import CASES

    return {c.name: c for c in CASES}


def truth(case, fn) -> set[str]:
    """Inputs whose Jacobian (through the custom backward) differs from autograd's."""
    torch = need("torch")
    xs = case.inputs(torch.float64)
    custom = torch.autograd.functional.jacobian(fn, xs)
    plain = torch.autograd.functional.jacobian(case.forward, xs)
    return {f"input{k}" for k, (a, b) in enumerate(
        zip(custom, plain, strict=True)) if not torch.allclose(a, b, rtol=1e-9, atol=1e-12)}


def test_corpus_size_and_every_bug_is_real():
    cases = corpus()
    assert list(cases) == NAMES and len(NAMES) >= 10
    for case in cases.values():
        fns = case.functions()
        assert truth(case, fns["correct"]) == set(), case.name
        assert len(fns) >= 2, case.name
        for variant, fn in fns.items():
            if variant != "correct":
                assert truth(case, fn), (case.name, variant)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_flags_exactly_the_buggy_inputs(name, dtype):
    torch = need("torch")
    case = corpus()[name]
    for variant, fn in case.functions().items():
        xs = case.inputs(getattr(torch, dtype))
        result = gradlab.check_function(fn, xs)
        flagged = {b.name for b in result.blocks if b.verdict in ("bug", "shape-mismatch")}
        assert flagged == truth(case, fn), f"{variant}\n{result.table()}"
        assert result.verdict == ("ok" if not flagged else "bug"), variant
        assert all(b.verdict in ("ok", "bug", "shape-mismatch") for b in result.blocks)
