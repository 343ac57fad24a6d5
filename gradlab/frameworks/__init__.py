"""Model files and functions written in PyTorch or JAX, checked by gradlab's numpy core.

A framework model is handed to the core as numpy: the parameters become one numpy array per
block (float32 and float64 keep their dtype), ``cost`` converts a numpy point back to tensors of
the original framework, dtype and device and returns a number, ``gradients`` returns the
user's backward as numpy, and a vectorised evaluator (``torch.func.vmap``, ``jax.vmap`` +
``jax.jit``) computes the perturbed costs in batches when the cost allows it. The core never
sees a tensor, so it stays numpy-only.

Detection looks at ``type(x).__module__`` and never imports torch or jax; the adapters
(:mod:`.torch_adapter`, :mod:`.jax_adapter`) are imported only when parameters of that kind
appear.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import ModelError
from ..finite_diff import loop_costs
from ..params import Layout
from ..problem import Problem

__all__ = ["framework_of", "detect", "adapter", "framework_problem", "Adapter", "VmapEvaluator"]

_MODULES = {"torch": "torch_adapter", "jax": "jax_adapter"}
_ROOTS = {"torch": "torch", "jax": "jax", "jaxlib": "jax"}
#: perturbed points per vectorised call: bounded so a batch stays below ~64 MB
_BATCH_BYTES = 64 << 20
#: and at most this many points (the cost's intermediate values are batched too)
_MAX_POINTS = 4096


def framework_of(value: Any) -> str | None:
    """``"torch"``, ``"jax"`` or ``None`` (numpy or anything else), without importing either."""
    return _ROOTS.get(type(value).__module__.split(".")[0])


def detect(values: Mapping[str, Any] | list | tuple) -> str | None:
    """The framework of a collection of arrays, or ``None`` when none is a framework array.

    Raises:
        ModelError: torch and JAX arrays are mixed.
    """
    items = values.values() if isinstance(values, Mapping) else values
    kinds = {framework_of(v) for v in items} - {None}
    if len(kinds) > 1:
        raise ModelError(f"the parameters mix {' and '.join(sorted(kinds))} arrays; use one "
                         "framework (or numpy) for all of them")
    return kinds.pop() if kinds else None


def adapter(kind: str) -> Adapter:
    """The adapter of framework ``kind`` (imports that framework).

    Raises:
        ModelError: the framework is not installed.
    """
    try:
        module = importlib.import_module(f".{_MODULES[kind]}", __name__)
    except ImportError as exc:
        raise ModelError(f"{kind} arrays need {kind} installed: pip install 'gradlab[{kind}]' "
                         f"({exc})") from None
    return module.ADAPTER


class Adapter:
    """What a framework provides: conversions and a vectorised cost. Subclasses fill it in."""

    name = ""
    vmap_name = ""
    #: True when every batched call should have the same number of rows (compiled per shape)
    fixed_batch = False

    def to_numpy(self, value: Any) -> np.ndarray:
        """A framework array as numpy (float32/float64/complex keep their dtype)."""
        raise NotImplementedError

    def from_numpy(self, array: np.ndarray, like: Any) -> Any:
        """A numpy array as a framework array with the framework, dtype and device of ``like``
        (complex input stays complex, of the same precision)."""
        raise NotImplementedError

    def batched(self, fn: Callable[[Any, dict], Any],
                like: Any) -> Callable[[np.ndarray, dict], np.ndarray]:
        """``fn(flat block, {other blocks}) -> scalar`` vectorised over the rows of a numpy
        matrix (the block, as tensors like ``like``), the other blocks shared."""
        raise NotImplementedError

    def no_grad(self):
        """A context in which plain cost evaluations run (torch: no autograd graph)."""
        import contextlib

        return contextlib.nullcontext()

    def is_float(self, value: Any) -> bool:
        """True for a floating-point or complex framework array."""
        raise NotImplementedError

    def evaluate(self, call: Callable[[dict], tuple], params: dict[str, Any]) -> tuple:
        """``call(params)`` (a tuple of outputs), outside any autograd graph."""
        raise NotImplementedError

    def dot(self, outputs: tuple, cotangent: list) -> Any:
        """``sum_k <cotangent_k, outputs_k>`` as a framework scalar."""
        raise NotImplementedError

    def vjp(self, call: Callable[[dict], tuple], params: dict[str, Any],
            cotangent: list) -> dict[str, Any]:
        """The framework's vector-Jacobian product of ``call`` at ``params`` with
        ``cotangent``: ``{name: gradient or None}`` (the user's backward runs here)."""
        raise NotImplementedError


class VmapEvaluator:
    """Perturbed costs ``J(theta + steps[k] e_i)`` through the framework's vmap, in batches.

    A perturbed point differs from theta in one block, so the points are batched per block:
    only that block is a batched argument of the vmapped cost, the other blocks are shared
    (unbatched) tensors, and whatever the cost computes from them alone is computed once per
    batch. Each block's values are built exactly as :func:`gradlab.finite_diff.loop_costs`
    builds them (``t[i] + step`` rounded to theta's dtype).
    """

    tiny = False
    kink_radius = None  # a framework's cost: its kinks are unknown

    def __init__(self, ad: Adapter, layout: Layout, likes: Mapping[str, Any],
                 cost: Callable[..., Any], X: Any, Y: Any):
        self.ad, self.layout, self.likes = ad, layout, dict(likes)
        self.cost, self.X, self.Y = cost, X, Y
        self.name = f"{ad.name}-vmap"
        self._batched: dict[str, Callable[..., np.ndarray]] = {}

    def _block_fn(self, name: str) -> Callable[..., np.ndarray]:
        """The batched cost as a function of block ``name`` (the others fixed)."""
        if name not in self._batched:
            shape = self.layout.shapes[self.layout.names.index(name)]
            names = self.layout.names

            def cost_of_block(flat: Any, others: dict[str, Any]) -> Any:
                p = {n: others[n] if n != name else flat.reshape(shape) for n in names}
                return self.cost(p, self.X, self.Y)

            self._batched[name] = self.ad.batched(cost_of_block, self.likes[name])
        return self._batched[name]

    def _chunk(self, part: np.ndarray) -> int:
        """Points per call for a block: below the memory bound; for a framework that compiles
        per shape (``fixed_batch``), one power of two per block covering its central
        differences, every call padded to it."""
        per = int(np.clip(_BATCH_BYTES // max(1, part.nbytes), 1, _MAX_POINTS))
        if self.ad.fixed_batch:
            per = min(1 << (per.bit_length() - 1), 1 << max(7, (2 * part.size - 1).bit_length()))
        return per

    def costs(self, theta: np.ndarray, steps: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """The same array as :func:`gradlab.finite_diff.loop_costs` (up to rounding)."""
        steps = np.asarray(steps).reshape(-1)
        indices = np.asarray(indices, dtype=np.intp).reshape(-1)
        is_c = np.iscomplexobj(steps)
        dtype = np.result_type(theta.dtype, np.complex64) if is_c else theta.dtype
        base = theta.astype(dtype)
        blocks = self.layout.unflatten(base)
        out = np.empty((len(steps), len(indices)), np.complex128 if is_c else np.float64)
        for name, sl in self.layout.slices().items():
            cols_b = np.flatnonzero((indices >= sl.start) & (indices < sl.stop))
            if not cols_b.size:
                continue
            others = {n: self.ad.from_numpy(v, self.likes[n]) for n, v in blocks.items()
                      if n != name}
            part = base[sl]
            rows = np.repeat(np.arange(len(steps)), cols_b.size)
            cols = np.tile(cols_b, len(steps))
            per = self._chunk(part)
            # one buffer of copies of the block: each chunk perturbs one entry per row, then
            # puts it back (no fresh 64 MB per chunk)
            buf = np.empty((per if self.ad.fixed_batch else min(per, rows.size), part.size),
                           dtype)
            buf[:] = part
            for start in range(0, rows.size, per):
                r, c = rows[start:start + per], cols[start:start + per]
                at = (np.arange(r.size), indices[c] - sl.start)
                # the loop's t[i] + step: the sum in the wider type, rounded into theta's dtype
                buf[at] = part[at[1]] + steps[r]
                points = buf if self.ad.fixed_batch else buf[:r.size]
                values = np.asarray(self._block_fn(name)(points, others)).reshape(-1)[:r.size]
                buf[at] = part[at[1]]
                out[r, c] = values if is_c else np.real(values)
        return out


def framework_problem(
    name: str,
    params: Mapping[str, Any],
    X: Any,
    Y: Any,
    cost: Callable[..., Any],
    gradients: Callable[..., Mapping[str, Any]],
    source: str = "",
    kind: str | None = None,
) -> Problem:
    """A numpy :class:`Problem` for a model whose parameters are torch tensors or JAX arrays.

    Args:
        name, source: for messages.
        params: ``{name: tensor}`` (all of one framework).
        X, Y: passed to ``cost`` and ``gradients`` unchanged.
        cost: ``cost(params, X, Y) -> scalar tensor`` on framework tensors.
        gradients: ``gradients(params, X, Y) -> {"dW": tensor, ...}`` (the backward under test;
            ``None`` for a block counts as zeros, as autograd treats it).
        kind: ``"torch"`` or ``"jax"``; detected when ``None``.

    Returns:
        A Problem with numpy params; ``problem.fast`` is the vmap evaluator when the cost can
        be vectorised, else ``None`` and a note in ``problem.info["notes"]`` says why.

    Raises:
        ModelError: a parameter of an unsupported dtype, or the framework is missing.
    """
    kind = kind or detect(params)
    ad = adapter(kind)
    likes = {str(k): v for k, v in params.items()}
    numpy_params = {}
    for key, value in likes.items():
        if framework_of(value) != kind:
            raise ModelError(f"{source or name}: parameter {key!r} is {type(value).__name__}, the "
                             f"others are {kind} arrays; give every parameter as a {kind} array")
        arr = ad.to_numpy(value)
        if arr.dtype.kind not in "fc":
            raise ModelError(f"{source or name}: parameter {key!r} has dtype {arr.dtype}; "
                             "floating-point tensors are required")
        numpy_params[str(key)] = arr
    layout = Layout.of(numpy_params)
    names = list(likes)

    def to_framework(p: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {k: ad.from_numpy(np.asarray(p[str(k)]), likes[k]) for k in names}

    def np_cost(p: Mapping[str, np.ndarray], X_: Any, Y_: Any) -> Any:
        with ad.no_grad():
            return _scalar_numpy(ad, cost(to_framework(p), X_, Y_))

    def np_gradients(p: Mapping[str, np.ndarray], X_: Any, Y_: Any) -> dict[str, Any]:
        raw = gradients(to_framework(p), X_, Y_)
        if not isinstance(raw, Mapping):
            return raw  # the core explains what was wrong
        out = {}
        for key, value in raw.items():
            if value is None:  # autograd's "no gradient": zeros
                base = str(key)[1:] if str(key)[1:] in numpy_params else str(key)
                value = np.zeros_like(numpy_params.get(base, np.zeros(0)))
            out[str(key)] = ad.to_numpy(value) if framework_of(value) else value
        return out

    problem = Problem(name=name, params=numpy_params, X=X, Y=Y, cost=np_cost,
                      gradients=np_gradients, source=source,
                      info={"framework": kind, "notes": []})
    theta = layout.flatten(numpy_params)
    evaluator, reason = _vmap_evaluator(VmapEvaluator(ad, layout, likes, cost, X, Y), theta,
                                        layout, np_cost, X, Y)
    problem.fast = evaluator
    if reason is not None:
        problem.info["notes"].append(
            f"the cost could not be vectorised with {ad.vmap_name} ({reason}); the perturbed "
            "costs were evaluated one at a time")
    return problem


def _vmap_evaluator(evaluator: VmapEvaluator, theta, layout, np_cost, X, Y):
    """``(VmapEvaluator, None)`` when the cost can be vmapped, else ``(None, one-line reason)``.

    Evaluates two perturbed points through the batched cost and through the plain cost; they
    must agree to rounding.
    """
    steps = np.array([1e-3, -1e-3])
    idx = np.array(layout.offsets[:-1])  # one coordinate of every block
    try:
        got = evaluator.costs(theta, steps, idx)
    except Exception as exc:  # the user's cost under vmap: any failure means "not vmappable"
        text = " ".join(str(exc).split())
        if "setup_context" in text:
            return None, ("an autograd.Function without setup_context; give it a "
                          "setup_context staticmethod and generate_vmap_rule = True to batch")
        cause = exc.__cause__ or exc
        return None, f"{type(cause).__name__}: {' '.join(str(cause).split())[:120]}"
    try:
        want = loop_costs(lambda t: np_cost(layout.unflatten(t), X, Y), theta, steps, idx)
    except Exception:  # the plain cost fails too: the core will report it
        return None, "the plain cost fails"
    scale = max(1.0, float(np.max(np.abs(want))))
    u = float(np.finfo(theta.dtype).eps)
    if not np.allclose(got, want, rtol=0, atol=1e3 * u * scale, equal_nan=True):
        return None, (f"the batched cost {got.ravel()[0]:.17g} differs from the plain cost "
                      f"{want.ravel()[0]:.17g}")
    return evaluator, None


def _scalar_numpy(ad: Adapter, value: Any) -> Any:
    """A cost's return value as numpy (the core checks that it is one number)."""
    return ad.to_numpy(value) if framework_of(value) else value
