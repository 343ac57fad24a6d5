"""A corpus of custom torch.autograd.Functions: each with a correct backward and bugs.

Every entry is a real ``torch.autograd.Function`` subclass whose forward is a plain torch
expression and whose backward is written by hand; the same forward *without* the Function, under
torch's own autograd, is the independent ground truth (tests compare full Jacobians).
Most are written in the ``setup_context`` style with ``generate_vmap_rule`` (vmap-able); some in
the old ``forward(ctx, ...)`` style, which gradlab checks one cost at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def function(name: str, forward: Callable, backward: Callable, old_style: bool = False) -> type:
    """An autograd.Function ``name`` computing ``forward(*xs)`` with ``backward(xs, out, g)``."""
    if old_style:
        def fwd(ctx, *xs):
            out = forward(*xs)
            ctx.save_for_backward(*xs, out)
            return out

        body = {"forward": staticmethod(fwd)}
    else:
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs, output)

        def fwd(*xs):
            return forward(*xs)

        body = {"forward": staticmethod(fwd), "setup_context": staticmethod(setup_context),
                "generate_vmap_rule": True}

    def bwd(ctx, g):
        *xs, out = ctx.saved_tensors
        grads = backward(xs, out, g)
        return grads if isinstance(grads, tuple) else (grads,)

    return type(name, (torch.autograd.Function,), {**body, "backward": staticmethod(bwd)})


@dataclass
class Case:
    """One function: its plain forward, shapes of its inputs, and backward variants."""

    name: str
    forward: Callable
    shapes: tuple
    variants: dict[str, Callable] = field(default_factory=dict)  # name -> backward
    old_style: bool = False
    positive: bool = False  # inputs drawn positive (away from 0)

    def functions(self) -> dict[str, Callable]:
        """Variant name -> ``Function.apply``."""
        return {v: function(f"{self.name}_{v}", self.forward, b, self.old_style).apply
                for v, b in self.variants.items()}

    def inputs(self, dtype: torch.dtype, seed: int = 0) -> tuple:
        """The inputs, drawn from ``seed``, in ``dtype``."""
        g = torch.Generator().manual_seed(seed)
        xs = [torch.randn(*s, generator=g, dtype=torch.float64) for s in self.shapes]
        if self.positive:
            xs = [x.abs() + 0.5 for x in xs]
        return tuple(x.to(dtype) for x in xs)


def _softmax_grad(s, g):
    return s * (g - (g * s).sum(-1, keepdim=True))


CASES = [
    Case("square", lambda x: x**2, ((3, 4),), {
        "correct": lambda xs, y, g: 2 * xs[0] * g,
        "missing-factor": lambda xs, y, g: xs[0] * g}),
    Case("sigmoid", torch.sigmoid, ((3, 4),), {
        "correct": lambda xs, s, g: g * s * (1 - s),
        "wrong-sign": lambda xs, s, g: -g * s * (1 - s)}, old_style=True),
    Case("tanh", torch.tanh, ((5,),), {
        "correct": lambda xs, y, g: g * (1 - y**2),
        "missing-square": lambda xs, y, g: g * (1 - y)}),
    Case("matmul", lambda x, w: x @ w, ((4, 3), (3, 3)), {
        "correct": lambda xs, y, g: (g @ xs[1].T, xs[0].T @ g),
        "transposed-dw": lambda xs, y, g: (g @ xs[1].T, (xs[0].T @ g).T),
        "only-dx": lambda xs, y, g: (g @ xs[1].T, None)}),
    Case("add_bias", lambda x, b: x + b, ((4, 3), (1, 3)), {
        "correct": lambda xs, y, g: (g, g.sum(0, keepdim=True)),
        "mean-not-sum": lambda xs, y, g: (g, g.mean(0, keepdim=True))}),
    Case("softmax", lambda x: torch.softmax(x, -1), ((3, 5),), {
        "correct": lambda xs, s, g: _softmax_grad(s, g),
        "diagonal-only": lambda xs, s, g: g * s * (1 - s)}),
    Case("logsumexp", lambda x: torch.logsumexp(x, 1), ((4, 4),), {
        "correct": lambda xs, y, g: g[:, None] * torch.exp(xs[0] - y[:, None]),
        "wrong-broadcast": lambda xs, y, g: g[None, :] * torch.exp(xs[0] - y[:, None])}),
    Case("mul", lambda x, y: x * y, ((3, 3), (3, 3)), {
        "correct": lambda xs, z, g: (g * xs[1], g * xs[0]),
        "only-dx": lambda xs, z, g: (g * xs[1], None),
        "swapped": lambda xs, z, g: (g * xs[0], g * xs[1])}),
    Case("norm", lambda x: torch.sqrt((x**2).sum()), ((6,),), {
        "correct": lambda xs, n, g: g * xs[0] / n,
        "missing-division": lambda xs, n, g: g * xs[0]}),
    Case("mse", lambda x, t: ((x - t) ** 2).mean(), ((4, 2), (4, 2)), {
        "correct": lambda xs, y, g: (2 * g * (xs[0] - xs[1]) / xs[0].numel(),
                                     -2 * g * (xs[0] - xs[1]) / xs[0].numel()),
        "target-sign": lambda xs, y, g: (2 * g * (xs[0] - xs[1]) / xs[0].numel(),
                                         2 * g * (xs[0] - xs[1]) / xs[0].numel())},
        old_style=True),
    Case("cumsum", lambda x: torch.cumsum(x, 0), ((5,),), {
        "correct": lambda xs, y, g: torch.flip(torch.cumsum(torch.flip(g, [0]), 0), [0]),
        "transposed": lambda xs, y, g: torch.cumsum(g, 0)}),
    Case("scale_exp", lambda x, w: x * torch.exp(w), ((3, 4), (4,)), {
        "correct": lambda xs, y, g: (g * torch.exp(xs[1]), (g * y).sum(0)),
        "scalar-output-assumed": lambda xs, y, g: (torch.exp(xs[1]).expand_as(xs[0]),
                                                   y.sum(0))}),
    Case("log", torch.log, ((4,),), {
        "correct": lambda xs, y, g: g / xs[0],
        "wrong-reduction": lambda xs, y, g: (g / xs[0]).sum().expand_as(xs[0])},
        positive=True),
]
