"""Sliced and max-sliced Wasserstein distances between point clouds.

Both project the clouds on unit directions and solve 1D optimal transport on each line in the
compiled core (``csrc/include/pyot/sliced.hpp``: projection, radix sort and the weighted merge
of ``common/line.hpp``, threads over directions). Math: ALGORITHMS.md section 5::

    SW_p^p = E_theta W_p^p(theta # mu, theta # nu),   theta uniform on the unit sphere

estimated with ``L = n_projections`` directions; ``max_sliced_wasserstein`` maximises
``W_p(theta # mu, theta # nu)`` over theta instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core, _cuda
from . import _validate as V
from ._result import SlicedResult
from .costs import _points

__all__ = ["max_sliced_wasserstein", "sliced_wasserstein"]

_DIRECTION_KINDS = ("random", "orthogonal", "qmc")
# Max-sliced ascent: first step (a chord on the sphere, about this many radians), and where it
# stops: a step below _MIN_STEP, or a tangent gradient this small against the full gradient
# (a stationary point, e.g. theta parallel to the shift of two translated clouds).
_INITIAL_STEP = 0.5
_MIN_STEP = 1e-10
_STATIONARY = 1e-12


@dataclass
class _Problem:
    """Validated clouds of one dtype; weights float64 of equal mass, or None (uniform)."""

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray | None
    b: np.ndarray | None
    mass: float
    dtype: np.dtype
    p: float
    threads: int

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    def projected(self, directions: np.ndarray) -> np.ndarray:
        """W_p^p per unit row of ``directions`` (float64)."""
        return _core.sliced_projected(
            self.x,
            self.y,
            self.a,
            self.b,
            np.ascontiguousarray(directions, self.dtype),
            mass=self.mass,
            p=self.p,
            threads=self.threads,
        )

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """W_p^p along the unit vector ``theta`` and its gradient in theta (float64)."""
        return _core.max_sliced_step(
            self.x, self.y, self.a, self.b, theta, mass=self.mass, p=self.p, threads=self.threads
        )


def _problem(fn: str, x: object, y: object, a: object, b: object, p: object, threads: object):
    xs, ys = _points(x, y, fn)
    exponent = V.line_exponent(p, fn)
    n_threads = V.threads(threads, fn)
    if a is None and b is None:
        return _Problem(xs, ys, None, None, 1.0, xs.dtype, exponent, n_threads)
    wa = V.weights(a, len(xs), "a", fn)
    wb = V.weights(b, len(ys), "b", fn)
    V.same_mass(wa, wb, fn)
    mass = float(wa.sum())
    wb = wb * (mass / float(wb.sum()))  # equal masses to the last bit (a fresh array)
    return _Problem(xs, ys, wa, wb, mass, xs.dtype, exponent, n_threads)


# ----------------------------------------------------------------------------- directions


def _normalised(z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (scaled by their largest entry first: no overflow)."""
    z = z / np.abs(z).max(axis=1, keepdims=True)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _random_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the sphere: normalised standard Gaussian vectors."""
    return _normalised(rng.standard_normal((n, d)))


def _orthogonal_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Stacked Haar-random orthonormal bases (QR of Gaussian blocks, signs fixed by diag R)."""
    blocks = []
    for _ in range(-(-n // d)):
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # Q diag(sign R): Haar distributed
        blocks.append(q.T)
    return np.concatenate(blocks)[:n]


def _sobol(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """The first n points of a scrambled Sobol sequence in [0, 1)^d."""
    from scipy.stats import qmc

    points = qmc.Sobol(d, scramble=True, rng=rng).random_base2(max(0, math.ceil(math.log2(n))))
    return points[:n]


def _qmc_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Randomised low-discrepancy directions (ALGORITHMS 5, [Nguyen 2024]): unbiased."""
    if d == 1:
        return np.ones((n, 1))  # the only direction up to sign
    if d == 2:  # a randomly shifted regular grid of angles on the half circle
        angles = np.pi * (np.arange(n) + rng.random()) / n
        return np.column_stack([np.cos(angles), np.sin(angles)])
    if d == 3:  # equal-area map of scrambled 2D Sobol points (Archimedes' cylinder)
        u = _sobol(n, 2, rng)
        z = 1.0 - 2.0 * u[:, 0]
        r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
        phi = 2.0 * np.pi * u[:, 1]
        return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])
    from scipy.special import ndtri

    tiny = np.finfo(np.float64).eps
    return _normalised(ndtri(np.clip(_sobol(n, d, rng), tiny, 1.0 - tiny)))


_MAKERS = {
    "random": _random_directions,
    "orthogonal": _orthogonal_directions,
    "qmc": _qmc_directions,
}


def _explicit_directions(directions: object, d: int, fn: str) -> np.ndarray:
    arr = V.as_array(directions, "directions", fn, ndim=2, dtype=np.float64)
    if arr.shape[1] != d:
        raise ValueError(
            f"{fn}: directions must have shape (L, {d}) to match the dimension of x and y, "
            f"got {arr.shape}"
        )
    zero = np.flatnonzero(~np.any(arr != 0, axis=1))
    if zero.size:
        raise ValueError(
            f"{fn}: directions must not have zero rows (a zero row has no direction), got "
            f"{zero.size} zero row(s), the first at index {zero[0]}"
        )
    return _normalised(arr)


def _directions(directions: object, n: int, d: int, rng: np.random.Generator, fn: str):
    if isinstance(directions, str):
        kind = V.choice(directions, "directions", fn, _DIRECTION_KINDS)
        return np.ascontiguousarray(_MAKERS[kind](n, d, rng))
    return _explicit_directions(directions, d, fn)


# ----------------------------------------------------------------------------- solvers


def sliced_wasserstein(
    x: object,
    y: object,
    a: object = None,
    b: object = None,
    *,
    n_projections: int = 100,
    p: float = 2.0,
    directions: str | object = "random",
    seed: int | np.random.Generator | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> SlicedResult:
    """Sliced Wasserstein distance between two weighted point clouds.

    ``SW_p = (mean_l W_p^p(theta_l # mu, theta_l # nu)) ** (1/p)`` over ``L`` unit directions
    ``theta_l``: a Monte-Carlo (or quasi-Monte-Carlo) estimate of
    ``(E_theta W_p^p(theta # mu, theta # nu)) ** (1/p)``, theta uniform on the sphere. Each
    slice is exact 1D optimal transport with cost ``|s - t|^p`` (sorted, weights merged).

    Parameters
    ----------
    x : array_like, shape (n, d) or (n,)
        Source points (1-d input is a cloud on the line).
    y : array_like, shape (m, d) or (m,)
        Target points.
    a, b : array_like, shape (n,) / (m,), optional
        Non-negative weights of equal total mass; ``None`` is uniform (mass 1). ``W_p^p``
        scales with the mass, like ``<P, C>``.
    n_projections : int
        Number of directions ``L`` (ignored when ``directions`` is an array).
    p : float
        Exponent of the ground cost ``|s - t|^p``, ``p >= 1``.
    directions : {"random", "orthogonal", "qmc"} or array_like, shape (L, d)
        ``"random"``: uniform on the sphere (normalised Gaussians), error ``~ 1/sqrt(L)``.
        ``"orthogonal"``: stacked random orthonormal bases (unbiased, lower variance).
        ``"qmc"``: randomised quasi-Monte-Carlo directions (d = 2: shifted grid of angles;
        d = 3: equal-area map of scrambled Sobol points; d > 3: scrambled Sobol points through
        the inverse normal CDF), unbiased, lowest variance in low dimension; ``L`` a power of
        2 is best. An array gives the directions; its rows are normalised.
    seed : int or numpy.random.Generator, optional
        Randomness of the directions; the same seed gives the same result.
    threads : int, optional
        Threads of the compiled core (default: all cores). Results do not depend on it.
    device : {None, "cpu", "cuda"}
        ``"cuda"`` projects, sorts (CUB segmented sort) and merges on the GPU (a CUDA build and
        a usable device are needed, see :func:`pyot.cuda_available`); the points are copied
        there once. The directions are drawn on the CPU either way, so a seed gives the same
        directions on both devices.

    Returns
    -------
    SlicedResult
        ``value`` (the distance, a float), ``directions`` (``(L, d)`` unit rows) and
        ``projected`` (``(L,)``, ``W_p^p`` per direction), in the dtype of the points.

    Raises
    ------
    ValueError, TypeError
        Invalid input; the message names the argument.
    pyot.CudaError
        ``device="cuda"`` without a CUDA build or a usable GPU, or a failed CUDA call.

    See Also
    --------
    max_sliced_wasserstein

    References
    ----------
    Bonneel, Rabin, Peyré, Pfister 2015, Sliced and Radon Wasserstein barycenters of measures.
    Nguyen, Bariletto, Ho 2024, Quasi-Monte Carlo for 3D sliced Wasserstein.

    Examples
    --------
    >>> import numpy as np, pyot
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((500, 3))
    >>> y = x + [2.0, 0.0, 0.0]  # a shift by m: SW_2 = ||m|| / sqrt(d) = 1.1547...
    >>> res = pyot.sliced_wasserstein(x, y, n_projections=256, directions="qmc", seed=0)
    >>> res.directions.shape, res.projected.shape
    ((256, 3), (256,))
    >>> round(res.value, 2)
    1.15
    """
    fn = "pyot.sliced_wasserstein"
    problem = _problem(fn, x, y, a, b, p, threads)
    n_dirs = V.integer(n_projections, "n_projections", fn, minimum=1)
    rng = V.generator(seed, fn)
    on_gpu = _cuda.device(device, fn) == "cuda"
    dirs = _directions(directions, n_dirs, problem.dim, rng, fn)
    if on_gpu:
        projected = _cuda.sliced_projected(problem.x, problem.y, problem.a, problem.b,
                                           problem.mass, dirs, problem.p)
    else:
        projected = problem.projected(dirs)
    value = max(float(np.mean(projected)), 0.0) ** (1.0 / problem.p)
    dtype = problem.dtype
    return SlicedResult(
        value=value, directions=dirs.astype(dtype), projected=projected.astype(dtype)
    )


# Ascents of max_sliced_wasserstein, from the best starting directions.
_RESTARTS = 3


def _ascend(problem: _Problem, theta: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    """Projected gradient ascent of W_p^p on the sphere from theta (ALGORITHMS 5): step along
    the tangent gradient, renormalise, halve the step when W drops, keep the best."""
    value, grad = problem.value_and_gradient(theta)
    step = _INITIAL_STEP
    for _ in range(max_iter):
        tangent = grad - (grad @ theta) * theta
        norm = float(np.linalg.norm(tangent))
        if step < _MIN_STEP or norm <= _STATIONARY * float(np.linalg.norm(grad)) or norm == 0:
            break
        candidate = theta + (step / norm) * tangent
        candidate /= np.linalg.norm(candidate)
        cand_value, cand_grad = problem.value_and_gradient(candidate)
        if cand_value > value:
            theta, value, grad = candidate, cand_value, cand_grad
        else:
            step *= 0.5
    return theta, value


def max_sliced_wasserstein(
    x: object,
    y: object,
    a: object = None,
    b: object = None,
    *,
    p: float = 2.0,
    n_projections: int = 100,
    max_iter: int = 100,
    seed: int | np.random.Generator | None = None,
    threads: int | None = None,
) -> SlicedResult:
    """Max-sliced Wasserstein distance: the direction whose 1D transport cost is largest.

    Approximates ``max_{||theta|| = 1} W_p(theta # mu, theta # nu)`` [Deshpande 2019]: starts
    at the best three of ``n_projections`` random directions, climbs from each by projected
    gradient ascent on the sphere (the gradient taken through the current sorted matching,
    ``sum_ij P_ij h'(<theta, x_i - y_j>) (x_i - y_j)``, ``h(t) = |t|^p``; the step halves
    whenever the value would drop) and keeps the highest. The objective is not concave: the
    result is a local maximum at least as large as the best random start, and never above the
    full ``W_p``.

    Parameters
    ----------
    x : array_like, shape (n, d) or (n,)
    y : array_like, shape (m, d) or (m,)
    a, b : array_like, optional
        Non-negative weights of equal total mass; ``None`` is uniform.
    p : float
        Exponent of the ground cost, ``p >= 1``.
    n_projections : int
        Random directions tried for the starting point.
    max_iter : int
        Ascent steps (each one projection, two sorts and a merge); 0 keeps the best start.
    seed : int or numpy.random.Generator, optional
        Randomness of the starting directions.
    threads : int, optional
        Threads of the compiled core (default: all cores).

    Returns
    -------
    SlicedResult
        ``value`` (``W_p`` along the direction found), ``directions`` (``(1, d)``) and
        ``projected`` (``(1,)``, its ``W_p^p``).

    Raises
    ------
    ValueError, TypeError
        Invalid input; the message names the argument.

    References
    ----------
    Deshpande et al. 2019, Max-sliced Wasserstein distance and its use for GANs.

    Examples
    --------
    >>> import numpy as np, pyot
    >>> x = np.random.default_rng(0).standard_normal((300, 5))
    >>> res = pyot.max_sliced_wasserstein(x, x + [3.0, 4.0, 0.0, 0.0, 0.0], seed=0)
    >>> round(res.value, 6)  # the shift's length, found along the shift
    5.0
    >>> np.round(np.abs(res.directions[0]), 3)
    array([0.6, 0.8, 0. , 0. , 0. ])
    """
    fn = "pyot.max_sliced_wasserstein"
    problem = _problem(fn, x, y, a, b, p, threads)
    n_starts = V.integer(n_projections, "n_projections", fn, minimum=1)
    iterations = V.integer(max_iter, "max_iter", fn, minimum=0)
    rng = V.generator(seed, fn)
    starts = _random_directions(n_starts, problem.dim, rng)
    # The objective is not concave: climb from the few best starts, keep the highest summit.
    order = np.argsort(-problem.projected(starts), kind="stable")[:_RESTARTS]
    climbs = [_ascend(problem, starts[k], iterations) for k in order]
    theta, value = max(climbs, key=lambda climb: climb[1])
    dtype = problem.dtype
    return SlicedResult(
        value=max(value, 0.0) ** (1.0 / problem.p),
        directions=theta[None, :].astype(dtype),
        projected=np.array([value], dtype=dtype),
    )
