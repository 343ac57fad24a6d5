"""The JAX adapter: arrays <-> numpy, and the cost vectorised with ``jax.jit(jax.vmap(...))``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ModelError
from . import Adapter

__all__ = ["JaxAdapter", "ADAPTER"]

class JaxAdapter(Adapter):
    """Conversions between JAX arrays and numpy, keeping dtype and device."""

    name = "jax"
    vmap_name = "jax.jit(jax.vmap)"
    fixed_batch = True

    def to_numpy(self, value: Any) -> np.ndarray:
        """A JAX array as a numpy array of the same dtype.

        Raises:
            ModelError: a dtype finite differences cannot use (bfloat16).
        """
        arr = np.asarray(value)
        if arr.dtype.name == "bfloat16":
            raise ModelError("bfloat16 arrays cannot be checked by finite differences "
                             "(8 significant bits); check in float32 or float64")
        return arr

    def from_numpy(self, array: np.ndarray, like: Any) -> Any:
        """``array`` as a JAX array with the dtype and device of ``like`` (complex stays
        complex)."""
        dtype = like.dtype
        if np.iscomplexobj(array) and not jnp.iscomplexobj(like):
            dtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
        out = jnp.asarray(array, dtype=dtype)
        devices = like.devices() if hasattr(like, "devices") else set()
        if devices and devices != out.devices():
            out = jax.device_put(out, like.sharding)
        return out

    def batched(self, fn: Callable[[Any, dict], Any],
                like: Any) -> Callable[[np.ndarray, dict], np.ndarray]:
        """``fn`` under ``jax.jit(jax.vmap(fn))`` over the rows of a numpy matrix (the dict of
        other blocks unbatched); the evaluator pads every call of a block to one shape
        (``fixed_batch``), so each block is compiled once."""
        mapped = jax.jit(jax.vmap(fn, in_axes=(0, None)))

        def run(points: np.ndarray, others: dict) -> np.ndarray:
            return np.asarray(mapped(jnp.asarray(points), others))

        return run

    def is_float(self, value: Any) -> bool:
        """True for a floating-point or complex array."""
        return bool(jnp.issubdtype(value.dtype, jnp.inexact))

    def evaluate(self, call: Callable[[dict], tuple], params: dict[str, Any]) -> tuple:
        """``call(params)``."""
        return tuple(call(params))

    def dot(self, outputs: tuple, cotangent: list) -> Any:
        """``sum_k <cotangent_k, outputs_k>``."""
        return sum(jnp.sum(c * o) for c, o in zip(cotangent, outputs, strict=True))

    def vjp(self, call: Callable[[dict], tuple], params: dict[str, Any],
            cotangent: list) -> dict[str, Any]:
        """The backward under test: ``jax.vjp`` pulled back with the cotangent."""
        keys = list(params)
        _, pullback = jax.vjp(lambda *xs: tuple(call(dict(zip(keys, xs, strict=True)))),
                              *params.values())
        return dict(zip(keys, pullback(tuple(cotangent)), strict=True))


ADAPTER = JaxAdapter()
