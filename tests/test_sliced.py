"""pyot.sliced_wasserstein and pyot.max_sliced_wasserstein.

References: a numpy 1D optimal-transport value computed independently of pyot's merge (the
quantile functions evaluated at the midpoints of the merged breakpoints), scipy's
``wasserstein_distance`` (p = 1), POT's ``ot.sliced_wasserstein_distance`` with the same
directions, exact OT by POT's ``ot.emd2``, and closed forms: a translated cloud gives
``W_p^p(theta) = |<theta, delta>|^p`` on every slice, Gaussians ``SW_2^2 = ||m||^2 / d``.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

import pyot
from pyot import _core

ot = pytest.importorskip("ot")

# ----------------------------------------------------------------------------- references


def wpp_1d(u, v, wu=None, wv=None, p=2.0):
    """W_p^p between weighted samples on the line, in float64, without a merge: the quantile
    functions are evaluated at the midpoint of every interval between consecutive breakpoints
    of the two cumulative distributions. Weights of equal mass M give M times W_p^p of the
    normalised measures."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    wu = np.full(len(u), 1.0 / len(u)) if wu is None else np.asarray(wu, np.float64)
    wv = np.full(len(v), 1.0 / len(v)) if wv is None else np.asarray(wv, np.float64)
    iu, iv = np.argsort(u, kind="stable"), np.argsort(v, kind="stable")
    cu, cv = np.cumsum(wu[iu]), np.cumsum(wv[iv])
    cv *= cu[-1] / cv[-1]
    breaks = np.unique(np.concatenate([[0.0], cu, cv]))
    mid = 0.5 * (breaks[1:] + breaks[:-1])
    qu = u[iu][np.minimum(np.searchsorted(cu, mid), len(u) - 1)]
    qv = v[iv][np.minimum(np.searchsorted(cv, mid), len(v) - 1)]
    return float(np.sum(np.diff(breaks) * np.abs(qu - qv) ** p))


