"""The seed's 1-D model: J(theta) = theta * x, dJ/dtheta = x."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["cost", "gradients", "params"]


def params(theta: float = 4.0, dtype=np.float64) -> dict[str, np.ndarray]:
    """The parameter dict ``{"theta": array(theta)}`` (the seed's theta = 4)."""
    return {"theta": np.array(theta, dtype=dtype)}


def cost(p: Mapping[str, np.ndarray], x: float, _y: object = None):
    """J = theta * x (the seed writes ``x * theta``)."""
    return x * p["theta"]


def gradients(p: Mapping[str, np.ndarray], x: float, _y: object = None) -> dict[str, np.ndarray]:
    """dJ/dtheta = x."""
    return {"dtheta": np.asarray(x, dtype=np.asarray(p["theta"]).dtype)}
