"""gradlab.check_function on the JAX corpus: every bug flagged in exactly its input, never a
correct backward, in float64 and float32. Truth: jax.jacrev through the custom VJP against
jax.jacrev of the plain forward (no gradlab involved)."""

from __future__ import annotations

import numpy as np
import pytest
from needs import need

import gradlab

#: the corpus's case names (tests/frameworks/jax_corpus.py; pinned against it below), so that
#: collecting these tests does not import jax
NAMES = ["square", "sigmoid", "matmul", "softmax", "logsumexp", "add_bias"]


def corpus():
    """The corpus's cases (imports jax)."""
    need("jax")
    from jax_corpus import CASES

    return {c.name: c for c in CASES}


def truth(case, fn) -> set[str]:
    """Inputs whose Jacobian through the custom VJP differs from JAX's own."""
    jax = need("jax")
    xs = case.inputs(np.float64)
    argnums = tuple(range(len(xs)))
    custom = jax.jacrev(fn, argnums)(*xs)
    plain = jax.jacrev(case.forward, argnums)(*xs)
    return {f"input{k}" for k, (a, b) in enumerate(zip(custom, plain, strict=True))
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12)}


def test_corpus_size_and_every_bug_is_real():
    cases = corpus()
    assert list(cases) == NAMES and len(NAMES) >= 5
    for case in cases.values():
        fns = case.functions()
        assert truth(case, fns["correct"]) == set(), case.name
        for variant, fn in fns.items():
            if variant != "correct":
                assert truth(case, fn), (case.name, variant)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_flags_exactly_the_buggy_inputs(name, dtype):
    case = corpus()[name]
    for variant, fn in case.functions().items():
        xs = case.inputs(getattr(np, dtype))
        assert all(x.dtype == np.dtype(dtype) for x in xs)
        result = gradlab.check_function(fn, xs)
        assert result.engine == "jax-vmap"
        flagged = {b.name for b in result.blocks if b.verdict in ("bug", "shape-mismatch")}
        assert flagged == truth(case, fn), f"{variant}\n{result.table()}"
        assert result.verdict == ("ok" if not flagged else "bug"), variant
