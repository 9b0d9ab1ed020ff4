"""pyot.cost_matrix and pyot.PointCloud."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import pyot

METRICS = ["sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine"]


def _cdist(x, y, metric, p=2.0):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if metric == "minkowski":
        return cdist(x, y, "minkowski", p=p)
    return cdist(x, y, metric)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-5


def _direct_sqeuclidean(x, y):
    """sum_k (x_ik - y_jk)^2 in extended precision: the accuracy reference."""
    x = np.asarray(x, dtype=np.longdouble)
    y = np.asarray(y, dtype=np.longdouble)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)


# ------------------------------------------------------------------ values against scipy


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", [1, 3, 16])
def test_cost_matrix_matches_cdist(rng, dtype, metric, d):  # sqeuclidean d >= 16: GEMM form
    x = rng.standard_normal((23, d)).astype(dtype)
    y = rng.standard_normal((17, d)).astype(dtype)
    c = pyot.cost_matrix(x, y, metric)
    assert c.shape == (23, 17)
    assert c.dtype == dtype
    expected = _cdist(x, y, metric)
    tol = _tol(dtype)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * expected.max())


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 7.5])
def test_minkowski_p(rng, dtype, p):
    x = rng.standard_normal((12, 4)).astype(dtype)
    y = rng.standard_normal((9, 4)).astype(dtype)
    c = pyot.cost_matrix(x, y, "minkowski", p=p)
    expected = _cdist(x, y, "minkowski", p=p)
    tol = _tol(dtype)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * expected.max())


def test_minkowski_special_cases(rng):
    x = rng.standard_normal((10, 3))
    y = rng.standard_normal((8, 3))
    np.testing.assert_allclose(
        pyot.cost_matrix(x, y, "minkowski", p=1.0),
        pyot.cost_matrix(x, y, "cityblock"),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        pyot.cost_matrix(x, y, "minkowski", p=2.0),
        pyot.cost_matrix(x, y, "euclidean"),
        rtol=1e-13,
    )


def test_default_metric_is_sqeuclidean(rng):
    x = rng.standard_normal((6, 2))
    y = rng.standard_normal((5, 2))
    np.testing.assert_array_equal(pyot.cost_matrix(x, y), pyot.cost_matrix(x, y, "sqeuclidean"))


def test_euclidean_is_sqrt_of_sqeuclidean(rng):
    x = rng.standard_normal((15, 5))
    y = rng.standard_normal((11, 5))
    np.testing.assert_allclose(
        pyot.cost_matrix(x, y, "euclidean") ** 2,
        pyot.cost_matrix(x, y, "sqeuclidean"),
        rtol=1e-12,
    )


# ----------------------------------------------------------------------- dtype handling


@pytest.mark.parametrize(
    ("in_dtype", "out_dtype"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int32, np.float64),
        (np.int64, np.float64),
        (np.uint8, np.float64),
        (np.float16, np.float64),
    ],
)
def test_output_dtype(rng, in_dtype, out_dtype):
    x = rng.integers(0, 5, size=(7, 3)).astype(in_dtype)
    y = rng.integers(0, 5, size=(6, 3)).astype(in_dtype)
    c = pyot.cost_matrix(x, y)
    assert c.dtype == out_dtype
    np.testing.assert_allclose(c, _cdist(x, y, "sqeuclidean"), rtol=1e-6)


def test_integer_input_equals_float64(rng):
    xi = rng.integers(-10, 10, size=(9, 3))
    yi = rng.integers(-10, 10, size=(8, 3))
    for metric in METRICS:
        c_int = pyot.cost_matrix(xi, yi, metric)
        c_f64 = pyot.cost_matrix(xi.astype(np.float64), yi.astype(np.float64), metric)
        assert c_int.dtype == np.float64
        np.testing.assert_array_equal(c_int, c_f64)


def test_bool_input_is_float64():
    x = np.array([[True, False], [False, False]])
    y = np.array([[True, True]])
    c = pyot.cost_matrix(x, y)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, [[1.0], [2.0]])


def test_list_input(rng):
    x = [[0.0, 1.0], [2.0, 3.0]]
    y = [[1.0, 1.0]]
    np.testing.assert_array_equal(pyot.cost_matrix(x, y), [[1.0], [5.0]])


@pytest.mark.parametrize("which", ["x", "y"])
@pytest.mark.parametrize(
    "bad",
    [
        np.ones((4, 2), dtype=np.complex128),
        np.array([["a", "b"], ["c", "d"]]),
        np.array([[1.0, None], [2.0, 3.0]], dtype=object),
        np.ones((4, 2)).astype(object),
    ],
    ids=["complex", "str", "object-none", "object-float"],
)
def test_bad_dtype_raises_type_error(ref, which, bad):
    good = np.ones((3, 2))
    args = {"x": good, "y": good}
    args[which] = bad
    with pytest.raises(TypeError, match=ref.arg(which)):
        pyot.cost_matrix(args["x"], args["y"])
    with pytest.raises(TypeError, match=ref.arg(which)):
        pyot.PointCloud(args["x"], args["y"])


# ------------------------------------------------------------------------ bad arguments


def test_unknown_metric(ref, rng):
    x = rng.standard_normal((3, 2))
    with pytest.raises(ValueError, match=ref.arg("metric")):
        pyot.cost_matrix(x, x, "hamming")
    with pytest.raises(ValueError, match=ref.arg("metric")):
        pyot.PointCloud(x, x, "hamming")


@pytest.mark.parametrize("p", [0.0, -1.0, float("nan")])
def test_bad_minkowski_p(ref, rng, p):
    x = rng.standard_normal((3, 2))
    with pytest.raises(ValueError, match=ref.arg("p")):
        pyot.cost_matrix(x, x, "minkowski", p=p)
    with pytest.raises(ValueError, match=ref.arg("p")):
        pyot.PointCloud(x, x, "minkowski", p=p)


def test_dimension_mismatch(ref, rng):
    x = rng.standard_normal((4, 3))
    y = rng.standard_normal((5, 2))
    pattern = f"{ref.arg('x')}|{ref.arg('y')}"
    with pytest.raises(ValueError, match=pattern):
        pyot.cost_matrix(x, y)
    with pytest.raises(ValueError, match=pattern):
        pyot.PointCloud(x, y)


@pytest.mark.parametrize("bad", [np.float64(1.0), np.ones((2, 2, 2))], ids=["0-d", "3-d"])
def test_bad_ndim(ref, bad):
    good = np.ones((3, 2))
    with pytest.raises(ValueError, match=ref.arg("x")):
        pyot.cost_matrix(bad, good)
    with pytest.raises(ValueError, match=ref.arg("y")):
        pyot.cost_matrix(good, bad)


@pytest.mark.parametrize("metric", METRICS)
def test_non_finite_points_do_not_pass_silently(ref, metric):
    """NaN/inf coordinates either raise a ValueError naming the argument or propagate."""
    x = np.ones((3, 2))
    x[1, 0] = np.nan
    y = np.ones((2, 2))
    message = None
    try:
        c = pyot.cost_matrix(x, y, metric)
    except ValueError as err:
        message = str(err)
    if message is not None:
        assert re.search(ref.arg("x"), message), message
    else:
        assert np.isnan(c[1]).all()
        assert np.isfinite(c[[0, 2]]).all()  # one bad point must not poison the others


# ----------------------------------------------------------------- layout, immutability


@pytest.mark.parametrize("metric", METRICS)
def test_layout_independence(rng, dtype, metric):
    big_x = rng.standard_normal((30, 8)).astype(dtype)
    big_y = rng.standard_normal((25, 8)).astype(dtype)
    x = big_x[::2, 1::2]  # non-contiguous view, shape (15, 4)
    y = big_y[::3, ::2]  # (9, 4)
    expected = pyot.cost_matrix(np.ascontiguousarray(x), np.ascontiguousarray(y), metric)
    tol = _tol(dtype)
    for xx, yy in [
        (x, y),
        (np.asfortranarray(x), np.asfortranarray(y)),
        (np.ascontiguousarray(x), np.asfortranarray(y)),
    ]:
        np.testing.assert_allclose(pyot.cost_matrix(xx, yy, metric), expected, rtol=tol, atol=0)
        np.testing.assert_allclose(
            pyot.PointCloud(xx, yy, metric).dense(), expected, rtol=tol, atol=tol
        )


def test_inputs_are_not_modified(rng, dtype):
    x = (rng.standard_normal((10, 3)) + 100.0).astype(dtype)
    y = (rng.standard_normal((7, 3)) + 100.0).astype(dtype)
    x0, y0 = x.copy(), y.copy()
    for metric in METRICS:
        pyot.cost_matrix(x, y, metric)
        pyot.PointCloud(x, y, metric).dense()
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


def test_read_only_inputs(rng):
    x = rng.standard_normal((10, 3))
    y = rng.standard_normal((7, 3))
    x.flags.writeable = False
    y.flags.writeable = False
    expected = cdist(x, y, "sqeuclidean")
    np.testing.assert_allclose(pyot.cost_matrix(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(pyot.PointCloud(x, y).dense(), expected, rtol=1e-12)


# ------------------------------------------------------------------ numerical accuracy


@pytest.mark.parametrize("d", [3, 16, 64])  # 16 and 64: the GEMM form
def test_sqeuclidean_far_from_origin_float64(rng, d):
    """Clouds at distance 1e4 with spread 1: no catastrophic cancellation (GEMM form fails)."""
    x = 1e4 + rng.standard_normal((40, d))
    y = 1e4 + rng.standard_normal((30, d))
    expected = _direct_sqeuclidean(x, y)
    for c in (pyot.cost_matrix(x, y), pyot.PointCloud(x, y).dense()):
        assert c.min() >= 0.0
        rel = np.abs(c - expected) / expected
        assert float(rel.max()) < 1e-10, float(rel.max())
        assert float(np.median(rel)) < 1e-13, float(np.median(rel))


@pytest.mark.parametrize("d", [3, 16, 64])  # 16 and 64: the GEMM form
def test_sqeuclidean_far_from_origin_float32(rng, d):
    x = (1e4 + rng.standard_normal((40, d))).astype(np.float32)
    y = (1e4 + rng.standard_normal((30, d))).astype(np.float32)
    expected = _direct_sqeuclidean(x, y)  # exact for the float32 points as given
    for c in (pyot.cost_matrix(x, y), pyot.PointCloud(x, y).dense()):
        assert c.dtype == np.float32
        assert c.min() >= 0.0
        np.testing.assert_allclose(c, expected.astype(np.float64), rtol=1e-4)


@pytest.mark.parametrize("d", [3, 16])
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cityblock", "minkowski"])
def test_self_cost_diagonal_is_exactly_zero(rng, dtype, metric, d):
    x = (1e4 + rng.standard_normal((25, d))).astype(dtype)
    for c in (pyot.cost_matrix(x, x, metric), pyot.PointCloud(x, x, metric).dense()):
        np.testing.assert_array_equal(np.diag(c), 0.0)
        assert c.min() >= 0.0
        np.testing.assert_allclose(c, c.T, rtol=_tol(dtype), atol=0)


@pytest.mark.parametrize("d", [3, 16, 64])  # 16 and 64: the GEMM form
def test_self_cost_diagonal_copy(rng, d):
    """Same points in two different arrays: the diagonal is 0 too (x_i - x_i = 0)."""
    x = 1e4 + rng.standard_normal((25, d))
    c = pyot.cost_matrix(x, x.copy())
    assert float(np.abs(np.diag(c)).max()) <= 1e-12 * float(np.median(c))
    assert c.min() >= 0.0


def test_sqeuclidean_never_negative_near_duplicates(rng, dtype):
    x = (1e3 + rng.standard_normal((50, 20))).astype(dtype)
    y = x + dtype(1e-3) * rng.standard_normal(x.shape).astype(dtype)
    c = pyot.cost_matrix(x, y)
    assert c.min() >= 0.0
    assert np.isfinite(c).all()


def test_cosine_self_and_nonnegative(rng, dtype):
    x = rng.standard_normal((20, 5)).astype(dtype)
    c = pyot.cost_matrix(x, x, "cosine")
    assert c.min() >= 0.0
    assert c.max() <= 2.0 + 1e-6
    np.testing.assert_allclose(np.diag(c), 0.0, atol=1e-12 if dtype == np.float64 else 1e-6)


def test_cosine_zero_row_gives_one(rng, dtype):
    x = rng.standard_normal((5, 3)).astype(dtype)
    y = rng.standard_normal((4, 3)).astype(dtype)
    x[2] = 0.0
    y[1] = 0.0
    for c in (pyot.cost_matrix(x, y, "cosine"), pyot.PointCloud(x, y, "cosine").dense()):
        assert not np.isnan(c).any()
        np.testing.assert_array_equal(c[2, :], 1.0)
        np.testing.assert_array_equal(c[:, 1], 1.0)
        mask = np.ones_like(c, dtype=bool)
        mask[2, :] = False
        mask[:, 1] = False
        expected = _cdist(x, y, "cosine")
        np.testing.assert_allclose(c[mask], expected[mask], rtol=_tol(dtype), atol=_tol(dtype))


def test_cosine_scale_invariant(rng):
    x = rng.standard_normal((8, 4))
    y = rng.standard_normal((6, 4))
    np.testing.assert_allclose(
        pyot.cost_matrix(3.0 * x, 1e-3 * y, "cosine"),
        pyot.cost_matrix(x, y, "cosine"),
        rtol=1e-10,
        atol=1e-13,
    )


def test_single_point_and_single_dimension(rng):
    x = rng.standard_normal((1, 1))
    y = rng.standard_normal((5, 1))
    np.testing.assert_allclose(pyot.cost_matrix(x, y), (x - y.T) ** 2, rtol=1e-12)


# ------------------------------------------------------------------------- PointCloud


@pytest.mark.parametrize("metric", METRICS)
def test_point_cloud_dense_equals_cost_matrix(rng, dtype, metric):
    x = rng.standard_normal((21, 3)).astype(dtype)
    y = rng.standard_normal((13, 3)).astype(dtype)
    kwargs = {"p": 3.0} if metric == "minkowski" else {}
    pc = pyot.PointCloud(x, y, metric, **kwargs)
    assert pc.shape == (21, 13)
    dense = pc.dense()
    assert isinstance(dense, np.ndarray)
    assert dense.shape == (21, 13)
    assert dense.dtype == dtype
    tol = _tol(dtype)
    expected = pyot.cost_matrix(x, y, metric, **kwargs)
    np.testing.assert_allclose(dense, expected, rtol=tol, atol=tol * float(expected.max()))


def test_point_cloud_attributes(rng):
    x = rng.standard_normal((6, 2))
    y = rng.standard_normal((4, 2))
    pc = pyot.PointCloud(x, y, "minkowski", p=3.0)
    assert pc.metric == "minkowski"
    assert pc.p == 3.0
    np.testing.assert_array_equal(pc.x, x)
    np.testing.assert_array_equal(pc.y, y)
    assert tuple(pc.shape) == (6, 4)


def test_point_cloud_defaults(rng):
    x = rng.standard_normal((6, 2))
    pc = pyot.PointCloud(x, x)
    assert pc.metric == "sqeuclidean"
    assert pc.p == 2.0
    assert pc.shape == (6, 6)


def test_point_cloud_integer_input(rng):
    x = rng.integers(0, 10, size=(5, 2))
    y = rng.integers(0, 10, size=(3, 2))
    pc = pyot.PointCloud(x, y)
    dense = pc.dense()
    assert dense.dtype == np.float64
    np.testing.assert_array_equal(dense, cdist(x.astype(float), y.astype(float), "sqeuclidean"))


def test_point_cloud_does_not_alias_mutable_input(rng):
    """A PointCloud is a snapshot: mutating the caller's array afterwards does not change it,
    or (if it keeps a view) its dense() follows the data consistently. Either way, dense()
    agrees with the points the PointCloud reports."""
    x = rng.standard_normal((5, 2))
    y = rng.standard_normal((4, 2))
    pc = pyot.PointCloud(x, y)
    x[0] += 10.0
    np.testing.assert_allclose(
        pc.dense(), cdist(np.asarray(pc.x), np.asarray(pc.y), "sqeuclidean"), rtol=1e-12
    )
