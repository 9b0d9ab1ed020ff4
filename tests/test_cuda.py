"""The CUDA kernels (cuda/) against the CPU core, and the GPU paths of the Python layers.

Tests marked ``gpu`` run only where pyot was built with ``-DPYOT_CUDA=ON`` and a CUDA device and
a CUDA build of torch are present; elsewhere they are skipped. Each compares a kernel with the
CPU core on the same inputs (values, potentials and gradients), for float32 and float64 and
every metric of PointCloud. The tests without the mark check what every build must do: import
without a GPU, say so through ``cuda_available()`` and refuse ``device="cuda"`` clearly.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_python

import pyot
from pyot import _core

METRICS = ["sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine"]
CODES = {"sqeuclidean": 0, "euclidean": 1, "cityblock": 2, "minkowski": 3, "cosine": 4}


def _torch_cuda():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        return None
    return torch if torch.cuda.is_available() else None


GPU = pyot.cuda_available() and _torch_cuda() is not None
gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(
    not GPU, reason="needs a CUDA build of pyot (-DPYOT_CUDA=ON), a CUDA device and CUDA torch"
)


# ----------------------------------------------------------------------------- every build


def test_cuda_error_is_a_runtime_error_on_every_build():
    assert issubclass(pyot.CudaError, RuntimeError)
    assert pyot.CudaError is _core.CudaError
    assert "CudaError" in pyot.__all__


def test_cuda_available_agrees_with_the_build():
    facts = pyot.config()
    assert pyot.cuda_available() == (facts["cuda_built"] and facts["cuda_devices"] > 0)
    if not _core.cuda_built():
        assert not pyot.cuda_available()
        assert not hasattr(_core, "_cuda_sinkhorn_online")


def test_device_must_be_cpu_or_cuda(rng):
    x = rng.random((10, 2))
    with pytest.raises(ValueError, match=r"pyot.sinkhorn: device must be one of 'cpu', 'cuda'"):
        pyot.sinkhorn(pyot.PointCloud(x, x), eps=0.1, device="gpu")
    with pytest.raises(ValueError, match=r"pyot.sliced_wasserstein: device must be one of"):
        pyot.sliced_wasserstein(x, x, device=0)


def test_device_cpu_is_the_default(rng):
    x, y = rng.random((30, 2)), rng.random((20, 2))
    ref = pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.1)
    res = pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.1, device="cpu")
    np.testing.assert_array_equal(res.f, ref.f)
    sw = pyot.sliced_wasserstein(x, y, seed=0, device="cpu")
    assert sw.value == pyot.sliced_wasserstein(x, y, seed=0).value


@pytest.mark.skipif(pyot.cuda_available(), reason="a usable GPU is present")
def test_device_cuda_without_a_gpu_raises_cuda_error(rng):
    x = rng.random((10, 2))
    why = "CUDA kernels" if not _core.cuda_built() else "usable CUDA device"
    with pytest.raises(pyot.CudaError, match=rf"pyot.sinkhorn: device='cuda' needs .*{why}"):
        pyot.sinkhorn(pyot.PointCloud(x, x), eps=0.1, device="cuda")
    with pytest.raises(pyot.CudaError, match=r"pyot.sliced_wasserstein: device='cuda' needs"):
        pyot.sliced_wasserstein(x, x, device="cuda")


def test_import_without_a_gpu_in_a_fresh_interpreter(tmp_path):
    out = run_python(
        "import os; os.environ['CUDA_VISIBLE_DEVICES'] = ''\n"
        "import pyot\n"
        "print(pyot.cuda_available(), issubclass(pyot.CudaError, RuntimeError))",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


# ----------------------------------------------------------------------------- GPU helpers


def _clouds(rng, n, m, d, dtype):
    x = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.standard_normal((m, d)) + 0.5).astype(dtype)
    return x, y


def _eps(x, y, metric):
    """An eps of a few percent of the cost's range: quick and well conditioned."""
    return 0.05 * pyot.PointCloud(x, y, metric, p=3.0).cost_range()


def _tol(dtype):
    return 1e-9 if dtype == np.float64 else 1e-4


def _rtol(dtype):
    return 1e-7 if dtype == np.float64 else 2e-3


def _centred(v):
    v = np.asarray(v, dtype=np.float64)
    return v - v.mean()


# ----------------------------------------------------------------------------- numpy device


