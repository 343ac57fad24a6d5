"""The seed's network family: (LINEAR -> RELU) x (L-1) -> LINEAR -> SIGMOID, cross-entropy cost.

Optional L2 regularisation (``lambd``) and inverted dropout (``keep_prob``) on the hidden layers.
The dropout masks are drawn once from the model's seed and held fixed, so the cost is a
deterministic function of the parameters and gradient checking works with dropout on.

The backward pass is written as a sequence of small overridable steps (:class:`Backprop`) so
that the bug catalogue (:mod:`gradlab.bugs`) can replace exactly one step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MLP", "Backprop", "seed_net", "relu"]


def relu(z: np.ndarray) -> np.ndarray:
    """ReLU that is also correct for complex input (compares the real part only)."""
    return np.where(np.real(z) > 0, z, 0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function (complex-safe)."""
    return 1 / (1 + np.exp(-z))


class Backprop:
    """The correct backward pass of :class:`MLP`, one overridable method per step.

    Layers are numbered 1..L as in the seed (``W1`` is layer 1). A bug subclasses this and
    overrides one step.
    """

    def output_delta(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dJ/dZ_L times m for sigmoid + cross-entropy."""
        return a - y

    def weight_grad(self, layer: int, dz: np.ndarray, a_prev: np.ndarray, m: int) -> np.ndarray:
        """dW_l from dZ_l and the layer's input."""
        return 1.0 / m * np.dot(dz, a_prev.T)

    def bias_grad(self, layer: int, dz: np.ndarray, m: int) -> np.ndarray:
        """db_l from dZ_l."""
        return 1.0 / m * np.sum(dz, axis=1, keepdims=True)

    def l2_grad(self, layer: int, w: np.ndarray, lambd: float, m: int) -> np.ndarray | float:
        """The L2 term added to dW_l."""
        return lambd / m * w

    def input_grad(self, layer: int, w: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """dA_{l-1} = W_l^T dZ_l."""
        return np.dot(w.T, dz)

    def dropout_grad(self, layer: int, da: np.ndarray, mask: np.ndarray, keep: float):
        """Inverted dropout in the backward pass of hidden layer ``layer``."""
        return da * mask / keep

    def relu_grad(self, layer: int, da: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """dZ_l from dA_l through the ReLU."""
        return da * (z > 0)

    def finish(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Last chance to change the finished gradients (used by scale bugs)."""
        return grads


@dataclass
class MLP:
    """A fully connected ReLU network with a sigmoid output and cross-entropy cost.

    Attributes:
        params: ``{"W1", "b1", ..., "WL", "bL"}`` in the seed's order.
        X: inputs, shape (n0, m).  Y: labels in {0, 1}, shape (1, m).
        lambd: L2 strength (0 = off).  keep_prob: dropout keep probability (1 = off).
        masks: the fixed dropout masks of the hidden layers (``{l: bool array}``).
    """

    params: dict[str, np.ndarray]
    X: np.ndarray
    Y: np.ndarray
    lambd: float = 0.0
    keep_prob: float = 1.0
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def layers(self) -> int:
        """Number of layers L."""
        return len(self.params) // 2

    @property
    def dims(self) -> tuple[int, ...]:
        """Layer sizes (n0, n1, ..., nL)."""
        w = [self.params[f"W{k}"] for k in range(1, self.layers + 1)]
        return (w[0].shape[1], *[x.shape[0] for x in w])

    @classmethod
    def random(
        cls,
        dims: Sequence[int],
        examples: int,
        seed: int,
        lambd: float = 0.0,
        keep_prob: float = 1.0,
        dtype: np.dtype | type = np.float64,
    ) -> MLP:
        """Draw a network, data and dropout masks from ``seed`` (He-scaled weights).

        Raises:
            ValueError: fewer than two sizes, a size below 1, the output size is not 1,
                ``examples`` below 1, ``lambd`` negative or ``keep_prob`` outside (0, 1].
        """
        dims = [int(d) for d in dims]
        if len(dims) < 2 or min(dims) < 1:
            raise ValueError(
                f"dims {dims} are impossible: give at least two positive layer sizes, e.g. 4,5,3,1"
            )
        if dims[-1] != 1:
            raise ValueError(f"dims {dims}: the last layer must have size 1 (one sigmoid output)")
        if int(examples) < 1:
            raise ValueError(f"examples {examples} must be at least 1")
        if not lambd >= 0:
            raise ValueError(f"lambda {lambd} must be >= 0")
        if not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob {keep_prob} must be in (0, 1]")
        rng = np.random.default_rng(seed)
        params: dict[str, np.ndarray] = {}
        for k in range(1, len(dims)):
            scale = np.sqrt(2.0 / dims[k - 1])
            params[f"W{k}"] = rng.standard_normal((dims[k], dims[k - 1])) * scale
            params[f"b{k}"] = rng.standard_normal((dims[k], 1)) * 0.1
        X = rng.standard_normal((dims[0], int(examples)))
        Y = rng.integers(0, 2, size=(1, int(examples))).astype(np.float64)
        masks = {}
        if keep_prob < 1:
            for k in range(1, len(dims) - 1):
                masks[k] = rng.random((dims[k], int(examples))) < keep_prob
        params = {n: v.astype(dtype) for n, v in params.items()}
        return cls(params, X.astype(dtype), Y.astype(dtype), float(lambd), float(keep_prob), masks)

    def forward(self, params: Mapping[str, np.ndarray], X: np.ndarray):
        """Run the forward pass; return (a_L, cache of (Z_l, A_l) per layer)."""
        a = X
        cache = [(None, X)]
        L = self.layers
        for k in range(1, L + 1):
            z = np.dot(params[f"W{k}"], a) + params[f"b{k}"]
            if k < L:
                a = relu(z)
                if k in self.masks:
                    a = a * self.masks[k] / self.keep_prob
            else:
                a = sigmoid(z)
            cache.append((z, a))
        return a, cache

    def cost(self, params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray):
        """Cross-entropy cost (the seed's expression), plus the L2 term when ``lambd > 0``."""
        a, _ = self.forward(params, X)
        m = X.shape[1]
        logprobs = np.multiply(-np.log(a), Y) + np.multiply(-np.log(1 - a), 1 - Y)
        cost = 1.0 / m * np.sum(logprobs)
        if self.lambd:
            squares = sum(np.sum(params[f"W{k}"] ** 2) for k in range(1, self.layers + 1))
            cost = cost + self.lambd / (2 * m) * squares
        return cost

    def gradients(
        self,
        params: Mapping[str, np.ndarray],
        X: np.ndarray,
        Y: np.ndarray,
        backprop: Backprop | None = None,
    ) -> dict[str, np.ndarray]:
        """Backward pass, step by step through ``backprop`` (the correct one by default)."""
        bp = backprop or Backprop()
        a_out, cache = self.forward(params, X)
        m = X.shape[1]
        grads: dict[str, np.ndarray] = {}
        dz = bp.output_delta(a_out, Y)
        for k in range(self.layers, 0, -1):
            w = params[f"W{k}"]
            dw = bp.weight_grad(k, dz, cache[k - 1][1], m)
            if self.lambd:
                dw = dw + bp.l2_grad(k, w, self.lambd, m)
            grads[f"dW{k}"] = dw
            grads[f"db{k}"] = bp.bias_grad(k, dz, m)
            if k > 1:
                da = bp.input_grad(k, w, dz)
                if k - 1 in self.masks:
                    da = bp.dropout_grad(k - 1, da, self.masks[k - 1], self.keep_prob)
                z_prev, a_prev = cache[k - 1]
                dz = bp.relu_grad(k - 1, da, z_prev, a_prev)
        ordered = {}
        for k in range(1, self.layers + 1):
            ordered[f"dW{k}"] = grads[f"dW{k}"]
            ordered[f"db{k}"] = grads[f"db{k}"]
        return bp.finish(ordered)


def seed_net() -> MLP:
    """The seed exercise's test case, drawn exactly as its ``gradient_check_n_test_case``.

    ``np.random.seed(1)``, then x (4, 3), W1 (5, 4), b1 (5, 1), W2 (3, 5), b2 (3, 1),
    W3 (1, 3), b3 (1, 1) from ``randn``; labels y = [1, 1, 0].
    """
    state = np.random.get_state()
    try:
        np.random.seed(1)
        x = np.random.randn(4, 3)
        shapes = {
            "W1": (5, 4), "b1": (5, 1), "W2": (3, 5), "b2": (3, 1), "W3": (1, 3), "b3": (1, 1),
        }
        params = {name: np.random.randn(*shape) for name, shape in shapes.items()}
    finally:
        np.random.set_state(state)
    y = np.array([[1.0, 1.0, 0.0]])
    return MLP(params, x, y)
