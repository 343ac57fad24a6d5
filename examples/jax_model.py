"""A JAX model file for ``gradlab check``: a ``jax.custom_vjp`` layer with its own backward.

The same three functions as for numpy, on JAX arrays::

    init(seed) -> (params, X, Y)       params: dict of JAX arrays (dtype and device are kept)
    cost(params, X, Y) -> scalar array
    gradients(params, X, Y) -> dict     the backward under test, e.g. jax.grad

Run ``gradlab check examples/jax_model.py``; gradlab evaluates the perturbed costs with
``jax.jit(jax.vmap(cost))``.
"""

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)  # check in float64


@jax.custom_vjp
def linear_tanh(x, W, b):
    """y = tanh(W x + b), with a hand-written backward."""
    return jnp.tanh(W @ x + b)


def _fwd(x, W, b):
    y = jnp.tanh(W @ x + b)
    return y, (x, W, y)


def _bwd(res, grad_y):
    x, W, y = res
    dz = grad_y * (1 - y**2)
    return W.T @ dz, dz @ x.T, dz.sum(axis=1, keepdims=True)


linear_tanh.defvjp(_fwd, _bwd)


def init(seed):
    """Parameters, inputs and targets drawn from ``seed`` (float64)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 6)
    shapes = {"W1": (6, 3), "b1": (6, 1), "W2": (2, 6), "b2": (2, 1)}
    params = {k: 0.5 * jax.random.normal(key, s, jnp.float64)
              for key, (k, s) in zip(keys, shapes.items(), strict=False)}
    X = jax.random.normal(keys[4], (3, 8), jnp.float64)
    Y = jax.random.normal(keys[5], (2, 8), jnp.float64)
    return params, X, Y


def cost(p, X, Y):
    """J = 1/(2m) * sum((Yhat - Y)^2) through two custom layers."""
    h = linear_tanh(X, p["W1"], p["b1"])
    out = linear_tanh(h, p["W2"], p["b2"])
    return jnp.sum((out - Y) ** 2) / (2 * X.shape[1])


def gradients(p, X, Y):
    """The custom backward, through jax.grad."""
    grads = jax.grad(cost)(p, X, Y)
    return {"d" + k: g for k, g in grads.items()}