@gpu
@needs_gpu
@pytest.mark.parametrize("metric", METRICS)
def test_online_sinkhorn_matches_the_cpu_core(rng, dtype, metric):
    x, y = _clouds(rng, 300, 257, 3, dtype)
    a = rng.random(300) + 0.1
    b = rng.random(257) + 0.1
    b *= a.sum() / b.sum()
    a[3] = 0.0  # a zero weight stays harmless
    a *= b.sum() / a.sum()
    geom = pyot.PointCloud(x, y, metric, p=3.0)
    eps = _eps(x, y, metric)
    opts = dict(eps=eps, tol=_tol(dtype), method="log", eps_scaling=False)
    ref = pyot.sinkhorn(geom, a, b, **opts)
    res = pyot.sinkhorn(geom, a, b, device="cuda", **opts)
    assert res.converged
    assert ref.converged
    assert res.f.dtype == dtype
    assert res.marginal_error <= _tol(dtype)
    rtol = _rtol(dtype)
    np.testing.assert_allclose(res.value, ref.value, rtol=rtol)
    np.testing.assert_allclose(res.objective, ref.objective, rtol=rtol)
    scale = np.abs(ref.f).max() + eps
    np.testing.assert_allclose(_centred(res.f), _centred(ref.f), atol=rtol * scale * 10)
    np.testing.assert_allclose(_centred(res.g), _centred(ref.g), atol=rtol * scale * 10)


@gpu
@needs_gpu
def test_online_sinkhorn_with_eps_scaling_and_warm_start(rng, dtype):
    x, y = _clouds(rng, 400, 350, 2, dtype)
    geom = pyot.PointCloud(x, y)
    ref = pyot.sinkhorn(geom, eps=0.01, tol=_tol(dtype), method="log")
    res = pyot.sinkhorn(geom, eps=0.01, tol=_tol(dtype), device="cuda")
    assert res.converged
    np.testing.assert_allclose(res.objective, ref.objective, rtol=_rtol(dtype))
    warm = pyot.sinkhorn(geom, eps=0.01, tol=_tol(dtype), init=(res.f, res.g), device="cuda")
    assert warm.n_iter <= 2


@gpu
@needs_gpu
def test_dense_sinkhorn_matches_the_cpu_core(rng, dtype):
    x, y = _clouds(rng, 200, 333, 4, dtype)
    C = pyot.cost_matrix(x, y)
    ref = pyot.sinkhorn(C, eps=0.2, tol=_tol(dtype), method="log", eps_scaling=False)
    res = pyot.sinkhorn(C, eps=0.2, tol=_tol(dtype), eps_scaling=False, device="cuda")
    assert res.converged
    np.testing.assert_allclose(res.value, ref.value, rtol=_rtol(dtype))
    np.testing.assert_allclose(res.objective, ref.objective, rtol=_rtol(dtype))
    np.testing.assert_allclose(res.plan, ref.plan, atol=1e-6 if dtype == np.float64 else 1e-4)


@gpu
@needs_gpu
def test_device_cuda_refuses_what_it_does_not_run(rng):
    C = rng.random((2, 5, 6))
    with pytest.raises(ValueError, match=r"device='cuda' solves one problem at a time"):
        pyot.sinkhorn(C, eps=0.1, device="cuda")
    with pytest.raises(ValueError, match=r"device='cuda' runs balanced log-domain Sinkhorn"):
        pyot.sinkhorn(C[0], eps=0.1, method="scaling", device="cuda")


@gpu
@needs_gpu
def test_gpu_solves_are_reproducible(rng):
    x, y = _clouds(rng, 3000, 2000, 3, np.float32)
    geom = pyot.PointCloud(x, y)
    r1 = pyot.sinkhorn(geom, eps=0.05, tol=1e-4, device="cuda")
    r2 = pyot.sinkhorn(geom, eps=0.05, tol=1e-4, device="cuda")
    np.testing.assert_array_equal(r1.f, r2.f)
    assert r1.value == r2.value


