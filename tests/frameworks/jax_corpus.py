"""A corpus of ``jax.custom_vjp`` functions: each with a correct backward and bugs.

The forward is a plain ``jax.numpy`` expression; ``jax.grad``/``jax.jacrev`` of that forward
without the custom rule is the independent ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64 checks; float32 inputs stay float32


def custom(forward: Callable, backward: Callable) -> Callable:
    """``forward`` with the custom VJP ``backward(xs, out, g) -> tuple of cotangents``."""
    f = jax.custom_vjp(lambda *xs: forward(*xs))

    def fwd(*xs):
        out = forward(*xs)
        return out, (xs, out)

    def bwd(res, g):
        xs, out = res
        grads = backward(xs, out, g)
        return grads if isinstance(grads, tuple) else (grads,)

    f.defvjp(fwd, bwd)
    return f


@dataclass
class Case:
    """One function: its plain forward, input shapes, and backward variants."""

    name: str
    forward: Callable
    shapes: tuple
    variants: dict[str, Callable] = field(default_factory=dict)

    def functions(self) -> dict[str, Callable]:
        """Variant name -> the custom_vjp function."""
        return {v: custom(self.forward, b) for v, b in self.variants.items()}

    def inputs(self, dtype, seed: int = 0) -> tuple:
        """The inputs, drawn from ``seed`` (numpy's generator), as JAX arrays of ``dtype``."""
        rng = np.random.default_rng(seed)
        return tuple(jnp.asarray(rng.standard_normal(s), dtype=dtype) for s in self.shapes)


def _softmax(x):
    return jax.nn.softmax(x, axis=-1)


CASES = [
    Case("square", lambda x: x**2, ((3, 4),), {
        "correct": lambda xs, y, g: 2 * xs[0] * g,
        "missing-factor": lambda xs, y, g: xs[0] * g}),
    Case("sigmoid", jax.nn.sigmoid, ((3, 4),), {
        "correct": lambda xs, s, g: g * s * (1 - s),
        "wrong-sign": lambda xs, s, g: -g * s * (1 - s)}),
    Case("matmul", lambda x, w: x @ w, ((4, 3), (3, 3)), {
        "correct": lambda xs, y, g: (g @ xs[1].T, xs[0].T @ g),
        "transposed-dw": lambda xs, y, g: (g @ xs[1].T, (xs[0].T @ g).T),
        "only-dx": lambda xs, y, g: (g @ xs[1].T, jnp.zeros_like(xs[1]))}),
    Case("softmax", _softmax, ((3, 5),), {
        "correct": lambda xs, s, g: s * (g - (g * s).sum(-1, keepdims=True)),
        "diagonal-only": lambda xs, s, g: g * s * (1 - s)}),
    Case("logsumexp", lambda x: jax.nn.logsumexp(x, axis=1), ((4, 4),), {
        "correct": lambda xs, y, g: g[:, None] * jnp.exp(xs[0] - y[:, None]),
        "wrong-broadcast": lambda xs, y, g: g[None, :] * jnp.exp(xs[0] - y[:, None])}),
    Case("add_bias", lambda x, b: x + b, ((4, 3), (1, 3)), {
        "correct": lambda xs, y, g: (g, g.sum(0, keepdims=True)),
        "mean-not-sum": lambda xs, y, g: (g, g.mean(0, keepdims=True))}),
]
