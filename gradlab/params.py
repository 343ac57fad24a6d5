"""Parameter vectors: flatten a dict of arrays to one vector and back.

The layout follows the seed exercise: blocks in the dict's key order, each block row-major
(``reshape(-1)``). Gradients may be keyed like the parameters (``W1``) or with a leading ``d``
(``dW1``); extra entries (``dZ3``, ``dA2``, ... as the seed's backward returns) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["Layout", "GradientKeyError", "gradient_key"]


class GradientKeyError(ValueError):
    """A parameter has no matching entry in the gradients dict."""


def gradient_key(grads: Mapping[str, object], name: str) -> str:
    """Return the key under which ``grads`` holds the gradient of parameter ``name``.

    Args:
        grads: the gradients dict returned by a backward pass.
        name: a parameter name such as ``"W1"``.

    Returns:
        ``"d" + name`` if present, else ``name``.

    Raises:
        GradientKeyError: neither key is present.
    """
    for key in ("d" + name, name):
        if key in grads:
            return key
    shown = ", ".join(sorted(map(str, grads))) or "nothing"
    raise GradientKeyError(
        f"the gradients have no entry for parameter {name!r} "
        f"(looked for 'd{name}' or '{name}'; got {shown})"
    )


@dataclass(frozen=True)
class Layout:
    """Names, shapes and offsets of the parameter blocks inside one flat vector."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtype: np.dtype

    @classmethod
    def of(cls, params: Mapping[str, np.ndarray]) -> Layout:
        """Build the layout of a parameter dict (key order, each block row-major).

        Raises:
            ValueError: the dict is empty or a value is not a real or complex numeric array.
        """
        if not params:
            raise ValueError("the parameters are empty: give at least one named array")
        shapes = []
        dtypes = []
        for name, value in params.items():
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiuc":
                raise ValueError(
                    f"parameter {name!r} has dtype {arr.dtype}; numeric arrays are required"
                )
            shapes.append(tuple(arr.shape))
            dtypes.append(arr.dtype if arr.dtype.kind in "fc" else np.dtype(np.float64))
        return cls(tuple(str(n) for n in params), tuple(shapes), np.result_type(*dtypes))

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        """Number of elements of each block."""
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start of each block in the flat vector (plus the total size at the end)."""
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.sizes)]))

    @cached_property
    def size(self) -> int:
        """Total number of parameters."""
        return self.offsets[-1]

    def slices(self) -> dict[str, slice]:
        """Block name -> slice of the flat vector."""
        return dict(self._slices)

    @cached_property
    def _slices(self) -> dict[str, slice]:
        off = self.offsets
        return {n: slice(off[k], off[k + 1]) for k, n in enumerate(self.names)}

    def flatten(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate the blocks of ``params`` (in this layout's order) into one 1-D vector."""
        parts = [np.asarray(params[n]).reshape(-1) for n in self.names]
        return np.concatenate(parts).astype(self.dtype, copy=False)

    def unflatten(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """Split a flat vector back into named blocks of the original shapes (views)."""
        vector = np.asarray(vector).reshape(-1)
        if vector.size != self.size:
            raise ValueError(f"vector has {vector.size} elements, the layout {self.size}")
        return {
            n: vector[s].reshape(shape)
            for (n, s), shape in zip(self._slices.items(), self.shapes, strict=True)
        }

    def gradient_blocks(self, grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pick each parameter's gradient out of ``grads`` (``dW1`` or ``W1``), shapes as given.

        Raises:
            GradientKeyError: a parameter has no gradient entry, or it is not numeric.
        """
        out = {}
        for n in self.names:
            key = gradient_key(grads, n)
            value = np.asarray(grads[key])
            if value.dtype.kind not in "fiucb":
                raise GradientKeyError(
                    f"the gradient {key!r} is {type(grads[key]).__name__} (dtype {value.dtype});"
                    " a numeric array is required"
                )
            out[n] = value
        return out