@gpu
@needs_gpu
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sizes", [(500, 500), (400, 613)])
def test_sliced_matches_the_cpu_core(rng, dtype, p, weighted, sizes):
    n, m = sizes
    x, y = _clouds(rng, n, m, 3, dtype)
    a = b = None
    if weighted:
        a, b = rng.random(n), rng.random(m)
        a[:5] = 0.0
        b *= a.sum() / b.sum()
    dirs = rng.standard_normal((37, 3))
    ref = pyot.sliced_wasserstein(x, y, a, b, p=p, directions=dirs)
    res = pyot.sliced_wasserstein(x, y, a, b, p=p, directions=dirs, device="cuda")
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(res.projected, ref.projected, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(res.value, ref.value, rtol=rtol)


@gpu
@needs_gpu
def test_sliced_shift_is_exact_on_the_gpu(rng):
    x = rng.standard_normal((1000, 3))
    delta = np.array([1.0, -2.0, 0.5])
    dirs = rng.standard_normal((16, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    res = pyot.sliced_wasserstein(x, x + delta, directions=dirs, device="cuda")
    np.testing.assert_allclose(res.projected, (dirs @ delta) ** 2, rtol=1e-10)


@gpu
@needs_gpu
def test_device_buffer_errors_become_cuda_error():
    with pytest.raises(pyot.CudaError, match=r"cudaMalloc failed"):
        _core._CudaBuffer(1 << 62)
    buf = _core._CudaBuffer(16)
    with pytest.raises(ValueError, match=r"the array has 8 bytes, the buffer 16"):
        buf.upload(np.zeros(1))


# ----------------------------------------------------------------------------- kernels


@gpu
@needs_gpu
@pytest.mark.parametrize("rows", [True, False])
def test_dense_half_steps_match_logsumexp(rng, dtype, rows):
    torch = _torch_cuda()
    from scipy.special import logsumexp

    n, m = 70, 1100
    C = rng.random((n, m)).astype(dtype)
    h = rng.standard_normal(n if not rows else m)
    h[1] = -np.inf
    inv_eps = 7.0
    ref = (logsumexp(h[None, :] - C.astype(np.float64) * inv_eps, axis=1) if rows else
           logsumexp(h[:, None] - C.astype(np.float64) * inv_eps, axis=0))
    Ct = torch.from_numpy(C).cuda()
    ht = torch.from_numpy(h).cuda()
    out = torch.empty(n if rows else m, dtype=torch.float64, device="cuda")
    _core._cuda_lse_dense(rows, Ct.data_ptr(), n, m, ht.data_ptr(), inv_eps, out.data_ptr(),
                          torch.cuda.current_stream().cuda_stream, np.dtype(dtype).name)
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


@gpu
@needs_gpu
@pytest.mark.parametrize("metric", METRICS)
def test_point_gradient_matches_the_cpu_core(rng, dtype, metric):
    torch = _torch_cuda()
    x, y = _clouds(rng, 120, 90, 11, dtype)  # d > 8: two chunks of gradient coordinates
    geom = pyot.PointCloud(x, y, metric, p=3.0)
    eps = _eps(x, y, metric)
    res = pyot.sinkhorn(geom, eps=eps, tol=1e-9, method="log")
    a, b = np.full(120, 1 / 120), np.full(90, 1 / 90)
    f, g = res.f.astype(np.float64), res.g.astype(np.float64)
    ref = _core.sinkhorn_point_gradient(x, y, CODES[metric], 3.0, a, b, f, g, eps=eps, threads=1)
    dev = [torch.from_numpy(np.ascontiguousarray(v)).cuda() for v in (x, y, a, b, f, g)]
    grad = torch.empty((120, 11), dtype=torch.float64, device="cuda")
    rows = torch.empty(120, dtype=torch.float64, device="cuda")
    _core._cuda_transport_rows(*[t.data_ptr() for t in dev[:2]], 120, 90, 11, CODES[metric], 3.0,
                               *[t.data_ptr() for t in dev[2:]], eps, rows.data_ptr(),
                               grad.data_ptr(), torch.cuda.current_stream().cuda_stream,
                               np.dtype(dtype).name)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(grad.cpu().numpy(), ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_allclose(rows.sum().item(), res.value, rtol=10 * tol)


@gpu
@needs_gpu
@pytest.mark.parametrize("metric", ["sqeuclidean", "cityblock", "cosine"])
def test_batched_sinkhorn_matches_one_solve_per_problem(rng, dtype, metric):
    torch = _torch_cuda()
    from pyot.torch import _cuda as CU

    B, n, m, d = 6, 40, 33, 3
    x = rng.standard_normal((B, n, d)).astype(dtype)
    y = rng.standard_normal((B, m, d)).astype(dtype)
    a = np.full((B, n), 1 / n)
    b = rng.random((B, m)) + 0.1
    b /= b.sum(axis=1, keepdims=True)
    eps, tol = 0.1, _tol(dtype)
    out = CU.sinkhorn_batched(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(),
                              torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda(), metric, 2.0,
                              eps=eps, tol=tol, max_iter=10_000)
    status = out["status"].cpu().numpy()
    for k in range(B):
        ref = pyot.sinkhorn(pyot.PointCloud(x[k], y[k], metric), a[k], b[k], eps=eps, tol=tol,
                            method="log", eps_scaling=False)
        assert status[k] == 0
        np.testing.assert_allclose(out["objective"][k].item(), ref.objective, rtol=_rtol(dtype))
        np.testing.assert_allclose(out["value"][k].item(), ref.value, rtol=_rtol(dtype))
        np.testing.assert_allclose(_centred(out["g"][k].cpu().numpy()), _centred(ref.g),
                                   atol=100 * _rtol(dtype))


# ----------------------------------------------------------------------------- torch


@gpu
@needs_gpu
@pytest.mark.parametrize("metric", METRICS)
def test_torch_objective_gradients_on_cuda_match_the_cpu(rng, dtype, metric):
    torch = _torch_cuda()
    import pyot.torch as pt

    x, y = _clouds(rng, 150, 130, 3, dtype)
    eps = _eps(x, y, metric)
    grads = {}
    for device in ("cpu", "cuda"):
        xt = torch.tensor(x, device=device, requires_grad=True)
        yt = torch.tensor(y, device=device, requires_grad=True)
        res = pt.sinkhorn(pt.PointCloud(xt, yt, metric, p=3.0), eps=eps, tol=_tol(dtype),
                          method="log", eps_scaling=False)
        res.objective.backward()
        assert res.objective.device.type == device
        grads[device] = (res.objective.item(), xt.grad.cpu().numpy(), yt.grad.cpu().numpy())
    rtol = _rtol(dtype) * 10
    np.testing.assert_allclose(grads["cuda"][0], grads["cpu"][0], rtol=rtol)
    for k in (1, 2):
        ref = grads["cpu"][k]
        np.testing.assert_allclose(grads["cuda"][k], ref, atol=rtol * np.abs(ref).max())


@gpu
@needs_gpu
def test_torch_divergence_and_loss_on_cuda_match_the_cpu(rng):
    torch = _torch_cuda()
    import pyot.torch as pt

    x, y = _clouds(rng, 120, 100, 2, np.float64)
    out = {}
    for device in ("cpu", "cuda"):
        xt = torch.tensor(x, device=device, requires_grad=True)
        loss = pt.sinkhorn_divergence(xt, torch.tensor(y, device=device), eps=0.1, tol=1e-10)
        loss.backward()
        out[device] = (loss.item(), xt.grad.cpu().numpy())
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=1e-6)
    np.testing.assert_allclose(out["cuda"][1], out["cpu"][1], atol=1e-6)
    xb = torch.tensor(rng.random((3, 50, 2)), device="cuda", requires_grad=True)
    loss = pt.SinkhornLoss(eps=0.1)(xb, torch.tensor(rng.random((3, 40, 2)), device="cuda"))
    loss.backward()
    assert loss.device.type == "cuda"
    assert xb.grad.shape == (3, 50, 2)


@gpu
@needs_gpu
def test_torch_dense_objective_on_cuda(rng):
    torch = _torch_cuda()
    import pyot.torch as pt

    C = rng.random((40, 30))
    Cc = torch.tensor(C, device="cuda", requires_grad=True)
    res = pt.sinkhorn(Cc, eps=0.1, tol=1e-10)
    res.objective.backward()
    ref = pyot.sinkhorn(C, eps=0.1, tol=1e-10)
    np.testing.assert_allclose(Cc.grad.cpu().numpy(), ref.plan, atol=1e-8)
    with pytest.raises(NotImplementedError, match=r"only objective is differentiable"):
        res.value.backward()


@gpu
@needs_gpu
def test_torch_sliced_on_cuda_matches_the_cpu(rng, dtype):
    torch = _torch_cuda()
    import pyot.torch as pt

    x, y = _clouds(rng, 300, 250, 3, dtype)
    out = {}
    for device in ("cpu", "cuda"):
        xt = torch.tensor(x, device=device, requires_grad=True)
        yt = torch.tensor(y, device=device, requires_grad=True)
        res = pt.sliced_wasserstein(xt, yt, n_projections=50, seed=3)
        res.value.backward()
        out[device] = (res.value.item(), xt.grad.cpu().numpy(), yt.grad.cpu().numpy())
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=rtol)
    for k in (1, 2):
        ref = out["cpu"][k]
        np.testing.assert_allclose(out["cuda"][k], ref, atol=rtol * np.abs(ref).max() * 10)


@gpu
@needs_gpu
def test_torch_kernels_follow_the_current_stream(rng):
    torch = _torch_cuda()
    import pyot.torch as pt

    x = torch.tensor(rng.random((2000, 3)), device="cuda")
    y = torch.tensor(rng.random((1500, 3)), device="cuda")
    ref = pt.sinkhorn(pt.PointCloud(x, y), eps=0.05, tol=1e-8).objective.item()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x2 = x * 1.0  # queued on the side stream: the solve must see it
        res = pt.sinkhorn(pt.PointCloud(x2, y), eps=0.05, tol=1e-8)
    assert res.objective.item() == ref
