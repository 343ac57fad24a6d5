"""A PyTorch model file for ``gradlab check``: a custom autograd.Function with its own backward.

gradlab needs the same three functions as for numpy, on torch tensors::

    init(seed) -> (params, X, Y)       params: dict of torch tensors (dtype and device are kept)
    cost(params, X, Y) -> scalar tensor
    gradients(params, X, Y) -> dict     the backward under test, e.g. torch.autograd.grad

Run ``gradlab check examples/torch_model.py``. Written in the ``setup_context`` style with
``generate_vmap_rule = True``, the Function also runs under ``torch.func.vmap``, so gradlab
evaluates the perturbed costs in batches; an old-style Function (``forward(ctx, ...)``) is
checked too, one cost at a time (gradlab says so in a note).
"""

import torch


class LinearTanh(torch.autograd.Function):
    """y = tanh(W x + b), with a hand-written backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, W, b):
        return torch.tanh(W @ x + b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, _ = inputs
        ctx.save_for_backward(x, W, output)

    @staticmethod
    def backward(ctx, grad_y):
        x, W, y = ctx.saved_tensors
        dz = grad_y * (1 - y**2)
        return W.T @ dz, dz @ x.T, dz.sum(dim=1, keepdim=True)


def init(seed):
    """Parameters, inputs and targets drawn from ``seed`` (float64)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    params = {"W1": randn(6, 3, scale=0.5), "b1": randn(6, 1, scale=0.1),
              "W2": randn(2, 6, scale=0.5), "b2": randn(2, 1, scale=0.1)}
    return params, randn(3, 8), randn(2, 8)


def cost(p, X, Y):
    """J = 1/(2m) * sum((Yhat - Y)^2) through two custom layers."""
    h = LinearTanh.apply(X, p["W1"], p["b1"])
    out = LinearTanh.apply(h, p["W2"], p["b2"])
    return ((out - Y) ** 2).sum() / (2 * X.shape[1])


def gradients(p, X, Y):
    """The custom backward, through torch.autograd.grad."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
    grads = torch.autograd.grad(cost(leaves, X, Y), list(leaves.values()))
    return {"d" + k: g for k, g in zip(leaves, grads, strict=True)}