def projected_reference(x, y, directions, a=None, b=None, p=2.0):
    """Per-direction W_p^p of the projections (numpy, float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dirs = np.asarray(directions, np.float64)
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    return np.array([wpp_1d(x @ t, y @ t, a, b, p) for t in dirs])


def unit_rows(rng, n, d):
    z = rng.standard_normal((n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def weights(rng, n, *, zeros=0, mass=1.0):
    w = rng.uniform(0.2, 1.0, size=n)
    if zeros:
        w[rng.choice(n, size=zeros, replace=False)] = 0.0
    return mass * w / w.sum()


def clouds(rng, n=60, m=50, d=3, dtype=np.float64):
    """Two different clouds: a Gaussian and a shifted, stretched uniform one."""
    x = rng.standard_normal((n, d))
    y = rng.uniform(-1.0, 2.0, (m, d)) * np.linspace(0.5, 2.0, d) + 0.3
    return x.astype(dtype), y.astype(dtype)


def full_wp(x, y, a=None, b=None, p=2.0):
    """Exact W_p between the clouds (POT's network simplex on |x - y|^p)."""
    a = np.full(len(x), 1.0 / len(x)) if a is None else a
    b = np.full(len(y), 1.0 / len(y)) if b is None else b
    cost = cdist(x, y, "euclidean") ** p
    return float(ot.emd2(a, b, cost)) ** (1.0 / p)


# ----------------------------------------------------------------------------- values


class TestSlicedValue:
    @pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
    @pytest.mark.parametrize(("n", "m"), [(40, 40), (37, 53), (3000, 2500)])
    def test_line_equals_1d_reference(self, rng, p, n, m):
        """d = 1: every direction is +-1, the value is the 1D W_p."""
        u, v = rng.standard_normal(n), 2.0 * rng.random(m) - 0.5
        res = pyot.sliced_wasserstein(u, v, p=p, n_projections=7, seed=0)
        expected = wpp_1d(u, v, p=p)
        np.testing.assert_allclose(res.projected, expected, rtol=1e-10)
        np.testing.assert_allclose(res.value, expected ** (1 / p), rtol=1e-10)
        np.testing.assert_allclose(np.abs(res.directions), 1.0)

    def test_line_p1_equals_scipy(self, rng):
        u, v = rng.standard_normal(300), rng.standard_normal(200) + 1.0
        wu, wv = weights(rng, 300, zeros=5), weights(rng, 200)
        res = pyot.sliced_wasserstein(u, v, wu, wv, p=1.0, n_projections=1, seed=1)
        np.testing.assert_allclose(res.value, wasserstein_distance(u, v, wu, wv), rtol=1e-10)

    @pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
    def test_embedded_line_along_its_direction(self, rng, p):
        """Clouds on a line of R^4 projected on that line: the 1D value."""
        e = unit_rows(rng, 1, 4)[0]
        s, t = rng.standard_normal(80), rng.standard_normal(90) * 2.0 + 0.5
        x, y = s[:, None] * e + 1.0, t[:, None] * e + 1.0  # same offset: cancels
        res = pyot.sliced_wasserstein(x, y, p=p, directions=-3.0 * e[None, :])
        np.testing.assert_allclose(res.projected[0], wpp_1d(s, t, p=p), rtol=1e-10)

    @pytest.mark.parametrize("p", [1.0, 2.0, 1.7])
    @pytest.mark.parametrize("weighted", [False, True])
    def test_explicit_directions_against_numpy(self, rng, p, weighted):
        x, y = clouds(rng, 70, 45, d=5)
        a, b = (weights(rng, 70, zeros=3), weights(rng, 45)) if weighted else (None, None)
        dirs = rng.standard_normal((12, 5)) * 3.0  # not normalised: pyot normalises rows
        res = pyot.sliced_wasserstein(x, y, a, b, p=p, directions=dirs)
        expected = projected_reference(x, y, dirs, a, b, p)
        np.testing.assert_allclose(res.projected, expected, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(res.value, np.mean(expected) ** (1 / p), rtol=1e-10)
        np.testing.assert_allclose(
            res.directions, dirs / np.linalg.norm(dirs, axis=1, keepdims=True), rtol=1e-14
        )

    @pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
    def test_against_pot_same_directions(self, rng, p):
        x, y = clouds(rng, 400, 300, d=6)
        a, b = weights(rng, 400), weights(rng, 300)
        dirs = unit_rows(rng, 30, 6)
        for wa, wb in ((None, None), (a, b)):
            res = pyot.sliced_wasserstein(x, y, wa, wb, p=p, directions=dirs)
            value, log = ot.sliced_wasserstein_distance(
                x, y, wa, wb, p=p, projections=dirs.T, log=True
            )
            np.testing.assert_allclose(res.projected, log["projected_emds"], rtol=1e-9)
            np.testing.assert_allclose(res.value, value, rtol=1e-10)

    def test_large_unsorted_samples_with_ties_and_signs(self, rng):
        """Radix-sorted slices (n above the std::sort cut-off) with ties, negatives, -0.0."""
        x = rng.integers(-20, 20, (5000, 1)).astype(np.float64)
        x[:10] = -0.0
        y = rng.standard_normal((4096, 1)) * 7.0
        for dtype in (np.float32, np.float64):
            res = pyot.sliced_wasserstein(x.astype(dtype), y.astype(dtype), n_projections=1)
            expected = wpp_1d(x[:, 0].astype(dtype), y[:, 0].astype(dtype))
            rtol = 1e-6 if dtype == np.float32 else 1e-11
            np.testing.assert_allclose(res.projected[0], expected, rtol=rtol)

    def test_large_weighted_against_pot(self, rng, dtype):
        """Weighted slices above the radix cut-off (values and weights sorted together)."""
        x, y = clouds(rng, 5000, 4000, d=3)
        a, b = weights(rng, 5000, zeros=50), weights(rng, 4000)
        dirs = unit_rows(rng, 6, 3)
        res = pyot.sliced_wasserstein(
            x.astype(dtype), y.astype(dtype), a, b, p=1.5, directions=dirs.astype(dtype)
        )
        _, log = ot.sliced_wasserstein_distance(
            x, y, a, b, p=1.5, projections=res.directions.T.astype(np.float64), log=True
        )
        rtol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(res.projected, log["projected_emds"], rtol=rtol)

    def test_identical_clouds_give_zero(self, rng, dtype):
        x = rng.standard_normal((3000, 4)).astype(dtype)
        res = pyot.sliced_wasserstein(x, x[::-1].copy(), seed=0)
        assert res.value == 0.0
        np.testing.assert_array_equal(res.projected, 0.0)

    @pytest.mark.parametrize("p", [1.0, 2.0, 3.5])
    def test_translation_gives_projected_shift(self, rng, p):
        """y = x + delta: every slice is a translation, W_p^p(theta) = |<theta, delta>|^p."""
        x = rng.standard_normal((500, 4))
        delta = np.array([0.5, -1.0, 2.0, 0.25])
        a = weights(rng, 500, zeros=10)
        for wa in (None, a):
            res = pyot.sliced_wasserstein(x, x + delta, wa, wa, p=p, seed=3, n_projections=40)
            expected = np.abs(res.directions @ delta) ** p
            np.testing.assert_allclose(res.projected, expected, rtol=1e-9, atol=1e-12)

    def test_gaussian_closed_form(self, rng):
        """N(0, I) against N(m, I) in d = 5: SW_2^2 = ||m||^2 / d, within the Monte-Carlo
        error measured from the per-direction values plus the sampling bias of n points."""
        d, n, L = 5, 20_000, 400
        m = np.array([1.0, -2.0, 0.5, 0.0, 1.5])
        x = rng.standard_normal((n, d))
        y = rng.standard_normal((n, d)) + m
        res = pyot.sliced_wasserstein(x, y, n_projections=L, seed=7)
        mc_error = np.std(res.projected) / np.sqrt(L)
        assert abs(res.value**2 - m @ m / d) < 4 * mc_error + 0.01

    def test_converges_as_l_grows(self, rng):
        """RMS error over seeds falls like 1/sqrt(L) (exact value known for a translation)."""
        x = rng.standard_normal((200, 6))
        delta = rng.standard_normal(6)
        exact = delta @ delta / 6
        rmse = {}
        for L in (16, 256, 4096):
            est = [
                pyot.sliced_wasserstein(x, x + delta, n_projections=L, seed=s).value ** 2
                for s in range(12)
            ]
            rmse[L] = np.sqrt(np.mean((np.array(est) - exact) ** 2))
        assert rmse[256] < rmse[16] / 2
        assert rmse[4096] < rmse[256] / 2

    @pytest.mark.parametrize("d", [2, 3, 8])
    def test_qmc_and_orthogonal_reduce_variance(self, rng, d):
        """Measured over 30 seeds at L = 64 on clouds whose slices are not a quadratic form."""
        x, y = clouds(rng, 150, 120, d=d)
        var = {}
        for kind in ("random", "orthogonal", "qmc"):
            values = [
                pyot.sliced_wasserstein(x, y, n_projections=64, directions=kind, seed=s).value
                for s in range(30)
            ]
            var[kind] = np.var(values)
        assert var["qmc"] < var["random"] / 2, var
        assert var["orthogonal"] < var["random"], var

    @pytest.mark.parametrize("kind", ["random", "orthogonal", "qmc"])
    @pytest.mark.parametrize("d", [1, 2, 3, 5])
    def test_direction_sets_are_unit_and_unbiased(self, rng, kind, d):
        res = pyot.sliced_wasserstein(
            rng.random((20, d)), rng.random((20, d)), n_projections=50, directions=kind, seed=2
        )
        assert res.directions.shape == (50, d)
        np.testing.assert_allclose(np.linalg.norm(res.directions, axis=1), 1.0, rtol=1e-12)

    def test_orthogonal_blocks_are_orthonormal(self):
        res = pyot.sliced_wasserstein(
            np.zeros((3, 4)), np.ones((3, 4)), n_projections=10, directions="orthogonal", seed=0
        )
        for k0 in (0, 4):
            block = res.directions[k0 : k0 + 4]
            np.testing.assert_allclose(block @ block.T, np.eye(4), atol=1e-12)

    @pytest.mark.parametrize("weighted", [False, True])
    def test_weights_against_numpy(self, rng, weighted):
        x, y = clouds(rng, 120, 90, d=3)
        a = weights(rng, 120, zeros=7, mass=2.5)
        b = weights(rng, 90, zeros=2, mass=2.5)
        dirs = unit_rows(rng, 9, 3)
        res = pyot.sliced_wasserstein(x, y, a, b, directions=dirs, p=1.5)
        expected = projected_reference(x, y, dirs, a, b, p=1.5)
        np.testing.assert_allclose(res.projected, expected, rtol=1e-10)
        # W_p^p scales with the common mass, like <P, C>
        unit = pyot.sliced_wasserstein(x, y, a / 2.5, b / 2.5, directions=dirs, p=1.5)
        np.testing.assert_allclose(res.projected, 2.5 * unit.projected, rtol=1e-12)

    def test_uniform_weights_given_explicitly(self, rng):
        """The uniform fast paths (paired and integer merge) equal the weighted merge."""
        for n, m in ((300, 300), (300, 170)):
            x, y = clouds(rng, n, m, d=4)
            dirs = unit_rows(rng, 10, 4)
            fast = pyot.sliced_wasserstein(x, y, directions=dirs)
            weighted = pyot.sliced_wasserstein(
                x, y, np.full(n, 1.0 / n), np.full(m, 1.0 / m), directions=dirs
            )
            np.testing.assert_allclose(fast.projected, weighted.projected, rtol=1e-12)

    def test_one_weight_vector_given(self, rng):
        x, y = clouds(rng, 50, 40, d=2)
        a = weights(rng, 50)
        dirs = unit_rows(rng, 5, 2)
        res = pyot.sliced_wasserstein(x, y, a, directions=dirs)
        np.testing.assert_allclose(
            res.projected, projected_reference(x, y, dirs, a, None), rtol=1e-10
        )

    def test_masses_equal_within_tolerance(self, rng):
        x, y = clouds(rng, 30, 20, d=2)
        a, b = weights(rng, 30), weights(rng, 20) * (1 + 1e-8)
        res = pyot.sliced_wasserstein(x, y, a, b, n_projections=5, seed=0)
        assert np.isfinite(res.value)

    def test_float32_and_float64(self, rng, dtype):
        x, y = clouds(rng, 3000, 2800, d=5)
        res = pyot.sliced_wasserstein(x.astype(dtype), y.astype(dtype), seed=4)
        ref = pyot.sliced_wasserstein(x, y, seed=4)
        assert res.directions.dtype == dtype
        assert res.projected.dtype == dtype
        assert isinstance(res.value, float)
        rtol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(res.value, ref.value, rtol=rtol)
        np.testing.assert_allclose(res.projected, ref.projected, rtol=10 * rtol, atol=1e-6)

    def test_mixed_and_integer_dtypes(self, rng):
        x = rng.integers(0, 5, (40, 2))
        y = rng.standard_normal((30, 2)).astype(np.float32)
        res = pyot.sliced_wasserstein(x, y, n_projections=4, seed=0)
        assert res.projected.dtype == np.float64
        ref = pyot.sliced_wasserstein(
            x.astype(np.float64), y.astype(np.float64), seed=0, n_projections=4
        )
        np.testing.assert_array_equal(res.projected, ref.projected)


# ----------------------------------------------------------------------------- randomness


class TestSeeds:
    @pytest.mark.parametrize("kind", ["random", "orthogonal", "qmc"])
    def test_same_seed_same_result(self, rng, kind):
        x, y = clouds(rng, 50, 60, d=4)
        r1 = pyot.sliced_wasserstein(x, y, directions=kind, seed=11)
        r2 = pyot.sliced_wasserstein(x, y, directions=kind, seed=11)
        r3 = pyot.sliced_wasserstein(x, y, directions=kind, seed=np.random.default_rng(11))
        np.testing.assert_array_equal(r1.directions, r2.directions)
        assert r1.value == r2.value == r3.value
        r4 = pyot.sliced_wasserstein(x, y, directions=kind, seed=12)
        assert not np.array_equal(r1.directions, r4.directions)

    def test_generator_state_advances(self, rng):
        x, y = clouds(rng, 20, 20, d=3)
        gen = np.random.default_rng(5)
        r1 = pyot.sliced_wasserstein(x, y, seed=gen)
        r2 = pyot.sliced_wasserstein(x, y, seed=gen)
        assert not np.array_equal(r1.directions, r2.directions)

    def test_no_seed_is_random(self, rng):
        x, y = clouds(rng, 20, 20, d=3)
        r1, r2 = pyot.sliced_wasserstein(x, y), pyot.sliced_wasserstein(x, y)
        assert not np.array_equal(r1.directions, r2.directions)

    def test_max_sliced_seed(self, rng):
        x, y = clouds(rng, 50, 40, d=4)
        r1 = pyot.max_sliced_wasserstein(x, y, seed=3)
        r2 = pyot.max_sliced_wasserstein(x, y, seed=np.random.default_rng(3))
        np.testing.assert_array_equal(r1.directions, r2.directions)
        assert r1.value == r2.value


# ----------------------------------------------------------------------------- threads


class TestThreads:
    @pytest.mark.parametrize("weighted", [False, True])
    def test_thread_count_independence(self, rng, dtype, weighted):
        x, y = clouds(rng, 6000, 5000, d=7, dtype=dtype)
        a, b = (weights(rng, 6000), weights(rng, 5000)) if weighted else (None, None)
        results = [
            pyot.sliced_wasserstein(x, y, a, b, n_projections=24, seed=0, threads=t)
            for t in (1, 2, 3)
        ]
        for r in results[1:]:
            np.testing.assert_array_equal(r.projected, results[0].projected)
            assert r.value == results[0].value
        default = pyot.sliced_wasserstein(x, y, a, b, n_projections=24, seed=0)
        assert default.value == results[0].value

    def test_chunks_do_not_change_the_result(self, rng, dtype):
        """Directions processed a few at a time (small memory budget) or all at once."""
        x, y = clouds(rng, 3000, 2000, d=3, dtype=dtype)
        dirs = unit_rows(rng, 37, 3).astype(dtype)
        args = (x, y, None, None, dirs)
        whole = _core.sliced_projected(*args, mass=1.0, p=2.0, threads=2)
        bytes_per_dir = (3000 + 2000) * x.itemsize
        for budget in (1, 5 * bytes_per_dir, 16 * bytes_per_dir):
            part = _core.sliced_projected(*args, mass=1.0, p=2.0, threads=2, chunk_bytes=budget)
            np.testing.assert_array_equal(part, whole)

    def test_two_python_threads_at_once(self, rng):
        x, y = clouds(rng, 20_000, 20_000, d=8)
        serial = pyot.sliced_wasserstein(x, y, n_projections=20, seed=1).value
        out, errors = [None, None], []

        def work(k):
            try:
                out[k] = pyot.sliced_wasserstein(x, y, n_projections=20, seed=1).value
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not errors
        assert out == [serial, serial]


# ----------------------------------------------------------------------------- max-sliced


class TestMaxSliced:
    @pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
    def test_between_sliced_and_full(self, rng, p):
        x, y = clouds(rng, 40, 30, d=3)
        for a, b in ((None, None), (weights(rng, 40), weights(rng, 30))):
            ms = pyot.max_sliced_wasserstein(x, y, a, b, p=p, seed=0)
            sw = pyot.sliced_wasserstein(x, y, a, b, p=p, seed=0)
            full = full_wp(x, y, a, b, p)
            assert sw.value <= ms.value <= full * (1 + 1e-12)
            assert ms.directions.shape == (1, 3)
            assert ms.projected.shape == (1,)
            np.testing.assert_allclose(ms.value, ms.projected[0] ** (1 / p), rtol=1e-12)
            np.testing.assert_allclose(np.linalg.norm(ms.directions), 1.0, rtol=1e-12)

    @pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
    def test_translation_finds_the_shift(self, rng, p):
        x = rng.standard_normal((300, 6))
        delta = np.array([1.0, -2.0, 0.5, 0.0, 1.0, 3.0])
        res = pyot.max_sliced_wasserstein(x, x + delta, p=p, seed=1)
        np.testing.assert_allclose(res.value, np.linalg.norm(delta), rtol=1e-6)
        np.testing.assert_allclose(abs(res.directions[0] @ delta), np.linalg.norm(delta), rtol=1e-6)

    def test_value_matches_its_direction(self, rng):
        x, y = clouds(rng, 80, 70, d=4)
        res = pyot.max_sliced_wasserstein(x, y, p=1.5, seed=2)
        again = pyot.sliced_wasserstein(x, y, p=1.5, directions=res.directions)
        np.testing.assert_allclose(res.projected, again.projected, rtol=1e-10)

    def test_ascent_improves_on_the_best_start(self, rng):
        x, y = clouds(rng, 100, 90, d=10)
        start = pyot.max_sliced_wasserstein(x, y, max_iter=0, n_projections=20, seed=4)
        sliced = pyot.sliced_wasserstein(x, y, n_projections=20, seed=4)
        np.testing.assert_allclose(start.projected[0], sliced.projected.max(), rtol=1e-10)
        best = pyot.max_sliced_wasserstein(x, y, n_projections=20, seed=4)
        assert best.value > start.value

    @pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
    def test_gradient_by_finite_differences(self, rng, p):
        """The core's gradient in theta is the derivative of W_p^p where the matching is
        locally constant (generic continuous data)."""
        x, y = clouds(rng, 40, 30, d=4)
        a, b = weights(rng, 40), weights(rng, 30)
        theta = unit_rows(rng, 1, 4)[0]
        direction = rng.standard_normal(4)
        h = 1e-7
        for wa, wb in ((None, None), (a, b)):

            def wpp(t, wa=wa, wb=wb):
                return _core.max_sliced_step(x, y, wa, wb, t, mass=1.0, p=p, threads=1)

            value, grad = wpp(theta)
            np.testing.assert_allclose(value, wpp_1d(x @ theta, y @ theta, wa, wb, p), rtol=1e-12)
            fd = (wpp(theta + h * direction)[0] - wpp(theta - h * direction)[0]) / (2 * h)
            np.testing.assert_allclose(grad @ direction, fd, rtol=1e-5, atol=1e-9)

    def test_gradient_large_clouds(self, rng):
        """Slices above the radix cut-off (argsort carrying indices)."""
        x, y = clouds(rng, 3000, 2500, d=3)
        a, b = weights(rng, 3000), weights(rng, 2500)
        theta, direction, h = unit_rows(rng, 1, 3)[0], rng.standard_normal(3), 1e-8
        for wa, wb in ((None, None), (a, b)):

            def wpp(t, wa=wa, wb=wb):
                return _core.max_sliced_step(x, y, wa, wb, t, mass=1.0, p=2.0, threads=2)

            value, grad = wpp(theta)
            np.testing.assert_allclose(value, wpp_1d(x @ theta, y @ theta, wa, wb), rtol=1e-11)
            fd = (wpp(theta + h * direction)[0] - wpp(theta - h * direction)[0]) / (2 * h)
            np.testing.assert_allclose(grad @ direction, fd, rtol=1e-5, atol=1e-8)

    def test_float32(self, rng):
        x, y = clouds(rng, 200, 150, d=3, dtype=np.float32)
        res = pyot.max_sliced_wasserstein(x, y, seed=0)
        ref = pyot.max_sliced_wasserstein(x.astype(np.float64), y.astype(np.float64), seed=0)
        assert res.directions.dtype == np.float32
        assert isinstance(res.value, float)
        np.testing.assert_allclose(res.value, ref.value, rtol=1e-4)


# ----------------------------------------------------------------------------- API details


def test_result_is_frozen_with_a_short_repr(rng):
    res = pyot.sliced_wasserstein(rng.random((10, 2)), rng.random((10, 2)), seed=0)
    assert isinstance(res, pyot.SlicedResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.value = 1.0
    assert "directions=array(shape=(100, 2)" in repr(res)


def test_inputs_not_modified(rng):
    x, y = clouds(rng, 3000, 40, d=2)
    a, b = weights(rng, 3000), weights(rng, 40)
    dirs = rng.standard_normal((5, 2))
    copies = [v.copy() for v in (x, y, a, b, dirs)]
    pyot.sliced_wasserstein(x, y, a, b, directions=dirs)
    pyot.max_sliced_wasserstein(x, y, a, b, seed=0)
    for v, c in zip((x, y, a, b, dirs), copies, strict=True):
        np.testing.assert_array_equal(v, c)


def test_non_contiguous_and_list_inputs(rng):
    x = np.asfortranarray(rng.random((30, 3)))
    y = rng.random((40, 6))[:, ::2]
    res = pyot.sliced_wasserstein(x, y, n_projections=5, seed=0)
    ref = pyot.sliced_wasserstein(x.copy(order="C"), y.copy(), n_projections=5, seed=0)
    assert res.value == ref.value
    lists = pyot.sliced_wasserstein(x.tolist(), y.tolist(), n_projections=5, seed=0)
    assert lists.value == ref.value


def test_options_are_keyword_only(rng):
    x = rng.random((5, 2))
    with pytest.raises(TypeError):
        pyot.sliced_wasserstein(x, x, None, None, 10)
    with pytest.raises(TypeError):
        pyot.max_sliced_wasserstein(x, x, None, None, 2.0)


# ----------------------------------------------------------------------------- bad input

_x = np.arange(12.0).reshape(4, 3)
_y = np.arange(15.0).reshape(5, 3) / 2
_a, _b = np.full(4, 0.25), np.full(5, 0.2)


def _with(arr, idx, value):
    arr = np.array(arr, dtype=np.float64)
    arr[idx] = value
    return arr


BAD_COMMON = [
    # (id, args, kwargs, exception, argument named)
    ("dims-mismatch", (_x, _y[:, :2]), {}, ValueError, "x"),
    ("x-nan", (_with(_x, (0, 1), np.nan), _y), {}, ValueError, "x"),
    ("y-inf", (_x, _with(_y, (2, 0), np.inf)), {}, ValueError, "y"),
    ("x-empty", (np.ones((0, 3)), _y), {}, ValueError, "x"),
    ("x-3d", (np.ones((2, 2, 3)), _y), {}, ValueError, "x"),
    ("x-complex", (_x.astype(complex), _y), {}, TypeError, "x"),
    ("y-str", (_x, "points"), {}, TypeError, "y"),
    ("a-wrong-length", (_x, _y, np.full(5, 0.2), _b), {}, ValueError, "a"),
    ("b-negative", (_x, _y, _a, _with(_b, 0, -0.2)), {}, ValueError, "b"),
    ("a-nan", (_x, _y, _with(_a, 1, np.nan), _b), {}, ValueError, "a"),
    ("a-zero-sum", (_x, _y, np.zeros(4), _b), {}, ValueError, "a"),
    ("masses-differ", (_x, _y, _a, 2 * _b), {}, ValueError, "a"),
    ("p-below-one", (_x, _y), {"p": 0.5}, ValueError, "p"),
    ("p-zero", (_x, _y), {"p": 0.0}, ValueError, "p"),
    ("p-nan", (_x, _y), {"p": float("nan")}, ValueError, "p"),
    ("p-inf", (_x, _y), {"p": float("inf")}, ValueError, "p"),
    ("p-str", (_x, _y), {"p": "2"}, TypeError, "p"),
    ("n_projections-zero", (_x, _y), {"n_projections": 0}, ValueError, "n_projections"),
    ("n_projections-negative", (_x, _y), {"n_projections": -3}, ValueError, "n_projections"),
    ("n_projections-float", (_x, _y), {"n_projections": 10.0}, TypeError, "n_projections"),
    ("n_projections-bool", (_x, _y), {"n_projections": True}, TypeError, "n_projections"),
    ("seed-negative", (_x, _y), {"seed": -1}, ValueError, "seed"),
    ("seed-float", (_x, _y), {"seed": 1.5}, TypeError, "seed"),
    ("seed-str", (_x, _y), {"seed": "abc"}, TypeError, "seed"),
    ("threads-zero", (_x, _y), {"threads": 0}, ValueError, "threads"),
]

BAD_SLICED = [
    *BAD_COMMON,
    ("directions-unknown", (_x, _y), {"directions": "sobol"}, ValueError, "directions"),
    ("directions-wrong-d", (_x, _y), {"directions": np.ones((4, 2))}, ValueError, "directions"),
    ("directions-1d", (_x, _y), {"directions": np.ones(3)}, ValueError, "directions"),
    ("directions-3d", (_x, _y), {"directions": np.ones((2, 2, 3))}, ValueError, "directions"),
    ("directions-empty", (_x, _y), {"directions": np.ones((0, 3))}, ValueError, "directions"),
    (
        "directions-zero-row",
        (_x, _y),
        {"directions": np.array([[1.0, 0, 0], [0, 0, 0]])},
        ValueError,
        "directions",
    ),
    (
        "directions-nan",
        (_x, _y),
        {"directions": np.array([[1.0, np.nan, 0]])},
        ValueError,
        "directions",
    ),
    ("directions-type", (_x, _y), {"directions": 3}, ValueError, "directions"),
]

BAD_MAX_SLICED = [
    *BAD_COMMON,
    ("max_iter-negative", (_x, _y), {"max_iter": -1}, ValueError, "max_iter"),
    ("max_iter-float", (_x, _y), {"max_iter": 2.5}, TypeError, "max_iter"),
]


def _cases(table):
    return [pytest.param(*case[1:], id=case[0]) for case in table]


@pytest.mark.parametrize(("args", "kwargs", "exc", "name"), _cases(BAD_SLICED))
def test_sliced_bad_inputs(ref, args, kwargs, exc, name):
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.sliced_wasserstein(*args, **kwargs)


@pytest.mark.parametrize(("args", "kwargs", "exc", "name"), _cases(BAD_MAX_SLICED))
def test_max_sliced_bad_inputs(ref, args, kwargs, exc, name):
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.max_sliced_wasserstein(*args, **kwargs)


def test_messages_name_the_function_and_the_value():
    with pytest.raises(ValueError, match=r"pyot\.sliced_wasserstein: p must be .*, got 0\.5"):
        pyot.sliced_wasserstein(_x, _y, p=0.5)
    with pytest.raises(ValueError, match=r"zero row.*index 1"):
        pyot.sliced_wasserstein(_x, _y, directions=np.array([[1.0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"pyot\.max_sliced_wasserstein: n_projections must be"):
        pyot.max_sliced_wasserstein(_x, _y, n_projections=0)


def test_core_guards_direct_calls():
    """pyot._core re-checks what it relies on: no crash when called without pyot's checks."""
    dirs = np.ones((2, 3))
    with pytest.raises(ValueError, match="dimension"):
        _core.sliced_projected(_x, _y[:, :2].copy(), None, None, dirs, mass=1.0, p=2.0, threads=1)
    with pytest.raises(ValueError, match="p must"):
        _core.sliced_projected(_x, _y, None, None, dirs, mass=1.0, p=0.5, threads=1)
    with pytest.raises(ValueError, match="both clouds or neither"):
        _core.sliced_projected(_x, _y, _a, None, dirs, mass=1.0, p=2.0, threads=1)
    with pytest.raises(ValueError, match="a"):
        _core.sliced_projected(_x, _y, _b, _b, dirs, mass=1.0, p=2.0, threads=1)
    with pytest.raises(ValueError, match="theta"):
        _core.max_sliced_step(_x, _y, None, None, np.ones(2), mass=1.0, p=2.0, threads=1)


# ----------------------------------------------------------------------------- hypothesis


@st.composite
def weighted_clouds(draw):
    n, m, d = draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 4))
    coords = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
    x = draw(arrays(np.float64, (n, d), elements=coords))
    y = draw(arrays(np.float64, (m, d), elements=coords))
    w = st.one_of(st.just(0.0), st.floats(0.01, 1.0))
    a, b = draw(arrays(np.float64, n, elements=w)), draw(arrays(np.float64, m, elements=w))
    a[0] += 0.5
    b[-1] += 0.5
    return x, y, a / a.sum(), b / b.sum(), draw(st.sampled_from([1.0, 1.5, 2.0, 3.0]))


@settings(max_examples=60, deadline=None)
@given(problem=weighted_clouds(), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_against_reference_and_symmetry(problem, seed):
    x, y, a, b, p = problem
    dirs = unit_rows(np.random.default_rng(seed), 3, x.shape[1])
    res = pyot.sliced_wasserstein(x, y, a, b, p=p, directions=dirs)
    expected = projected_reference(x, y, dirs, a, b, p)
    scale = max(1.0, float(np.abs(np.concatenate([x.ravel(), y.ravel()])).max())) ** p
    np.testing.assert_allclose(res.projected, expected, rtol=1e-9, atol=1e-12 * scale)
    back = pyot.sliced_wasserstein(y, x, b, a, p=p, directions=dirs)
    np.testing.assert_allclose(back.projected, res.projected, rtol=1e-9, atol=1e-12 * scale)


@settings(max_examples=40, deadline=None)
@given(
    problem=weighted_clouds(),
    shift=st.floats(-50, 50),
    scale=st.floats(0.1, 10.0),
)
def test_hypothesis_shift_and_scale(problem, shift, scale):
    """Translating both clouds changes nothing; scaling them scales SW_p by the same factor."""
    x, y, a, b, p = problem
    dirs = unit_rows(np.random.default_rng(0), 4, x.shape[1])
    base = pyot.sliced_wasserstein(x, y, a, b, p=p, directions=dirs).value
    moved = pyot.sliced_wasserstein(x + shift, y + shift, a, b, p=p, directions=dirs).value
    scaled = pyot.sliced_wasserstein(scale * x, scale * y, a, b, p=p, directions=dirs).value
    atol = 1e-9 * (1.0 + abs(shift) + float(np.abs(x).max()) + float(np.abs(y).max()))
    np.testing.assert_allclose(moved, base, rtol=1e-7, atol=atol)
    np.testing.assert_allclose(scaled, scale * base, rtol=1e-9, atol=scale * 1e-12)
