"""The PyTorch adapter: tensors <-> numpy, and the cost vectorised with ``torch.func.vmap``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from . import Adapter

__all__ = ["TorchAdapter", "ADAPTER"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class TorchAdapter(Adapter):
    """Conversions between torch tensors and numpy, keeping dtype, device and requires_grad."""

    name = "torch"
    vmap_name = "torch.func.vmap"

    def to_numpy(self, value: Any) -> np.ndarray:
        """A tensor as a numpy array of the same dtype (on the CPU, detached).

        Raises:
            ModelError: a dtype numpy has no equivalent for (bfloat16).
        """
        t = value.detach()
        if t.dtype == torch.bfloat16:
            raise ModelError("bfloat16 tensors cannot be checked by finite differences "
                             "(8 significant bits); check in float32 or float64")
        return t.cpu().resolve_conj().numpy()

    def from_numpy(self, array: np.ndarray, like: Any) -> Any:
        """``array`` as a tensor with the dtype and device of ``like`` (complex stays complex);
        a fresh leaf that requires grad when ``like`` does."""
        dtype = like.dtype
        if np.iscomplexobj(array) and not like.is_complex():
            dtype = _COMPLEX.get(dtype, torch.complex128)
        t = torch.as_tensor(array, dtype=dtype, device=like.device)
        if like.requires_grad:
            t = t.detach().requires_grad_(True)
        return t

    def batched(self, fn: Callable[[Any, dict], Any],
                like: Any) -> Callable[[np.ndarray, dict], np.ndarray]:
        """``fn`` mapped over the rows of a numpy matrix with ``torch.func.vmap`` (the dict of
        other blocks unbatched)."""
        mapped = torch.func.vmap(fn, in_dims=(0, None))

        def run(points: np.ndarray, others: dict) -> np.ndarray:
            pts = torch.as_tensor(points, device=like.device)
            with torch.no_grad():
                return mapped(pts, others).detach().cpu().resolve_conj().numpy()

        return run

    def no_grad(self):
        """``torch.no_grad()``: plain cost evaluations build no graph."""
        return torch.no_grad()

    def is_float(self, value: Any) -> bool:
        """True for a floating-point or complex tensor."""
        return value.is_floating_point() or value.is_complex()

    def evaluate(self, call: Callable[[dict], tuple], params: dict[str, Any]) -> tuple:
        """``call(params)`` without a graph, outputs detached."""
        with torch.no_grad():
            return tuple(o.detach() for o in call(params))

    def dot(self, outputs: tuple, cotangent: list) -> Any:
        """``sum_k <cotangent_k, outputs_k>``."""
        return sum((c * o).sum() for c, o in zip(cotangent, outputs, strict=True))

    def vjp(self, call: Callable[[dict], tuple], params: dict[str, Any],
            cotangent: list) -> dict[str, Any]:
        """The backward under test: ``torch.autograd.grad(outputs, inputs, cotangent)``."""
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        grads = torch.autograd.grad(call(leaves), list(leaves.values()), grad_outputs=cotangent,
                                    allow_unused=True)
        return dict(zip(leaves, grads, strict=True))


ADAPTER = TorchAdapter()
