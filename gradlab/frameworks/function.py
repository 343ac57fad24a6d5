"""``check_function``: a gradcheck-style check of a torch or JAX function's backward.

``fn`` maps one or several tensors to a tensor (or a tuple of tensors) of any shape. Its backward
is exercised the way a training loop does: a vector-Jacobian product with a cotangent ``c``
(``torch.autograd.grad(out, inputs, grad_outputs=c)``, ``jax.vjp``), which gradlab compares with
finite differences of the scalar ``c . fn(inputs)``, per input (the blocks) and per element.

A scalar output needs one cotangent (1). For a non-scalar output, random Gaussian cotangents:
a wrong VJP ``J_bad^T`` differs from ``J^T`` in some element by ``e^T c``, a Gaussian with the
size ``||e||`` of that element's error; one cotangent makes it smaller than a tenth of that
size with probability ``P(|z| < 0.1) = 0.080``, so ``k`` cotangents miss a bug element whose
error is at least ten times the detection limit with probability ``0.080**k`` at most:
``power=0.999`` gives 3 cotangents. ``jacobian=True`` uses every output basis vector instead
(the full Jacobian, one cotangent per output element).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..check import check_problem
from ..errors import UsageError
from ..models.byo import _guard
from ..result import BlockResult, CheckResult
from . import adapter, detect, framework_of, framework_problem

__all__ = ["check_function", "assert_function_gradients", "cotangents_for", "MISS_ONE"]

#: P(|z| < 0.1) for a standard normal z: one random cotangent hides an error element this often
MISS_ONE = math.erf(0.1 / math.sqrt(2))
_RANK = {"bug": 4, "shape-mismatch": 4, "non-finite": 3, "kink": 2, "ok": 1}


def cotangents_for(power: float) -> int:
    """Random cotangents needed to catch a bug element (error >= 10x the detection limit)
    with probability ``power``.

    Raises:
        UsageError: power not in (0, 1).
    """
    if not 0 < power < 1:
        raise UsageError(f"power must be between 0 and 1 (exclusive), got {power!r}")
    return max(1, math.ceil(math.log(1 - power) / math.log(MISS_ONE)))


def _named_inputs(inputs: Any) -> dict[str, Any]:
    if isinstance(inputs, Mapping):
        return {str(k): v for k, v in inputs.items()}
    if isinstance(inputs, Sequence) and not framework_of(inputs):
        return {f"input{k}": v for k, v in enumerate(inputs)}
    return {"input": inputs}


def check_function(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    power: float = 0.999,
    jacobian: bool = False,
    method: str = "central",
    eps: float | str = "auto",
    engine: str = "auto",
    seed: int = 0,
) -> CheckResult:
    """Check the backward of ``fn`` at ``inputs`` against finite differences.

    Args:
        fn: ``fn(*inputs)`` (or ``fn(**inputs)`` for a dict) -> tensor or tuple of tensors.
        inputs: a tensor, a sequence of tensors (blocks ``input0``, ``input1``, ...) or a dict
            ``{name: tensor}``; the floating-point ones are checked, the others held fixed.
        power: probability of catching a wrong VJP element whose error is at least ten times
            the detection limit (sets the number of random cotangents; see the module doc).
        jacobian: check every row of the Jacobian (one cotangent per output element).
        method, eps, engine, seed: as for :func:`gradlab.check`.

    Returns:
        A :class:`CheckResult` with one block per checked input; for several cotangents each
        block is the worst over them and its diagnosis names the cotangent.

    Raises:
        UsageError: inputs that are not torch tensors or JAX arrays, or nothing to check.
        ModelError: ``fn`` or its backward raises or returns the wrong thing.
    """
    named = _named_inputs(inputs)
    kind = detect(named)
    if kind is None:
        raise UsageError("check_function needs torch tensors or JAX arrays as inputs (for numpy "
                         "code use gradlab.check with your cost and gradients)")
    ad = adapter(kind)
    checked = {k: v for k, v in named.items() if framework_of(v) and ad.is_float(v)}
    if not checked:
        raise UsageError("check_function: no floating-point input to check")
    as_dict = isinstance(inputs, Mapping)

    def call(p: Mapping[str, Any]) -> tuple:
        args = {**named, **p}
        out = fn(**args) if as_dict else fn(*args.values())
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    outs_fw = _guard(lambda: ad.evaluate(call, checked), f"{_name(fn)}()")()
    outs = [ad.to_numpy(o) for o in outs_fw]
    sizes = [o.size for o in outs]
    if sum(sizes) == 1:
        covectors = [[np.ones_like(o) for o in outs]]
    elif jacobian:
        rows = [np.split(row, np.cumsum(sizes)[:-1]) for row in np.eye(sum(sizes))]
        covectors = [[c.reshape(o.shape).astype(o.dtype) for c, o in zip(row, outs, strict=True)]
                     for row in rows]
    else:
        rng = np.random.default_rng(seed)
        covectors = [[rng.standard_normal(o.shape).astype(o.dtype) for o in outs]
                     for _ in range(cotangents_for(power))]
    name = _name(fn)
    results = []
    for cs in covectors:
        cotangent = [ad.from_numpy(c, o) for c, o in zip(cs, outs_fw, strict=True)]

        def cost(p, X, Y, cotangent=cotangent):
            return ad.dot(call(p), cotangent)

        def gradients(p, X, Y, cotangent=cotangent):
            return ad.vjp(call, p, cotangent)

        problem = framework_problem(name, checked, None, None, _guard(cost, f"{name}()"),
                                    _guard(gradients, f"the backward of {name}()"),
                                    source=f"{name}()", kind=kind)
        results.append(check_problem(problem, method=method, eps=eps, engine=engine, seed=seed))
    return _merge(results, "full Jacobian" if jacobian else "random")


def _name(fn: Any) -> str:
    """What to call ``fn`` in messages (``Cube.apply`` for an autograd.Function's apply)."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type):
        return f"{owner.__name__}.{fn.__name__}"
    return getattr(fn, "__qualname__", type(fn).__name__)


def _merge(results: list[CheckResult], how: str) -> CheckResult:
    """One result from one check per cotangent: each block the worst over the cotangents."""
    if len(results) == 1:
        return results[0]
    blocks: list[BlockResult] = []
    grad, approx = {}, {}
    for j, first in enumerate(results[0].blocks):
        k = max(range(len(results)), key=lambda i: (
            _RANK.get(results[i].blocks[j].verdict, 0),
            results[i].blocks[j].difference / max(results[i].blocks[j].threshold, 1e-300)))
        b = results[k].blocks[j]
        if b.verdict != "ok":
            b = dataclasses.replace(b, diagnosis=f"{b.diagnosis} (cotangent {k + 1} of "
                                                 f"{len(results)})")
        blocks.append(b)
        grad[first.name] = results[k].grad[first.name]
        approx[first.name] = results[k].approx.get(first.name)
    verdicts = {b.verdict for b in blocks}
    verdict = "bug" if verdicts & {"bug", "shape-mismatch"} else (
        "inconclusive" if "non-finite" in verdicts else "ok")
    notes = list(dict.fromkeys(n for r in results for n in r.notes))
    notes.append(f"non-scalar output: checked {len(results)} {how} cotangents")
    return dataclasses.replace(
        results[0], verdict=verdict, blocks=blocks, grad=grad, approx=approx, notes=notes,
        difference=max(r.difference for r in results),
        threshold=max(r.threshold for r in results),
        evaluations=sum(r.evaluations for r in results),
        seconds=sum(r.seconds for r in results))


def assert_function_gradients(fn: Callable[..., Any], inputs: Any, **options: Any) -> CheckResult:
    """Like :func:`check_function`, but raise ``AssertionError`` when an input's gradient is
    wrong (for pytest).

    The message names each failing input, its diagnosis, the worst element and both values
    (the backward's and the numerical one). Kinks pass; a non-finite check fails.

    Returns:
        The :class:`CheckResult` when it passes.

    Raises:
        AssertionError: the verdict is ``bug`` or ``inconclusive``.
    """
    result = check_function(fn, inputs, **options)
    if result.verdict == "ok":
        return result
    name = _name(fn)
    lines = [f"gradient check of {name} failed ({result.verdict}): {result.method} differences, "
             f"eps={result.eps:g}, measured cost noise {result.cost_noise:.3g}"]
    for b in result.blocks:
        if b.verdict in ("bug", "shape-mismatch", "non-finite"):
            idx = ", ".join(map(str, b.worst_index))
            lines.append(f"  input {b.name!r} [{b.verdict}] element [{idx}]: backward "
                         f"{b.worst_grad:.6g} vs numerical {b.worst_approx:.6g}; {b.diagnosis}")
    raise AssertionError("\n".join(lines))
