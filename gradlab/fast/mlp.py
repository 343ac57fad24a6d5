"""The fast engine for the built-in networks (:class:`gradlab.models.mlp.MLP`).

``FastMLP.costs(theta, steps, indices)`` returns what :func:`gradlab.finite_diff.loop_costs`
returns, ``J(theta + steps[k] e_i)``, with far less work. Per coordinate and step:

1. **The perturbed point, exactly as the loop makes it.** The loop writes ``theta_i + step``
   into an array of the model's dtype, so the step really taken is
   ``delta = fl(theta_i + step) - theta_i`` (0 for a float32 parameter of size 1 and a step of
   1e-10). Every formula below uses that ``delta``.
2. **Locality.** Perturbing ``W_l[i, j]`` (or ``b_l[i]``) by ``delta`` changes only row ``i`` of
   ``Z_l``, by ``delta * A_{l-1}[j, :]`` (by ``delta`` for the bias). Layers below are reused.
3. **Proven linearity.** Above layer ``l`` the network is piecewise linear. While no ReLU
   changes sides, the output pre-activation changes by exactly ``delta * c_e`` per example,
   ``c_e = G_l[i, e] * A_{l-1}[j, e]`` with ``G_l = dz_L / dZ_l`` (one backward pass). Whether a
   unit can change sides is decided per (coordinate, example) from the exact linear change at
   every layer above (``|change| < |z|``), first with a cheap bound shared by a whole row, then
   exactly where that bound is not enough. Where it is not proven, the example's column is run
   forward exactly from layer ``l`` and the difference is added (a correction per example).
4. **The loss at the perturbed output.** The cost change is ``(1/m) sum_e [s_e(z_e + delta c_e)
   - s_e(z_e)]``. Where ``max_e |delta c_e|`` is small, the series ``sum_k delta^k/k! M_k`` with
   ``M_k[i, j] = sum_e s^(k)_e G[i, e]^k A[j, e]^k`` (one GEMM per order and layer, shared by
   all steps) is summed to the order at which the remainder is provably below 1/32 of the
   cost's rounding (:mod:`gradlab.fast.series`): exact up to rounding, not a first-order
   approximation. Elsewhere the loss difference is evaluated per example without cancellation.
5. **Exact extras.** L2: ``lambd/(2m) * delta * (2 w + delta)``. Dropout: the fixed masks
   scale the activations like in the model. Complex steps (``i h``): the real part decides the
   ReLU, so an imaginary perturbation of a real point never crosses a kink; the same series runs
   with complex ``delta``.
6. **The loop as a safety net.** A coordinate whose perturbed output could reach the range where
   the seed's expression overflows (``a`` rounding to exactly 0 or 1, giving inf or nan in the
   loop) is evaluated by the loop itself, so non-finite results match too.

The cost of a full check is then a few GEMMs per layer plus O(P) vector work per step, instead
of 2P forward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..finite_diff import loop_costs, machine_eps, perturbed_dtype
from ..params import Layout
from .blas import single_thread
from .series import KMAX, derivatives, dsoftplus, order_thresholds, saturation_band

__all__ = ["FastMLP"]

_SAFE = 1 + 2.0**-20  # margin on every "no kink is crossed" comparison
_CHUNK = 1 << 21  # elements per temporary array in the chunked loops
_F64 = np.float64


TINY = 2000  # parameters x examples at or below which check_problem uses the loop


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (np.unique imports numpy.ma on first use: slow start-up)."""
    if values.size == 0:
        return values
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _relu_delta(z: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """``relu(z + dz) - relu(z)`` for real arrays, exact where no kink is crossed."""
    zn = z + dz
    both = (z > 0) & (zn > 0)
    return np.where(both, dz, np.maximum(zn, 0) - np.maximum(z, 0))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``inf`` where ``den == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.inf)


