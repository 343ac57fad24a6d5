"""gradlab.check_function on the JAX corpus: every bug flagged in exactly its input, never a
correct backward, in float64 and float32. Truth: jax.jacrev through the custom VJP against
jax.jacrev of the plain forward (no gradlab involved)."""

from __future__ import annotations

import numpy as np
import pytest
from needs import need

jax = need("jax")

from jax_corpus import CASES  # noqa: E402

import gradlab  # noqa: E402

RUNS = [(c, v) for c in CASES for v in c.variants]


def truth(case, fn) -> set[str]:
    """Inputs whose Jacobian through the custom VJP differs from JAX's own."""
    xs = case.inputs(np.float64)
    argnums = tuple(range(len(xs)))
    custom = jax.jacrev(fn, argnums)(*xs)
    plain = jax.jacrev(case.forward, argnums)(*xs)
    return {f"input{k}" for k, (a, b) in enumerate(zip(custom, plain, strict=True))
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12)}


def test_corpus_size_and_every_bug_is_real():
    assert len(CASES) >= 5
    for case in CASES:
        fns = case.functions()
        assert truth(case, fns["correct"]) == set(), case.name
        for variant, fn in fns.items():
            if variant != "correct":
                assert truth(case, fn), (case.name, variant)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "variant"), RUNS, ids=[f"{c.name}-{v}" for c, v in RUNS])
def test_flags_exactly_the_buggy_inputs(case, variant, dtype):
    fn = case.functions()[variant]
    xs = case.inputs(getattr(np, dtype))
    assert all(x.dtype == np.dtype(dtype) for x in xs)
    result = gradlab.check_function(fn, xs)
    assert result.engine == "jax-vmap"
    flagged = {b.name for b in result.blocks if b.verdict in ("bug", "shape-mismatch")}
    assert flagged == truth(case, fn), result.table()
    assert result.verdict == ("ok" if not flagged else "bug")
