"""
pyot compiled core (C++17): thin bindings over the header-only solvers
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['CudaError', 'bilinear_cost', 'build_info', 'cost_matrix', 'cuda_available', 'cuda_built', 'cuda_device_count', 'emd', 'exp_vec', 'finite_ranges', 'hw_exp_throughput', 'hw_read_bandwidth', 'log_vec', 'max_sliced_step', 'max_threads', 'minibatch_solve', 'partial_entropic_dense', 'partial_entropic_online', 'partial_exact', 'sinkhorn_dense', 'sinkhorn_dense_point_gradient', 'sinkhorn_entropic_map', 'sinkhorn_entropic_map_vjp', 'sinkhorn_online', 'sinkhorn_online_batch', 'sinkhorn_plan_matvec', 'sinkhorn_point_gradient', 'sinkhorn_point_gradient_batch', 'sinkhorn_symmetric_dense', 'sinkhorn_symmetric_online', 'sinkhorn_symmetric_online_batch', 'sinkhorn_weighted_point_gradient', 'sliced_gradient', 'sliced_projected', 'sliced_projected_timed', 'sparse_objective', 'sparse_solve', 'std_sort_seconds', 'wasserstein_1d']
class CudaError(RuntimeError):
    pass
def bilinear_cost(u: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[float, float]:
    """
    Internal (pyot.inverse): out = -u @ y.T (float64, C-contiguous (n, m)); returns its (min, max), both NaN when an entry is NaN or inf.
    """
def build_info() -> dict:
    ...
@typing.overload
def cost_matrix(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float32]:
    """
    Dense (n, m) cost matrix between the rows of x and y (direct sums).
    """
@typing.overload
def cost_matrix(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
    """
    Dense (n, m) cost matrix between the rows of x and y (direct sums).
    """
def cuda_available() -> bool:
    """
    True if the CUDA kernels were built and a CUDA device is usable.
    """
def cuda_built() -> bool:
    """
    True if this build of pyot._core includes the CUDA kernels.
    """
def cuda_device_count() -> int:
    """
    Number of usable CUDA devices (0 without a CUDA build, driver or device).
    """
@typing.overload
def emd(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    Batched network simplex. Returns (status, n_iter, value, f, g, problem, row, col, mass): per-problem fields, then the plans' support.
    """