@dataclass
class _Layer:
    """Per-layer quantities at the base point (layers numbered 1..L)."""

    n_in: int
    n_out: int
    w_off: int
    b_off: int
    a_aug: np.ndarray  # (n_in + 1, m): A_{l-1} with a row of ones for the bias
    a_max: np.ndarray  # (n_in + 1,): max_e |a_aug|
    g: np.ndarray  # (n_out, m): dz_L / dZ_l
    g_max: np.ndarray  # (n_out,)
    r_coarse_min: np.ndarray | None = None  # (n_out,): min_e of a lower bound of R
    r_exact: np.ndarray | None = None  # (n_out, m): exact kink radius, rows filled lazily
    r_done: np.ndarray | None = None  # (n_out,) bool
    tau: np.ndarray | None = None  # (n_out, n_in + 1): largest kink-free step, NaN = not yet
    inv_a: np.ndarray | None = None  # 1 / |a_aug|
    moments: list[np.ndarray] = field(default_factory=list)  # dense M_1, M_2, ... (unscaled)


class _Base:
    """Everything the engine derives from one parameter point."""

    def __init__(self, engine: FastMLP, theta: np.ndarray):
        net = engine.net
        self.theta = theta.copy()
        params = engine.layout.unflatten(theta)
        self.j0 = float(np.real(engine.flat_cost(theta)))
        L = engine.L
        X = np.asarray(net.X, dtype=_F64)
        y = np.asarray(net.Y, dtype=_F64).reshape(-1)
        m = X.shape[1]
        self.m, self.y = m, y
        self.W = [None] + [np.asarray(params[f"W{k}"], _F64) for k in range(1, L + 1)]
        self.b = [None] + [np.asarray(params[f"b{k}"], _F64).reshape(-1, 1)
                           for k in range(1, L + 1)]
        self.Z: list[np.ndarray | None] = [None]
        self.A: list[np.ndarray] = [X]
        self.S: list[np.ndarray | None] = [None]
        self.DS: list[np.ndarray | None] = [None]
        for k in range(1, L + 1):
            z = self.W[k] @ self.A[-1] + self.b[k]
            self.Z.append(z)
            if k < L:
                if k in net.masks:
                    s = np.asarray(net.masks[k], _F64) / float(net.keep_prob)
                else:
                    s = np.ones_like(z)
                self.S.append(s)
                self.DS.append((z > 0) * s)
                self.A.append(np.maximum(z, 0) * s)
        self.zL = self.Z[L][0]
        with np.errstate(over="ignore"):
            self.a = 1 / (1 + np.exp(-self.zL))
            self.bb = 1 / (1 + np.exp(self.zL))
        # Examples whose term the seed's expression computes with a large rounding error
        # (log(1 - a) for a near 1 loses digits): their loop noise could reach the agreement
        # tolerance, so they are evaluated with the seed's own expression, in the model's dtype,
        # at the perturbed output: the loop's rounding is then reproduced, not just bounded.
        self.dtype = theta.dtype
        lossy = (y != 1) & (self.bb * m * max(abs(self.j0), 1.0) < 4.0)
        self.mim = np.flatnonzero(lossy)
        self.normal = (~lossy).astype(_F64)
        _, cache = net.forward(params, net.X)
        self.z_model = np.asarray(np.real(cache[-1][0]), _F64).reshape(-1)
        self._seed0: dict[bool, np.ndarray] = {}
        # G_l = dz_L/dZ_l, per example
        g = [None] * (L + 1)
        g[L] = np.ones((1, m))
        for k in range(L - 1, 0, -1):
            g[k] = (self.W[k + 1].T @ g[k + 1]) * self.DS[k]
        self.layers: list[_Layer | None] = [None]
        offs = engine.offsets
        for k in range(1, L + 1):
            a_aug = np.vstack([self.A[k - 1], np.ones((1, m))])
            self.layers.append(_Layer(
                n_in=self.W[k].shape[1], n_out=self.W[k].shape[0],
                w_off=offs[f"W{k}"], b_off=offs[f"b{k}"], a_aug=a_aug,
                a_max=np.abs(a_aug).max(axis=1), g=g[k], g_max=np.abs(g[k]).max(axis=1),
            ))
        u = machine_eps(theta.dtype)
        self.tol = max(u * abs(self.j0) / 32, 1e-300)
        self.dstar = order_thresholds(self.tol)
        self.dstar_rel = order_thresholds(u / 64, relative=True)  # complex steps
        self.band = saturation_band(str(perturbed_dtype(theta.dtype, False)))
        self.z_hi, self.z_lo = float(self.zL.max()), float(self.zL.min())
        self._derivs: list[np.ndarray] = []
        self._zmask: dict[int, np.ndarray] = {}

    # -- the loss at the base output -----------------------------------------------------
    def derivs(self, upto: int) -> list[np.ndarray]:
        """``[s^(1), ..., s^(upto)]`` per example, zero on the mimicked examples (cached)."""
        if len(self._derivs) < upto:
            self._derivs = [d * self.normal
                            for d in derivatives(self.a, self.bb, self.y, upto)]
        return self._derivs[:upto]

    def seed_terms(self, z: np.ndarray, e: np.ndarray, is_c: bool) -> np.ndarray:
        """The seed's per-example term at outputs ``z`` of examples ``e``, in the loop's dtype."""
        dt = perturbed_dtype(self.dtype, is_c)
        zz = np.asarray(z).astype(dt)
        yy = self.y[e].astype(np.empty(0, dt).real.dtype)
        with np.errstate(all="ignore"):
            a = 1 / (1 + np.exp(-zz))
            return np.multiply(-np.log(a), yy) + np.multiply(-np.log(1 - a), 1 - yy)

    def seed0(self, is_c: bool) -> np.ndarray:
        """The seed's terms of the mimicked examples at the base point."""
        if is_c not in self._seed0:
            self._seed0[is_c] = self.seed_terms(self.z_model[self.mim], self.mim, is_c)
        return self._seed0[is_c]

    def loss_delta(self, e: np.ndarray, d: np.ndarray, is_c: bool) -> np.ndarray:
        """``term_e(z_e + d) - term_e(z_e)`` for examples ``e``: careful, or seed-style."""
        out = dsoftplus(self.a[e], self.bb[e], self.y[e], d)
        if self.mim.size:
            where = np.isin(e, self.mim)
            if where.any():
                ee = e[where]
                z = self.z_model[ee] + d[where]
                seed = self.seed_terms(z, ee, is_c) - self.seed_terms(self.z_model[ee], ee, is_c)
                out = out.astype(np.result_type(out, seed))
                out[where] = seed
        return out

    # -- kink radii ------------------------------------------------------------------------
    def coarse_radius(self, lyr: int) -> np.ndarray:
        """``min_e`` of a lower bound of the kink radius R_l[i, e], per row i (cheap)."""
        lay = self.layers[lyr]
        if lay.r_coarse_min is None:
            L = len(self.layers) - 1
            s_l, z_l = self.S[lyr], self.Z[lyr]
            r = np.where(s_l != 0, np.abs(z_l), np.inf)
            if lyr <= L - 2:
                rho = np.full(self.m, np.inf)
                bound = np.abs(self.W[lyr + 1]).max(axis=1)[:, None] * np.ones((1, self.m))
                for k in range(lyr + 1, L):
                    ratio = np.where(self.S[k] != 0, _ratio(np.abs(self.Z[k]), bound), np.inf)
                    rho = np.minimum(rho, ratio.min(axis=0))
                    if k < L - 1:
                        bound = np.abs(self.W[k + 1]) @ (self.DS[k] * bound)
                r = np.minimum(r, _ratio(rho[None, :] * np.ones_like(z_l), self.DS[lyr]))
            lay.r_coarse_min = r.min(axis=1)
        return lay.r_coarse_min

    def zmask(self, k: int) -> np.ndarray:
        """``|Z_k|``, with ``inf`` where the dropout mask removes the unit (no kink there)."""
        if k not in self._zmask:
            self._zmask[k] = np.where(self.S[k] != 0, np.abs(self.Z[k]), np.inf)
        return self._zmask[k]

    def exact_radius(self, lyr: int, rows: np.ndarray) -> np.ndarray:
        """The exact kink radius R_l (n_out, m): rows ``rows`` are guaranteed filled.

        ``R[i, e] = min(|Z_l[i, e]|, min_{k > l, u} |Z_k[u, e]| / |T_k[u, i, e]|)`` with
        ``T_k[:, i, e] = dZ_k[:, e] / dZ_l[i, e]`` along the linear path: a change of
        ``Z_l[i, e]`` smaller than ``R[i, e]`` flips no ReLU above. NaN ratios (0/0: a unit
        the change does not reach) are ignored by ``fmin``.
        """
        lay = self.layers[lyr]
        L = len(self.layers) - 1
        if lay.r_exact is None:
            lay.r_exact = np.zeros_like(self.Z[lyr])
            lay.r_done = np.zeros(lay.n_out, bool)
        todo = _distinct(rows[~lay.r_done[rows]])
        if todo.size == 0:
            return lay.r_exact
        radius = self.zmask(lyr)[todo].copy()
        if lyr <= L - 2:
            widest = max(self.W[k].shape[0] for k in range(lyr + 1, L))
            width = max(1, _CHUNK // max(1, widest * self.m))
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                inv_w = 1 / np.abs(self.W[lyr + 1])
                inv_ds = 1 / self.DS[lyr]
                z_next = self.zmask(lyr + 1)[:, None, :]
                for start in range(0, todo.size, width):
                    sl = slice(start, start + width)
                    rr = todo[sl]
                    q = np.fmin.reduce(z_next * inv_w[:, rr][:, :, None], axis=0)
                    part = np.fmin(radius[sl], q * inv_ds[rr])
                    if lyr + 2 <= L - 1:
                        t = self.W[lyr + 1][:, rr][:, :, None] * self.DS[lyr][rr][None, :, :]
                        for k in range(lyr + 2, L):
                            t = np.tensordot(self.W[k], self.DS[k - 1][:, None, :] * t, axes=1)
                            ratio = self.zmask(k)[:, None, :] / np.abs(t)
                            part = np.fmin(part, np.fmin.reduce(ratio, axis=0))
                    radius[sl] = part
        lay.r_exact[todo] = np.nan_to_num(radius, nan=np.inf)
        lay.r_done[todo] = True
        return lay.r_exact

    def kink_step(self, lyr: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``tau[i, j] = min_e R[i, e] / |A_aug[j, e]|`` (cached per coordinate)."""
        lay = self.layers[lyr]
        if lay.tau is None:
            lay.tau = np.full((lay.n_out, lay.n_in + 1), np.nan)
            with np.errstate(divide="ignore"):
                lay.inv_a = 1 / np.abs(lay.a_aug)
        flat = i * (lay.n_in + 1) + j
        tau = lay.tau.reshape(-1)
        todo = _distinct(flat[np.isnan(tau[flat])])
        if todo.size:
            ti, tj = np.divmod(todo, lay.n_in + 1)
            r = self.exact_radius(lyr, ti)
            width = max(1, _CHUNK // max(1, self.m))
            with np.errstate(invalid="ignore", over="ignore"):
                for start in range(0, todo.size, width):
                    sl = slice(start, start + width)
                    t = np.fmin.reduce(r[ti[sl]] * lay.inv_a[tj[sl]], axis=1)
                    tau[todo[sl]] = np.nan_to_num(t, nan=np.inf)
        return tau[flat]

    # -- Taylor moments --------------------------------------------------------------------
    def dense_moments(self, lyr: int, upto: int) -> list[np.ndarray]:
        """``M_k[i, j] = sum_e s^(k)_e G[i, e]^k A_aug[j, e]^k`` for k = 1..upto (cached)."""
        lay = self.layers[lyr]
        have = len(lay.moments)
        if have < upto:
            ds = self.derivs(upto)
            with np.errstate(over="ignore", invalid="ignore"):
                gk = lay.g ** (have + 1) if have else lay.g.copy()
                ak = lay.a_aug ** (have + 1) if have else lay.a_aug.copy()
                for k in range(have + 1, upto + 1):
                    lay.moments.append((gk * ds[k - 1]) @ ak.T)
                    gk = gk * lay.g
                    ak = ak * lay.a_aug
        return lay.moments[:upto]

    def pair_moments(self, lyr: int, i: np.ndarray, j: np.ndarray, upto: int) -> list[np.ndarray]:
        """The same moments for a few (i, j) pairs, without the GEMM."""
        lay = self.layers[lyr]
        ds = self.derivs(upto)
        out = [np.empty(i.size) for _ in range(upto)]
        width = max(1, _CHUNK // max(1, self.m))
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, i.size, width):
                sl = slice(start, start + width)
                c = lay.g[i[sl]] * lay.a_aug[j[sl]]
                ck = c.copy()
                for k in range(upto):
                    out[k][sl] = ck @ ds[k]
                    ck *= c
        return out


class FastMLP:
    """Exact perturbed costs of an :class:`~gradlab.models.mlp.MLP` at many points at once.

    Attributes:
        name: the engine's name in results (``"fast"``).
        stats: counters of the last calls (coordinates by path), for tests and benchmarks.
    """

    name = "fast"

    def __init__(self, net, layout: Layout):
        self.net = net
        self.layout = layout
        self.L = net.layers
        expected = [f"{p}{k}" for k in range(1, self.L + 1) for p in ("W", "b")]
        if list(layout.names) != expected:
            raise ValueError(f"unexpected parameter layout {layout.names}")
        self.offsets = dict(zip(layout.names, layout.offsets[:-1], strict=True))
        self._base: _Base | None = None
        self.stats = {"taylor": 0, "direct": 0, "kink_pairs": 0, "loop": 0}

    @property
    def tiny(self) -> bool:
        """True for networks so small (parameters x examples <= TINY) that ``check_problem``
        uses the plain loop: it costs well under a millisecond per coordinate there and
        reproduces the seed exercise's digits exactly (its difference at eps 1e-7 is pure
        round-off, so any other rounding changes those digits)."""
        return self.layout.size * self.net.X.shape[1] <= TINY

    def kink_radius(self, theta: np.ndarray, indices) -> np.ndarray:
        """For each coordinate, the step below which ``J(theta + s e_i)`` crosses no ReLU kink.

        ``inf`` for the output layer (no ReLU above it) and where no kink can be reached.
        Steps at or above it may cross one: the finite difference is then not smooth there.
        """
        theta = np.asarray(theta)
        indices = np.asarray(indices, dtype=np.intp).reshape(-1)
        out = np.full(indices.size, np.inf)
        if theta.dtype.kind != "f":
            return out
        base = self.base(theta)
        for lyr in range(1, self.L):  # hidden layers only: the output layer has no ReLU
            lay = base.layers[lyr]
            pos = np.flatnonzero((indices >= lay.w_off) & (indices < lay.b_off + lay.n_out))
            if pos.size == 0:
                continue
            loc = indices[pos] - lay.w_off
            nw = lay.n_out * lay.n_in
            is_w = loc < nw
            i = np.where(is_w, loc // lay.n_in, loc - nw)
            j = np.where(is_w, loc % lay.n_in, lay.n_in)
            out[pos] = base.kink_step(lyr, i, j) / _SAFE
        return out

    # -- helpers -----------------------------------------------------------------------------
    def flat_cost(self, vec: np.ndarray):
        """The model's own cost of a flat parameter vector (what the loop evaluates)."""
        return self.net.cost(self.layout.unflatten(vec), self.net.X, self.net.Y)

    def _loop(self, theta, steps, indices):
        self.stats["loop"] += len(steps) * len(indices)
        return loop_costs(lambda v: np.asarray(self.flat_cost(v)).reshape(()).item(),
                          theta, steps, indices)

    def base(self, theta: np.ndarray) -> _Base:
        """The cached base-point quantities for ``theta``."""
        if self._base is None or not np.array_equal(self._base.theta, theta):
            self._base = _Base(self, theta)
        return self._base

    # -- the evaluator -------------------------------------------------------------------------
    def costs(self, theta: np.ndarray, steps, indices) -> np.ndarray:
        """``J(theta + steps[k] e_i)`` for every step k and index i (see the module docstring).

        Returns:
            Array of shape (len(steps), len(indices)): float64, or complex128 for complex steps.
        """
        with single_thread():
            return self._costs(np.asarray(theta), np.asarray(steps).reshape(-1),
                               np.asarray(indices, dtype=np.intp).reshape(-1))

    def _costs(self, theta: np.ndarray, steps: np.ndarray, indices: np.ndarray) -> np.ndarray:
        is_c = np.iscomplexobj(steps)
        if theta.dtype.kind != "f" or (is_c and np.any(steps.real != 0)) or theta.ndim != 1:
            return self._loop(theta, steps, indices)
        base = self.base(theta)
        if not math.isfinite(base.j0):
            return self._loop(theta, steps, indices)
        out = np.empty((len(steps), len(indices)), np.complex128 if is_c else _F64)
        pdt = perturbed_dtype(theta.dtype, is_c)
        wide = np.complex128 if is_c else _F64
        vals = theta[indices].astype(pdt)
        # the steps the loop really takes: fl(theta_i + step) - theta_i, for every (step, index)
        wide_vals = vals.astype(wide)
        delta = (wide_vals[None, :] + steps[:, None]).astype(pdt).astype(wide) - wide_vals
        dj = np.zeros(delta.shape, wide)
        bad = np.zeros(delta.shape, bool)
        n_steps = len(steps)
        for lyr in range(1, self.L + 1):
            lay = base.layers[lyr]
            lo, hi = lay.w_off, lay.b_off + lay.n_out
            pos = np.flatnonzero((indices >= lo) & (indices < hi))
            if pos.size == 0:
                continue
            loc = indices[pos] - lo
            nw = lay.n_out * lay.n_in
            is_w = loc < nw
            i = np.where(is_w, loc // lay.n_in, loc - nw)
            j = np.where(is_w, loc % lay.n_in, lay.n_in)
            dl = delta[:, pos]
            # all steps of this layer in one pass: jobs (step, coordinate), flattened
            d, b = self._layer_delta(base, lyr, np.tile(i, n_steps), np.tile(j, n_steps),
                                     dl.reshape(-1), is_c)
            d = d.reshape(dl.shape)
            if self.net.lambd:
                w = theta[indices[pos]].astype(_F64)
                l2 = self.net.lambd / (2 * base.m) * dl * (2 * w + dl)
                d = d + np.where(is_w, l2, 0)
            dj[:, pos] = d
            bad[:, pos] = b.reshape(dl.shape)
        out = base.j0 + dj
        for row in np.flatnonzero(bad.any(axis=1)):
            cols = np.flatnonzero(bad[row])
            out[row, cols] = self._loop(theta, steps[row:row + 1], indices[cols])[0]
        return out

    def _layer_delta(self, base: _Base, lyr: int, i, j, delta, is_c):
        """Cost change for coordinates (i, j) of layer lyr (j = n_in is the bias); + loop flags."""
        lay = base.layers[lyr]
        m = base.m
        n = i.size
        dj = np.zeros(n, delta.dtype)
        bad = np.zeros(n, bool)
        mag = np.abs(delta)
        dm = mag * lay.g_max[i] * lay.a_max[j]
        dstar = base.dstar_rel if is_c else base.dstar
        order = np.searchsorted(dstar, dm, side="left") + 1  # terms needed
        lo_band, hi_band = base.band
        near_edge = (base.z_hi + dm >= hi_band) | (base.z_lo - dm <= lo_band)
        taylor = (order <= KMAX) & ~near_edge
        direct = ~taylor
        if is_c:
            # complex steps: keep to |Im d| < 3 (principal branch of the seed's logs)
            bad |= direct & (dm >= 3)
            direct &= ~bad
        # -- series part
        tp = np.flatnonzero(taylor & (mag > 0))
        if tp.size:
            K = int(order[tp].max())
            terms = K - 1
            if terms:
                if tp.size * 8 >= lay.n_out * (lay.n_in + 1) or len(lay.moments) >= terms:
                    mom = base.dense_moments(lyr, terms)
                    moms = [mk[i[tp], j[tp]] for mk in mom]
                else:
                    moms = base.pair_moments(lyr, i[tp], j[tp], terms)
                dt = delta[tp]
                acc = moms[terms - 1] / math.factorial(terms)
                for k in range(terms - 1, 0, -1):
                    acc = acc * dt + moms[k - 1] / math.factorial(k)
                acc = acc * dt
                ok = np.isfinite(acc)
                dj[tp[ok]] = acc[ok] / m
                direct[tp[~ok]] = True
            self.stats["taylor"] += int(tp.size)
        # -- direct part
        dp = np.flatnonzero(direct & ~bad & (mag > 0))
        if dp.size:
            self.stats["direct"] += int(dp.size)
            width = max(1, _CHUNK // max(1, m))
            for start in range(0, dp.size, width):
                p = dp[start:start + width]
                d = delta[p][:, None] * (lay.g[i[p]] * lay.a_aug[j[p]])
                zp = base.zL[None, :] + d.real
                out_band = (((zp >= hi_band) | (zp <= lo_band)) & (base.normal > 0)).any(axis=1)
                ds = (dsoftplus(base.a, base.bb, base.y, d) * base.normal).sum(axis=1)
                dj[p] = ds / m
                bad[p] |= out_band | ~np.isfinite(ds)
        # -- the mimicked examples: the seed's expression at z + delta c
        mp = np.flatnonzero(~bad & (mag > 0)) if base.mim.size else np.zeros(0, int)
        if mp.size:
            mim = base.mim
            seed0 = base.seed0(is_c)
            width = max(1, _CHUNK // max(1, mim.size))
            for start in range(0, mp.size, width):
                p = mp[start:start + width]
                d = delta[p][:, None] * (lay.g[i[p]][:, mim] * lay.a_aug[j[p]][:, mim])
                z = base.z_model[mim][None, :] + d
                dj[p] += (base.seed_terms(z, mim[None, :], is_c) - seed0).sum(axis=1) / m
        # -- kink corrections (real steps, hidden layers only)
        if not is_c and lyr < self.L:
            self._kinks(base, lyr, i, j, delta, mag, dj, bad)
        return dj, bad

    def _kinks(self, base: _Base, lyr, i, j, delta, mag, dj, bad):
        lay = base.layers[lyr]
        rmin = base.coarse_radius(lyr)
        cand = np.flatnonzero((mag * lay.a_max[j] * _SAFE >= rmin[i]) & (mag > 0) & ~bad)
        if cand.size == 0:
            return
        # per-coordinate radius tau = min_e R[i, e] / |A[j, e]|: a step below it crosses no kink
        tau = base.kink_step(lyr, i[cand], j[cand])
        cand = cand[mag[cand] * _SAFE >= tau]
        if cand.size == 0:
            return
        r = base.exact_radius(lyr, i[cand])
        width = max(1, _CHUNK // max(1, base.m))
        for start in range(0, cand.size, width):
            p = cand[start:start + width]
            hit = (mag[p][:, None] * np.abs(lay.a_aug[j[p]]) * _SAFE) >= r[i[p]]
            rows, ex = np.nonzero(hit)
            if rows.size == 0:
                continue
            self.stats["kink_pairs"] += int(rows.size)
            cp = p[rows]
            corr, out_band = self._exact_columns(base, lyr, i[cp], j[cp], ex, delta[cp])
            np.add.at(dj, cp, corr / base.m)
            np.logical_or.at(bad, cp, out_band)

    def _exact_columns(self, base: _Base, lyr, i, j, e, delta):
        """For (coordinate, example) pairs: exact change of z_L by a forward from layer lyr."""
        lay = base.layers[lyr]
        L = self.L
        corr = np.empty(i.size)
        out_band = np.empty(i.size, bool)
        lo_band, hi_band = base.band
        width = max(1, _CHUNK // max(1, max(base.W[k].shape[0] for k in range(lyr, L + 1))))
        for start in range(0, i.size, width):
            sl = slice(start, start + width)
            ii, jj, ee, dd = i[sl], j[sl], e[sl], delta[sl]
            v = lay.a_aug[jj, ee]
            da = _relu_delta(base.Z[lyr][ii, ee], dd * v) * base.S[lyr][ii, ee]
            dz = da[:, None] * base.W[lyr + 1][:, ii].T
            for k in range(lyr + 1, L):
                zk = base.Z[k][:, ee].T
                dak = _relu_delta(zk, dz) * base.S[k][:, ee].T
                dz = dak @ base.W[k + 1].T
            d_exact = dz[:, 0]
            d_lin = dd * lay.g[ii, ee] * v
            corr[sl] = (base.loss_delta(ee, d_exact, False)
                        - base.loss_delta(ee, d_lin, False))
            zp = base.zL[ee] + d_exact
            out_band[sl] = (zp >= hi_band) | (zp <= lo_band) | ~np.isfinite(corr[sl])
        return corr, out_band
