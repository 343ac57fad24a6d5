"""The catalogue of injected backprop bugs for the mlp / seed-net backward.

Each bug overrides one step of :class:`gradlab.models.mlp.Backprop`. Its ground truth, the set of
parameter blocks whose gradient it changes, is computed for each concrete network by running the
correct and the buggy backward and comparing them exactly (:func:`ground_truth`), so a bug that
touches nothing on some network (dropout bugs without dropout) has an empty ground truth there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import lookup
from .models.mlp import MLP, Backprop

__all__ = ["Bug", "CATALOGUE", "get_bug", "ground_truth", "variant_names"]


class _SeedW2(Backprop):
    def weight_grad(self, layer, dz, a_prev, m):
        g = super().weight_grad(layer, dz, a_prev, m)
        return g * 2 if layer == 2 else g


class _SeedB1(Backprop):
    def bias_grad(self, layer, dz, m):
        if layer == 1:
            return 4.0 / m * np.sum(dz, axis=1, keepdims=True)
        return super().bias_grad(layer, dz, m)


class _SeedBoth(_SeedW2, _SeedB1):
    pass


class _NoKeepdims(Backprop):
    def bias_grad(self, layer, dz, m):
        return 1.0 / m * np.sum(dz, axis=1)


class _SignFlip(Backprop):
    def output_delta(self, a, y):
        return y - a


class _MissingMean(Backprop):
    def weight_grad(self, layer, dz, a_prev, m):
        return np.dot(dz, a_prev.T) if layer == 1 else super().weight_grad(layer, dz, a_prev, m)


class _NoReluMask(Backprop):
    def relu_grad(self, layer, da, z, a):
        return da if layer == 1 else super().relu_grad(layer, da, z, a)


class _ReluUsesA(Backprop):
    def relu_grad(self, layer, da, z, a):
        return da * a


class _DropoutNoMask(Backprop):
    def dropout_grad(self, layer, da, mask, keep):
        return da / keep


class _DropoutNoScale(Backprop):
    def dropout_grad(self, layer, da, mask, keep):
        return da * mask


class _L2Missing(Backprop):
    def l2_grad(self, layer, w, lambd, m):
        return 0.0


class _L2NoMean(Backprop):
    def l2_grad(self, layer, w, lambd, m):
        return lambd * w


class _Transposed(Backprop):
    def finish(self, grads):
        return {**grads, "dW1": grads["dW1"].T}


class _MseDelta(Backprop):
    def output_delta(self, a, y):
        return (a - y) * a * (1 - a)


class _ZeroBias(Backprop):
    def bias_grad(self, layer, dz, m):
        g = super().bias_grad(layer, dz, m)
        return np.zeros_like(g) if layer == 2 else g


class _LeakyBackward(Backprop):
    def relu_grad(self, layer, da, z, a):
        return da * np.where(z > 0, 1.0, 1e-5)


class _WrongLayerInput(Backprop):
    def weight_grad(self, layer, dz, a_prev, m):
        if layer == 1:
            return super().weight_grad(layer, dz, np.maximum(a_prev, 0), m)
        return super().weight_grad(layer, dz, a_prev, m)


@dataclass(frozen=True)
class Bug:
    """A named variant of the backward pass.

    Attributes:
        name: identifier used on the command line and in tables.
        description: one line saying what the code does wrong.
        backprop: the backward implementation with the bug.
        needs: what a network must have for the bug to change anything ("" = any network).
    """

    name: str
    description: str
    backprop: type[Backprop]
    needs: str = ""


_BUGS = [
    Bug("correct", "the correct backward pass (no bug)", Backprop),
    Bug("seed-bugs", "the seed's two bugs: dW2 multiplied by 2 and db1 by 4", _SeedBoth),
    Bug("seed-dW2x2", "the seed's first bug alone: dW2 multiplied by 2", _SeedW2),
    Bug("seed-db1x4", "the seed's second bug alone: db1 uses 4/m instead of 1/m", _SeedB1),
    Bug("bias-no-keepdims", "db sums over examples without keepdims: shape (n,) not (n, 1)",
        _NoKeepdims),
    Bug("sign-flip", "output delta written as Y - A instead of A - Y", _SignFlip),
    Bug("missing-1/m", "dW1 forgets the 1/m average over examples", _MissingMean),
    Bug("relu-mask-missing", "the ReLU derivative of layer 1 is left out (dZ1 = dA1)",
        _NoReluMask),
    Bug("relu-grad-uses-A", "ReLU derivative multiplies by A instead of by (Z > 0)", _ReluUsesA),
    Bug("transposed-dW1", "dW1 returned transposed (A0 dZ1^T instead of dZ1 A0^T)", _Transposed),
    Bug("mse-delta", "output delta uses the squared-error rule (A - Y) A (1 - A)", _MseDelta),
    Bug("zero-db2", "db2 never computed: left as zeros", _ZeroBias),
    Bug("leaky-backward", "subtle: backward treats ReLU as leaky with slope 1e-5", _LeakyBackward),
    Bug("dropout-mask-missing", "dropout mask not applied in backward (only the 1/keep_prob)",
        _DropoutNoMask, needs="keep_prob < 1"),
    Bug("dropout-no-rescale", "dropout backward applies the mask but not 1/keep_prob",
        _DropoutNoScale, needs="keep_prob < 1"),
    Bug("l2-missing", "the L2 term lambda/m * W is left out of dW", _L2Missing,
        needs="lambda > 0"),
    Bug("l2-no-mean", "the L2 term is lambda * W instead of lambda/m * W", _L2NoMean,
        needs="lambda > 0"),
    Bug("relu-input-dW1", "dW1 uses relu(X) instead of X as the layer input", _WrongLayerInput),
]

CATALOGUE: dict[str, Bug] = {b.name: b for b in _BUGS}


def variant_names(include_correct: bool = True) -> list[str]:
    """All variant names in catalogue order."""
    return [n for n in CATALOGUE if include_correct or n != "correct"]


def get_bug(name: str) -> Bug:
    """Look up a variant.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    return lookup(CATALOGUE, name, "variant")


def ground_truth(net: MLP, bug: Bug) -> dict[str, float]:
    """Blocks whose gradient the bug changes on this network, with the relative change.

    A block is in the ground truth when the buggy gradient differs from the correct one at all
    (any element, or its shape). The value is the relative difference of the two (inf for a
    shape change).
    """
    right = net.gradients(net.params, net.X, net.Y)
    wrong = net.gradients(net.params, net.X, net.Y, bug.backprop())
    changed: dict[str, float] = {}
    for key, good in right.items():
        bad = np.asarray(wrong[key])
        name = key[1:]
        if bad.shape != good.shape:
            changed[name] = float("inf")
        elif not np.array_equal(bad, good):
            num = np.linalg.norm(bad - good)
            changed[name] = float(num / (np.linalg.norm(bad) + np.linalg.norm(good)))
    return changed