@typing.overload
def emd(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    Batched network simplex. Returns (status, n_iter, value, f, g, problem, row, col, mass): per-problem fields, then the plans' support.
    """
@typing.overload
def exp_vec(x: numpy.typing.NDArray[numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    The solvers' vectorized exp, elementwise (float32 lanes), for tests.
    """
@typing.overload
def exp_vec(x: numpy.typing.NDArray[numpy.float64]) -> numpy.typing.NDArray[numpy.float64]:
    """
    The solvers' vectorized exp, elementwise (float64 lanes), for tests.
    """
@typing.overload
def finite_ranges(arr: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Per leading index: (min, max) of the entries, NaN when any is NaN or inf.
    """
@typing.overload
def finite_ranges(arr: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Per leading index: (min, max) of the entries, NaN when any is NaN or inf.
    """
def hw_exp_throughput(n: typing.SupportsInt | typing.SupportsIndex = 16777216, repeats: typing.SupportsInt | typing.SupportsIndex = 5, threads: typing.SupportsInt | typing.SupportsIndex = 0, single: bool = False) -> float:
    """
    Exp evaluations per second with the solvers' vectorized exp: double precision, or the float exp of float32 problems when single.
    """
def hw_read_bandwidth(nbytes: typing.SupportsInt | typing.SupportsIndex = 1073741824, repeats: typing.SupportsInt | typing.SupportsIndex = 5, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> float:
    """
    Streaming read bandwidth in bytes per second.
    """
def log_vec(x: numpy.typing.NDArray[numpy.float64]) -> numpy.typing.NDArray[numpy.float64]:
    """
    The solvers' vectorized log, elementwise (float64), for tests.
    """
@typing.overload
def max_sliced_step(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, theta: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[float, numpy.typing.NDArray[numpy.float64]]:
    """
    (W_p^p, gradient) along the unit direction theta (d,), by the monotone coupling of the slice.
    """
@typing.overload
def max_sliced_step(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, theta: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[float, numpy.typing.NDArray[numpy.float64]]:
    """
    (W_p^p, gradient) along the unit direction theta (d,), by the monotone coupling of the slice.
    """
def max_threads() -> int:
    ...
@typing.overload
def minibatch_solve(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], ix: numpy.typing.NDArray[numpy.int64], iy: numpy.typing.NDArray[numpy.int64], pairs: numpy.typing.NDArray[numpy.int64], *, solver: typing.SupportsInt | typing.SupportsIndex, metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, weight_x: typing.SupportsFloat | typing.SupportsIndex, weight_y: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, scaling_ratio: typing.SupportsFloat | typing.SupportsIndex, plans: bool, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    OT between batches of x (rows ix[k]) and y (rows iy[k]) for each pair (x batch, y batch) of pairs, one problem per thread. Returns (status, n_iter, value, problem, row, col, mass): per-problem fields, then the plans' support in x / y indices.
    """
@typing.overload
def minibatch_solve(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], ix: numpy.typing.NDArray[numpy.int64], iy: numpy.typing.NDArray[numpy.int64], pairs: numpy.typing.NDArray[numpy.int64], *, solver: typing.SupportsInt | typing.SupportsIndex, metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, weight_x: typing.SupportsFloat | typing.SupportsIndex, weight_y: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, scaling_ratio: typing.SupportsFloat | typing.SupportsIndex, plans: bool, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    OT between batches of x (rows ix[k]) and y (rows iy[k]) for each pair (x batch, y batch) of pairs, one problem per thread. Returns (status, n_iter, value, problem, row, col, mass): per-problem fields, then the plans' support in x / y indices.
    """
@typing.overload
def partial_entropic_dense(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, lam: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, float, float, float]:
    """
    Entropic partial OT; f and g are updated in place. Returns (status, n_iter, marginal_error, value, objective, lam).
    """
@typing.overload
def partial_entropic_dense(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, lam: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, float, float, float]:
    """
    Entropic partial OT; f and g are updated in place. Returns (status, n_iter, marginal_error, value, objective, lam).
    """
@typing.overload
def partial_entropic_online(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, lam: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, float, float, float]:
    """
    Entropic partial OT between point clouds, cost evaluated on the fly.
    """
@typing.overload
def partial_entropic_online(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, lam: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, mass: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, float, float, float]:
    """
    Entropic partial OT between point clouds, cost evaluated on the fly.
    """
@typing.overload
def partial_exact(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    Exact partial OT (network simplex on the augmented problem). Returns (status, n_iter, value, f, g, rows, cols, mass).
    """
@typing.overload
def partial_exact(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, float, numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
    """
    Exact partial OT (network simplex on the augmented problem). Returns (status, n_iter, value, f, g, rows, cols, mass).
    """
@typing.overload
def sinkhorn_dense(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], cost_range: numpy.typing.NDArray[numpy.float64], eps_start: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, method: typing.SupportsInt | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True, plan_y: numpy.typing.NDArray[numpy.float64] | None = None, plan_y_out: numpy.typing.NDArray[numpy.float64] | None = None, plan_y_fused_only: bool = False) -> tuple:
    """
    Batched dense Sinkhorn; f and g are updated in place. Returns (status, n_iter, marginal_error, value, objective), each of shape (B,); value is NaN when value=False (<P, C> not computed). plan_y (m, d) with plan_y_out (n, d), B = 1 only: P @ plan_y at the returned potentials is written into plan_y_out, and the tuple gains a sixth element, whether it was: always, or with plan_y_fused_only only when the float kernel's exact confirmation pass gave it at those potentials (no pass of its own).
    """
@typing.overload
def sinkhorn_dense(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], cost_range: numpy.typing.NDArray[numpy.float64], eps_start: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, method: typing.SupportsInt | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True, plan_y: numpy.typing.NDArray[numpy.float64] | None = None, plan_y_out: numpy.typing.NDArray[numpy.float64] | None = None, plan_y_fused_only: bool = False) -> tuple:
    """
    Batched dense Sinkhorn; f and g are updated in place. Returns (status, n_iter, marginal_error, value, objective), each of shape (B,); value is NaN when value=False (<P, C> not computed). plan_y (m, d) with plan_y_out (n, d), B = 1 only: P @ plan_y at the returned potentials is written into plan_y_out, and the tuple gains a sixth element, whether it was: always, or with plan_y_fused_only only when the float kernel's exact confirmation pass gave it at those potentials (no pass of its own).
    """
@typing.overload
def sinkhorn_dense_point_gradient(cost: numpy.typing.NDArray[numpy.float32], x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sinkhorn_point_gradient from the cost matrix (n, m) of x, y already evaluated (squared Euclidean or Euclidean: one exp pass over it and the weighted sums), (n, d) float64.
    """
@typing.overload
def sinkhorn_dense_point_gradient(cost: numpy.typing.NDArray[numpy.float64], x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sinkhorn_point_gradient from the cost matrix (n, m) of x, y already evaluated (squared Euclidean or Euclidean: one exp pass over it and the weighted sums), (n, d) float64.
    """
@typing.overload
def sinkhorn_entropic_map(z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, b: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Entropic map T(z) = sum_j w_j y_j, w = softmax_j(log b_j + (g_j - c(z, y_j)) / eps), one online pass: ((n, d) T(z), (n,) log normaliser), float64.
    """
@typing.overload
def sinkhorn_entropic_map(z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, b: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Entropic map T(z) = sum_j w_j y_j, w = softmax_j(log b_j + (g_j - c(z, y_j)) / eps), one online pass: ((n, d) T(z), (n,) log normaliser), float64.
    """
@typing.overload
def sinkhorn_entropic_map_vjp(z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, b: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], lse: numpy.typing.NDArray[numpy.float64], tz: numpy.typing.NDArray[numpy.float64], cot: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    Vector-Jacobian product of the entropic map in z: (n, d) float64.
    """
@typing.overload
def sinkhorn_entropic_map_vjp(z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, b: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], lse: numpy.typing.NDArray[numpy.float64], tz: numpy.typing.NDArray[numpy.float64], cot: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    Vector-Jacobian product of the entropic map in z: (n, d) float64.
    """
@typing.overload
def sinkhorn_online(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, cost_range: typing.SupportsFloat | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Sinkhorn between point clouds with the cost evaluated on the fly; value=False skips <P, C> (one exp pass; value is then NaN).
    """
@typing.overload
def sinkhorn_online(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, cost_range: typing.SupportsFloat | typing.SupportsIndex, eps_start: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Sinkhorn between point clouds with the cost evaluated on the fly; value=False skips <P, C> (one exp pass; value is then NaN).
    """
@typing.overload
def sinkhorn_online_batch(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], cost_range: numpy.typing.NDArray[numpy.float64], eps_start: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Sinkhorn between B pairs of point clouds x (B, n, d), y (B, m, d), cost on the fly, in one call; f and g (B, n) / (B, m) updated in place. Returns (status, n_iter, marginal_error, value, objective), each of shape (B,); value is NaN when value=False.
    """
@typing.overload
def sinkhorn_online_batch(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], cost_range: numpy.typing.NDArray[numpy.float64], eps_start: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, eps_scaling: typing.SupportsFloat | typing.SupportsIndex, overrelax: bool, tau_a: typing.SupportsFloat | typing.SupportsIndex, tau_b: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Sinkhorn between B pairs of point clouds x (B, n, d), y (B, m, d), cost on the fly, in one call; f and g (B, n) / (B, m) updated in place. Returns (status, n_iter, marginal_error, value, objective), each of shape (B,); value is NaN when value=False.
    """
@typing.overload
def sinkhorn_plan_matvec(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], v: numpy.typing.NDArray[numpy.float64], *, cost_weight: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij (v_j + cost_weight C_ij), (n,) float64, P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) from the potentials, cost tiles on the fly.
    """
@typing.overload
def sinkhorn_plan_matvec(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], v: numpy.typing.NDArray[numpy.float64], *, cost_weight: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij (v_j + cost_weight C_ij), (n,) float64, P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) from the potentials, cost tiles on the fly.
    """
@typing.overload
def sinkhorn_point_gradient(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij grad_x c(x_i, y_j), (n, d) float64, from the potentials of P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), cost tiles on the fly.
    """
@typing.overload
def sinkhorn_point_gradient(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij grad_x c(x_i, y_j), (n, d) float64, from the potentials of P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), cost tiles on the fly.
    """
@typing.overload
def sinkhorn_point_gradient_batch(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sinkhorn_point_gradient over a batch (B, n, d), in one call: (B, n, d) float64.
    """
@typing.overload
def sinkhorn_point_gradient_batch(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sinkhorn_point_gradient over a batch (B, n, d), in one call: (B, n, d) float64.
    """
@typing.overload
def sinkhorn_symmetric_dense(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Symmetric self-transport potential h (debiasing term); value is NaN when value=False.
    """
@typing.overload
def sinkhorn_symmetric_dense(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Symmetric self-transport potential h (debiasing term); value is NaN when value=False.
    """
@typing.overload
def sinkhorn_symmetric_online(x: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Symmetric self-transport potential on a point cloud, cost on the fly; value is NaN when value=False.
    """
@typing.overload
def sinkhorn_symmetric_online(x: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Symmetric self-transport potential on a point cloud, cost on the fly; value is NaN when value=False.
    """
@typing.overload
def sinkhorn_symmetric_online_batch(x: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Self-transport potentials h (B, n) of B point clouds (B, n, d), in one call; value (<P, C>, one exp pass) is NaN when value=False.
    """
@typing.overload
def sinkhorn_symmetric_online_batch(x: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], h: numpy.typing.NDArray[numpy.float64], *, eps: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, value: bool = True) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Self-transport potentials h (B, n) of B point clouds (B, n, d), in one call; value (<P, C>, one exp pass) is NaN when value=False.
    """
@typing.overload
def sinkhorn_weighted_point_gradient(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], row_weights: numpy.typing.NDArray[numpy.float64], col_weights: numpy.typing.NDArray[numpy.float64], *, cost_weight: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij (r_i + s_j + cost_weight C_ij) grad_x c(x_i, y_j), (n, d) float64, cost tiles on the fly.
    """
@typing.overload
def sinkhorn_weighted_point_gradient(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], metric: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], f: numpy.typing.NDArray[numpy.float64], g: numpy.typing.NDArray[numpy.float64], row_weights: numpy.typing.NDArray[numpy.float64], col_weights: numpy.typing.NDArray[numpy.float64], *, cost_weight: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    sum_j P_ij (r_i + s_j + cost_weight C_ij) grad_x c(x_i, y_j), (n, d) float64, cost tiles on the fly.
    """
@typing.overload
def sliced_gradient(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, directions: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    (W_p^p per direction, gradient of their sum in x (n, d), in y (m, d)) for the unit rows of directions (L, d), float64.
    """
@typing.overload
def sliced_gradient(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, directions: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    (W_p^p per direction, gradient of their sum in x (n, d), in y (m, d)) for the unit rows of directions (L, d), float64.
    """
@typing.overload
def sliced_projected(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, directions: numpy.typing.NDArray[numpy.float32], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, chunk_bytes: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
    """
    Per-direction W_p^p between the projections of x and y on the unit rows of directions (L, d); a, b are float64 weights of total mass `mass`, or None for uniform (both or neither).
    """
@typing.overload
def sliced_projected(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64] | None, b: numpy.typing.NDArray[numpy.float64] | None, directions: numpy.typing.NDArray[numpy.float64], *, mass: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, chunk_bytes: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
    """
    Per-direction W_p^p between the projections of x and y on the unit rows of directions (L, d); a, b are float64 weights of total mass `mass`, or None for uniform (both or neither).
    """
@typing.overload
def sliced_projected_timed(x: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], directions: numpy.typing.NDArray[numpy.float32], *, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], dict]:
    """
    sliced_projected for uniform clouds, also returning the phase times {project: wall s, sort: thread-s, merge: thread-s, sorted: values}.
    """
@typing.overload
def sliced_projected_timed(x: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], directions: numpy.typing.NDArray[numpy.float64], *, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float64], dict]:
    """
    sliced_projected for uniform clouds, also returning the phase times {project: wall s, sort: thread-s, merge: thread-s, sorted: values}.
    """
@typing.overload
def sparse_objective(cost_t: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], x: numpy.typing.NDArray[numpy.float64], *, k: typing.SupportsInt | typing.SupportsIndex, reg: typing.SupportsFloat | typing.SupportsIndex, formulation: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[float, numpy.typing.NDArray[numpy.float64], float]:
    """
    The concave (semi-)dual F(x) over the transposed cost (m, n): returns (F, grad F, marginal error of the plan at x).
    """
@typing.overload
def sparse_objective(cost_t: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], x: numpy.typing.NDArray[numpy.float64], *, k: typing.SupportsInt | typing.SupportsIndex, reg: typing.SupportsFloat | typing.SupportsIndex, formulation: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple[float, numpy.typing.NDArray[numpy.float64], float]:
    """
    The concave (semi-)dual F(x) over the transposed cost (m, n): returns (F, grad F, marginal error of the plan at x).
    """
@typing.overload
def sparse_solve(cost: numpy.typing.NDArray[numpy.float32], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, k: typing.SupportsInt | typing.SupportsIndex, reg: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, formulation: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, polish: bool = True, assignment: bool = True, transpose: bool = True) -> tuple:
    """
    Sparsity-constrained OT by L-BFGS on the semi-dual (formulation=0) or dual (1); polish: where k binds, try quadratic OT on the top-k support; assignment: k = 1 with equal column weights and row weights that are integer multiples of them is solved exactly as an assignment problem; transpose: with m < n, quadratic OT over the column potentials first (kept when no column exceeds k nonzeros). Returns (status, stalled, polished, n_iter, marginal_error, value, objective, f, g, col_ptr, rows, values); the last three are the plan in CSC form.
    """
@typing.overload
def sparse_solve(cost: numpy.typing.NDArray[numpy.float64], a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], *, k: typing.SupportsInt | typing.SupportsIndex, reg: typing.SupportsFloat | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_iter: typing.SupportsInt | typing.SupportsIndex, formulation: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, polish: bool = True, assignment: bool = True, transpose: bool = True) -> tuple:
    """
    Sparsity-constrained OT by L-BFGS on the semi-dual (formulation=0) or dual (1); polish: where k binds, try quadratic OT on the top-k support; assignment: k = 1 with equal column weights and row weights that are integer multiples of them is solved exactly as an assignment problem; transpose: with m < n, quadratic OT over the column potentials first (kept when no column exceeds k nonzeros). Returns (status, stalled, polished, n_iter, marginal_error, value, objective, f, g, col_ptr, rows, values); the last three are the plan in CSC form.
    """
@typing.overload
def std_sort_seconds(values: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Bench probe: thread-seconds (summed per-row times) to std::sort each row of a copy of values (rows, n), threads over rows.
    """
@typing.overload
def std_sort_seconds(values: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Bench probe: thread-seconds (summed per-row times) to std::sort each row of a copy of values (rows, n), threads over rows.
    """
@typing.overload
def wasserstein_1d(u: numpy.typing.NDArray[numpy.float32], v: numpy.typing.NDArray[numpy.float32], u_weights: numpy.typing.NDArray[numpy.float64] | None, v_weights: numpy.typing.NDArray[numpy.float64] | None, *, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    W_p^p on the line between the columns of u (n, k) and v (m, k).
    """
@typing.overload
def wasserstein_1d(u: numpy.typing.NDArray[numpy.float64], v: numpy.typing.NDArray[numpy.float64], u_weights: numpy.typing.NDArray[numpy.float64] | None, v_weights: numpy.typing.NDArray[numpy.float64] | None, *, p: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    W_p^p on the line between the columns of u (n, k) and v (m, k).
    """
__version__: str = '0.1.0'
