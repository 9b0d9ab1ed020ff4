"""pyot.minibatch_ot (m-OT, BoMb-OT; threads, executors, Dask) and pyot.torch.ot_pairs.

References: with one batch of all the points m-OT is the full problem, so it must equal
``pyot.emd`` (and the other full solvers for the other inner solvers); linearity of the lift
(``value = <plan, C>`` for exact inner solvers); the outer plan of BoMb-OT is a coupling of the
uniform batch weights and beats the identity coupling; ``linear_sum_assignment`` for the
pairing of ``ot_pairs``; and bit-identical results across threads and executors
(ALGORITHMS.md section 7).
"""

from __future__ import annotations

import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import pyot


def clouds(rng, n=60, m=50, d=3, dtype=np.float64):
    x = rng.normal(size=(n, d)).astype(dtype)
    y = (rng.normal(size=(m, d)) + 0.5).astype(dtype)
    return x, y


def assert_identical(r1, r2):
    """Bit-identical results: values, batch values, outer plan and plan."""
    assert r1.value == r2.value
    np.testing.assert_array_equal(r1.batch_values, r2.batch_values)
    for name in ("plan", "outer_plan"):
        p1, p2 = getattr(r1, name), getattr(r2, name)
        assert (p1 is None) == (p2 is None)
        if p1 is not None:
            assert p1.shape == p2.shape
            np.testing.assert_array_equal(p1.indptr, p2.indptr)
            np.testing.assert_array_equal(p1.indices, p2.indices)
            np.testing.assert_array_equal(p1.data, p2.data)


class TestMOT:
    @pytest.mark.parametrize("d", [3, 20])  # 20: batch costs in the GEMM form
    def test_one_full_batch_equals_emd(self, rng, dtype, d):
        x, y = clouds(rng, 40, 40, d, dtype=dtype)
        res = pyot.minibatch_ot(x, y, batch_size=40, n_batches=1, seed=0, return_plan=True)
        full = pyot.emd(pyot.cost_matrix(x, y))
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        assert res.value == pytest.approx(full.value, rel=rtol)
        assert res.batch_values.shape == (1,)
        assert res.plan.dtype == dtype
        # Continuous random data: the optimal plan is unique.
        np.testing.assert_allclose(res.plan.toarray(), full.plan.toarray(), atol=rtol / 40)

    def test_value_is_the_lifted_plan_cost(self, rng):
        x, y = clouds(rng)
        cost = pyot.cost_matrix(x, y)
        res = pyot.minibatch_ot(x, y, batch_size=10, n_batches=7, seed=3, return_plan=True)
        assert res.value == pytest.approx(float((res.plan.toarray() * cost).sum()), rel=1e-12)
        assert res.value == pytest.approx(res.batch_values.mean(), rel=1e-14)
        assert res.plan.sum() == pytest.approx(1.0, rel=1e-12)
        assert res.plan.min() >= 0
        assert (res.n_batches, res.batch_size) == (7, 10)

    def test_one_batch_plan_is_a_permutation(self, rng):
        x, y = clouds(rng)
        res = pyot.minibatch_ot(x, y, batch_size=12, n_batches=1, seed=1, return_plan=True)
        assert res.plan.nnz == 12
        np.testing.assert_allclose(res.plan.data, 1 / 12, rtol=1e-12)
        dense = res.plan.toarray()
        assert ((dense > 0).sum(axis=0) <= 1).all()
        assert ((dense > 0).sum(axis=1) <= 1).all()

    def test_biased_upwards(self, rng):
        x = rng.normal(size=(200, 2))
        res = pyot.minibatch_ot(x, x, batch_size=20, n_batches=30, seed=0)
        assert res.value > 0  # m-OT(a, a) > 0

    def test_same_seed_same_result(self, rng):
        x, y = clouds(rng)
        kw = dict(batch_size=8, n_batches=20, return_plan=True)
        assert_identical(pyot.minibatch_ot(x, y, seed=5, **kw),
                         pyot.minibatch_ot(x, y, seed=5, **kw))
        g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
        assert_identical(pyot.minibatch_ot(x, y, seed=g1, **kw),
                         pyot.minibatch_ot(x, y, seed=g2, **kw))
        other = pyot.minibatch_ot(x, y, seed=6, **kw)
        assert other.value != pyot.minibatch_ot(x, y, seed=5, **kw).value

    def test_generator_state_advances(self, rng):
        x, y = clouds(rng)
        g = np.random.default_rng(0)
        r1 = pyot.minibatch_ot(x, y, batch_size=8, n_batches=5, seed=g)
        r2 = pyot.minibatch_ot(x, y, batch_size=8, n_batches=5, seed=g)
        assert r1.value != r2.value

    @pytest.mark.parametrize("estimator", ["m-ot", "bomb-ot"])
    def test_threads_do_not_change_the_result(self, rng, estimator):
        x, y = clouds(rng)
        kw = dict(batch_size=10, n_batches=6, estimator=estimator, seed=2, return_plan=True)
        assert_identical(pyot.minibatch_ot(x, y, threads=1, **kw),
                         pyot.minibatch_ot(x, y, threads=3, **kw))

    def test_uniform_weights_given_are_uniform(self, rng):
        x, y = clouds(rng)
        kw = dict(batch_size=10, n_batches=4, seed=2, return_plan=True)
        assert_identical(pyot.minibatch_ot(x, y, **kw),
                         pyot.minibatch_ot(x, y, np.full(60, 1 / 60), np.full(50, 1 / 50), **kw))

    def test_weighted_sampling(self, rng, ref):
        x, y = clouds(rng)
        a, b = ref.weights(rng, 60, zeros=10), ref.weights(rng, 50)
        res = pyot.minibatch_ot(x, y, a, b, batch_size=30, n_batches=40, seed=0,
                                return_plan=True)
        plan = res.plan.toarray()
        assert plan.sum() == pytest.approx(1.0, rel=1e-12)
        assert (plan[a == 0] == 0).all()  # zero weights are never drawn
        # The lifted plan is unbiased for a coupling of (a, b): its marginals are near them.
        assert np.abs(plan.sum(axis=1) - a).sum() < 0.5

    def test_mass_scales_batch_weights(self, rng):
        x, y = clouds(rng, 30, 30)
        kw = dict(batch_size=10, n_batches=5, seed=4)
        one = pyot.minibatch_ot(x, y, **kw)
        two = pyot.minibatch_ot(x, y, np.full(30, 2 / 30), np.full(30, 2 / 30), **kw)
        assert two.value == pytest.approx(2 * one.value, rel=1e-12)

    def test_float32_stays_float32(self, rng):
        x, y = clouds(rng, dtype=np.float32)
        res = pyot.minibatch_ot(x, y, batch_size=10, n_batches=3, seed=0, return_plan=True)
        assert res.plan.dtype == np.float32
        assert isinstance(res.value, float)

    def test_metrics(self, rng):
        x, y = clouds(rng, 30, 30)
        for metric in ("euclidean", "cityblock", "cosine", "minkowski"):
            res = pyot.minibatch_ot(x, y, batch_size=30, n_batches=1, seed=0, metric=metric,
                                    p=3.0)
            full = pyot.emd(pyot.cost_matrix(x, y, metric, p=3.0)).value
            assert res.value == pytest.approx(full, rel=1e-9), metric

    def test_convergence_warning(self, rng):
        x, y = clouds(rng)
        with pytest.warns(pyot.ConvergenceWarning, match="did not converge"):
            pyot.minibatch_ot(x, y, batch_size=20, n_batches=3, seed=0, max_iter=2)

    def test_repr(self, rng):
        x, y = clouds(rng)
        text = repr(pyot.minibatch_ot(x, y, batch_size=5, n_batches=3, seed=0))
        assert text.startswith("MinibatchResult(value=")


class TestInnerSolvers:
    """One batch of all the points: each inner solver equals its full solver."""

    def test_sinkhorn(self, rng):
        x, y = clouds(rng, 30, 30)
        res = pyot.minibatch_ot(x, y, batch_size=30, n_batches=1, seed=0, solver="sinkhorn",
                                eps=0.1, tol=1e-10, return_plan=True)
        full = pyot.sinkhorn(pyot.cost_matrix(x, y), eps=0.1, tol=1e-10)
        assert res.value == pytest.approx(full.value, rel=1e-7)
        np.testing.assert_allclose(res.plan.toarray(), full.plan, atol=1e-9)

    def test_unbalanced(self, rng):
        x, y = clouds(rng, 30, 30)
        res = pyot.minibatch_ot(x, y, None, np.full(30, 1.5 / 30), batch_size=30, n_batches=1,
                                seed=0, solver="unbalanced", eps=0.1, reg_marginals=(1.0, 2.0),
                                tol=1e-10)
        full = pyot.unbalanced_sinkhorn(pyot.cost_matrix(x, y), None, np.full(30, 1.5 / 30),
                                        eps=0.1, reg_marginals=(1.0, 2.0), tol=1e-10)
        assert res.value == pytest.approx(full.value, rel=1e-6)

    def test_partial_exact(self, rng):
        x, y = clouds(rng, 30, 30)
        res = pyot.minibatch_ot(x, y, batch_size=30, n_batches=1, seed=0, solver="partial",
                                mass=0.6, return_plan=True)
        full = pyot.partial_ot(pyot.cost_matrix(x, y), mass=0.6)
        assert res.value == pytest.approx(full.value, rel=1e-10)
        assert res.plan.sum() == pytest.approx(0.6, rel=1e-12)
        np.testing.assert_allclose(res.plan.toarray(), full.plan.toarray(), atol=1e-12)

    def test_partial_entropic(self, rng):
        x, y = clouds(rng, 30, 30)
        # (The entropic partial solver plateaus near a 1e-7 residual on this problem.)
        res = pyot.minibatch_ot(x, y, batch_size=30, n_batches=1, seed=0, solver="partial",
                                mass=0.6, eps=0.1, return_plan=True)
        full = pyot.partial_ot(pyot.cost_matrix(x, y), mass=0.6, eps=0.1)
        assert res.value == pytest.approx(full.value, rel=1e-5)
        np.testing.assert_allclose(res.plan.toarray(), full.plan, atol=1e-6)
        assert res.plan.sum() == pytest.approx(0.6, rel=1e-5)

    def test_entropic_close_to_exact(self, rng):
        x, y = clouds(rng)
        kw = dict(batch_size=20, n_batches=5, seed=0)
        exact = pyot.minibatch_ot(x, y, **kw)
        entropic = pyot.minibatch_ot(x, y, solver="sinkhorn", eps=1e-3, **kw)
        assert entropic.value == pytest.approx(exact.value, rel=1e-2)


class TestBoMbOT:
    def test_outer_plan_is_a_coupling(self, rng):
        x, y = clouds(rng)
        k = 7
        res = pyot.minibatch_ot(x, y, batch_size=10, n_batches=k, estimator="bomb-ot",
                                seed=0, return_plan=True)
        gamma = res.outer_plan.toarray()
        assert gamma.shape == (k, k)
        assert res.batch_values.shape == (k, k)
        assert gamma.min() >= 0
        np.testing.assert_allclose(gamma.sum(axis=0), 1 / k, rtol=1e-12)
        np.testing.assert_allclose(gamma.sum(axis=1), 1 / k, rtol=1e-12)
        assert res.value == pytest.approx(float((gamma * res.batch_values).sum()), rel=1e-12)
        # Optimal among couplings: at most the identity coupling (the m-OT pairing).
        assert res.value <= np.trace(res.batch_values) / k * (1 + 1e-12)
        cost = pyot.cost_matrix(x, y)
        assert res.value == pytest.approx(float((res.plan.toarray() * cost).sum()), rel=1e-12)
        assert res.plan.sum() == pytest.approx(1.0, rel=1e-12)

    def test_batch_values_are_inner_ot(self, rng):
        x, y = clouds(rng, 20, 20)
        res = pyot.minibatch_ot(x, y, batch_size=20, n_batches=3, estimator="bomb-ot", seed=0)
        # Batches of all the points: every pair is the full problem.
        full = pyot.emd(pyot.cost_matrix(x, y)).value
        np.testing.assert_allclose(res.batch_values, full, rtol=1e-12)
        assert res.value == pytest.approx(full, rel=1e-12)

    def test_plan_without_return_plan(self, rng):
        x, y = clouds(rng)
        res = pyot.minibatch_ot(x, y, batch_size=5, n_batches=3, estimator="bomb-ot", seed=0)
        assert res.plan is None
        assert res.outer_plan is not None


class TestExecutors:
    @pytest.mark.parametrize("estimator", ["m-ot", "bomb-ot"])
    def test_thread_pool_is_bit_identical(self, rng, estimator):
        x, y = clouds(rng)
        kw = dict(batch_size=10, n_batches=9, estimator=estimator, seed=11, return_plan=True)
        serial = pyot.minibatch_ot(x, y, **kw)
        with ThreadPoolExecutor(3) as pool:
            threaded = pyot.minibatch_ot(x, y, executor=pool, **kw)
        assert_identical(serial, threaded)

    def test_process_pool_is_bit_identical(self, rng):
        # Any Executor: the problem and the seeds are pickled to fresh interpreters.
        x, y = clouds(rng)
        kw = dict(batch_size=10, n_batches=6, estimator="bomb-ot", seed=7, return_plan=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            assert_identical(pyot.minibatch_ot(x, y, **kw),
                             pyot.minibatch_ot(x, y, executor=pool, **kw))

    def test_thread_pool_weighted_entropic(self, rng, ref):
        x, y = clouds(rng)
        a = ref.weights(rng, 60)
        kw = dict(batch_size=10, n_batches=8, seed=1, solver="sinkhorn", eps=0.05,
                  return_plan=True)
        serial = pyot.minibatch_ot(x, y, a, **kw)
        with ThreadPoolExecutor(2) as pool:
            assert_identical(serial, pyot.minibatch_ot(x, y, a, executor=pool, **kw))

    def test_dask_local_cluster_is_bit_identical(self, rng):
        distributed = pytest.importorskip("distributed")
        x, y = clouds(rng)
        runs = [dict(batch_size=10, n_batches=12, seed=3, return_plan=True),
                dict(batch_size=8, n_batches=5, seed=4, estimator="bomb-ot", return_plan=True)]
        serial = [pyot.minibatch_ot(x, y, **kw) for kw in runs]
        with (
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None) as cluster,
            distributed.Client(cluster) as client,
        ):
            executor = client.get_executor()
            for kw, expected in zip(runs, serial, strict=True):
                assert_identical(expected, pyot.minibatch_ot(x, y, executor=executor, **kw))
            # The same points again, at once: each call's scattered data is its own.
            for _ in range(3):
                assert_identical(serial[0], pyot.minibatch_ot(x, y, executor=executor, **runs[0]))

    def test_progress_needs_tqdm(self, rng, monkeypatch):
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
        x, y = clouds(rng)
        with pytest.raises(ImportError, match="tqdm"):
            pyot.minibatch_ot(x, y, batch_size=5, n_batches=2, progress=True)

    @pytest.mark.parametrize("pool", [False, True])
    def test_progress_bar_counts_every_batch(self, rng, monkeypatch, pool):
        updates = []

        class FakeBar:  # stands in for tqdm.tqdm, installed or not
            def __init__(self, total, **kwargs):
                updates.append(("total", total))

            def update(self, n):
                updates.append(("update", n))

            def close(self):
                updates.append(("close", None))

        monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
        x, y = clouds(rng)
        kw = dict(batch_size=5, n_batches=30, seed=0, return_plan=True)
        with ThreadPoolExecutor(2) as executor:
            shown = pyot.minibatch_ot(x, y, progress=True, executor=executor if pool else None,
                                      **kw)
        assert_identical(pyot.minibatch_ot(x, y, **kw), shown)
        assert updates[0] == ("total", 30)
        assert updates[-1] == ("close", None)
        counts = [n for kind, n in updates if kind == "update"]
        assert sum(counts) == 30
        assert len(counts) > 1


_X = np.arange(12.0).reshape(6, 2)
_Y = np.arange(10.0).reshape(5, 2) + 0.5
BAD = [
    ("batch-too-big", dict(batch_size=6), ValueError, "batch_size"),
    ("batch-zero", dict(batch_size=0), ValueError, "batch_size"),
    ("batch-negative", dict(batch_size=-2), ValueError, "batch_size"),
    ("batch-float", dict(batch_size=2.5), TypeError, "batch_size"),
    ("batches-zero", dict(n_batches=0), ValueError, "n_batches"),
    ("batches-negative", dict(n_batches=-1), ValueError, "n_batches"),
    ("batches-str", dict(n_batches="3"), TypeError, "n_batches"),
    ("estimator", dict(estimator="mot"), ValueError, "estimator"),
    ("solver", dict(solver="greenkhorn"), ValueError, "solver"),
    ("executor-object", dict(executor=object()), TypeError, "executor"),
    ("executor-str", dict(executor="dask"), TypeError, "executor"),
    ("metric", dict(metric="hamming"), ValueError, "metric"),
    ("eps-with-emd", dict(eps=0.1), ValueError, "eps"),
    ("eps-missing", dict(solver="sinkhorn"), ValueError, "eps"),
    ("eps-negative", dict(solver="sinkhorn", eps=-1.0), ValueError, "eps"),
    ("reg-missing", dict(solver="unbalanced", eps=0.1), ValueError, "reg_marginals"),
    ("reg-with-emd", dict(reg_marginals=1.0), ValueError, "reg_marginals"),
    ("mass-missing", dict(solver="partial"), ValueError, "mass"),
    ("mass-too-big", dict(solver="partial", mass=2.0), ValueError, "mass"),
    ("mass-with-emd", dict(mass=0.5), ValueError, "mass"),
    ("tol-negative", dict(solver="sinkhorn", eps=0.1, tol=-1.0), ValueError, "tol"),
    ("max-iter-negative", dict(max_iter=-1), ValueError, "max_iter"),
    ("seed-negative", dict(seed=-1), ValueError, "seed"),
    ("seed-str", dict(seed="abc"), TypeError, "seed"),
    ("threads-zero", dict(threads=0), ValueError, "threads"),
    ("return-plan-str", dict(return_plan="yes"), TypeError, "return_plan"),
    ("progress-int", dict(progress=2), TypeError, "progress"),
    ("x-nan", dict(x=np.where(_X == 3.0, np.nan, _X)), ValueError, "x"),
    ("y-inf", dict(y=np.where(_Y == 2.5, np.inf, _Y)), ValueError, "y"),
    ("x-3d", dict(x=np.ones((2, 3, 2))), ValueError, "x"),
    ("x-empty", dict(x=np.ones((0, 2))), ValueError, "x"),
    ("y-dimension", dict(y=np.ones((5, 3))), ValueError, "y"),
    ("x-complex", dict(x=_X.astype(complex)), TypeError, "x"),
    ("x-str", dict(x="points"), TypeError, "x"),
    ("a-negative", dict(a=np.array([0.5, 0.5, 0.25, -0.25, 0, 0])), ValueError, "a"),
    ("a-length", dict(a=np.full(5, 0.2)), ValueError, "a"),
    ("b-nan", dict(b=np.array([0.2, 0.2, np.nan, 0.2, 0.2])), ValueError, "b"),
    ("b-zero", dict(b=np.zeros(5)), ValueError, "b"),
    ("unequal-mass", dict(b=np.full(5, 0.4)), ValueError, "a"),
]


@pytest.mark.parametrize(("kwargs", "exc", "name"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(ref, kwargs, exc, name):
    args = dict(x=_X, y=_Y, batch_size=3, n_batches=2)
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.minibatch_ot(x, y, **args)


def test_messages_name_the_function():
    with pytest.raises(ValueError, match=r"^pyot\.minibatch_ot: batch_size must be at most"):
        pyot.minibatch_ot(_X, _Y, batch_size=6, n_batches=1)


# ------------------------------------------------------------------------------ ot_pairs


def torch_pairs():
    pytest.importorskip("torch")
    from pyot.torch import ot_pairs

    return ot_pairs


def sq_cost(x0, x1):
    return ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)


class TestOtPairs:
    @pytest.mark.parametrize("n", [1, 2, 7, 64])
    def test_permutation_minimises_total_cost(self, rng, n):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(n, 5)))
        x1 = torch.as_tensor(rng.normal(size=(n, 5)) + 1.0)
        p0, p1, i, j = ot_pairs(x0, x1, return_index=True)
        assert p0 is x0
        assert sorted(j.tolist()) == list(range(n))
        torch.testing.assert_close(p1, x1[j])
        cost = sq_cost(x0.numpy(), x1.numpy())
        rows, cols = linear_sum_assignment(cost)
        best = cost[rows, cols].sum()
        assert float(((p0 - p1) ** 2).sum()) == pytest.approx(best, rel=1e-10)
        np.testing.assert_array_equal(i.numpy(), np.arange(n))

    @pytest.mark.parametrize("d", [2, 64])
    def test_large_batch_either_exact_solver(self, rng, d):
        # Above 512 points low-dimensional costs go to the network simplex (its plan read by
        # the largest entry per row), high-dimensional ones to the assignment solver.
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.uniform(size=(600, d)))
        x1 = torch.as_tensor(rng.uniform(size=(600, d)))
        _, _, _, j = ot_pairs(x0, x1, return_index=True)
        assert sorted(j.tolist()) == list(range(600))
        cost = sq_cost(x0.numpy(), x1.numpy())
        rows, cols = linear_sum_assignment(cost)
        assert cost[np.arange(600), j.numpy()].sum() == pytest.approx(cost[rows, cols].sum(),
                                                                      rel=1e-12)

    def test_float32_and_images(self, rng):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(16, 3, 4, 4)).astype(np.float32))
        x1 = torch.as_tensor(rng.normal(size=(16, 3, 4, 4)).astype(np.float32))
        _p0, p1, _, j = ot_pairs(x0, x1, return_index=True)
        assert p1.shape == x1.shape
        assert p1.dtype == torch.float32
        cost = sq_cost(x0.reshape(16, -1).double().numpy(), x1.reshape(16, -1).double().numpy())
        rows, cols = linear_sum_assignment(cost)
        assert cost[np.arange(16), j.numpy()].sum() == pytest.approx(cost[rows, cols].sum(),
                                                                     rel=1e-5)

    def test_batched(self, rng):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(5, 12, 3)))
        x1 = torch.as_tensor(rng.normal(size=(5, 12, 3)))
        _p0, p1, _, j = ot_pairs(x0, x1, return_index=True)
        assert p1.shape == (5, 12, 3)
        assert j.shape == (5, 12)
        for k in range(5):
            cost = sq_cost(x0[k].numpy(), x1[k].numpy())
            rows, cols = linear_sum_assignment(cost)
            torch.testing.assert_close(p1[k], x1[k][j[k]])
            assert cost[np.arange(12), j[k].numpy()].sum() == pytest.approx(
                cost[rows, cols].sum(), rel=1e-10)

    def test_far_from_origin(self, rng):
        ot_pairs = torch_pairs()
        import torch

        base = rng.normal(size=(20, 2))
        x0 = torch.as_tensor(base + 1e4)
        x1 = torch.as_tensor(base[::-1].copy() + 1e4 + 1e-3)
        _, _, _, j = ot_pairs(x0, x1, return_index=True)
        np.testing.assert_array_equal(j.numpy(), np.arange(20)[::-1])

    def test_sampled_pairs_lie_on_the_plan(self, rng):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(10, 2)))
        x1 = torch.as_tensor(rng.normal(size=(7, 2)))
        p0, p1, i, j = ot_pairs(x0, x1, seed=0, return_index=True)
        assert p0.shape == (10, 2)
        assert p1.shape == (10, 2)
        plan = pyot.emd(sq_cost(x0.numpy(), x1.numpy())).plan.toarray()
        assert (plan[i.numpy(), j.numpy()] > 0).all()
        again = ot_pairs(x0, x1, seed=0, return_index=True)
        assert torch.equal(again[2], i)
        assert torch.equal(again[3], j)

    def test_sinkhorn_pairs(self, rng):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(3, 9, 2)))
        x1 = torch.as_tensor(rng.normal(size=(3, 9, 2)))
        p0, p1, i, j = ot_pairs(x0, x1, solver="sinkhorn", eps=0.5, seed=1, return_index=True)
        assert i.shape == (3, 9)
        assert p1.shape == (3, 9, 2)
        torch.testing.assert_close(p0[1], x0[1][i[1]])
        again = ot_pairs(x0, x1, solver="sinkhorn", eps=0.5, seed=1, return_index=True)
        assert torch.equal(again[3], j)

    def test_gradients_flow_through_the_pairing(self, rng):
        ot_pairs = torch_pairs()
        import torch

        x0 = torch.as_tensor(rng.normal(size=(6, 2)))
        x1 = torch.as_tensor(rng.normal(size=(6, 2))).requires_grad_()
        _, p1 = ot_pairs(x0, x1)
        p1.sum().backward()
        torch.testing.assert_close(x1.grad, torch.ones_like(x1))

    @pytest.mark.parametrize(
        ("x0", "x1", "kwargs", "exc", "name"),
        [
            ("numpy", "good", {}, TypeError, "x0"),
            ("int", "good", {}, TypeError, "x0"),
            ("good", "vector", {}, ValueError, "x1"),
            ("good", "nan", {}, ValueError, "x1"),
            ("good", "wide", {}, ValueError, "x0"),
            ("good", "good", {"solver": "lp"}, ValueError, "solver"),
            ("good", "good", {"eps": 0.1}, ValueError, "eps"),
            ("good", "good", {"solver": "sinkhorn"}, ValueError, "eps"),
            ("good", "good", {"solver": "sinkhorn", "eps": -1.0}, ValueError, "eps"),
            ("good", "good", {"return_index": 1}, TypeError, "return_index"),
        ],
        ids=["numpy", "int-tensor", "x1-1d", "x1-nan", "dim-mismatch", "solver", "eps-emd",
             "eps-missing", "eps-negative", "return-index"],
    )
    def test_bad_input(self, ref, x0, x1, kwargs, exc, name):
        ot_pairs = torch_pairs()
        import torch

        inputs = {
            "good": torch.zeros((3, 2)),
            "numpy": np.zeros((3, 2)),
            "int": torch.zeros((3, 2), dtype=torch.int64),
            "vector": torch.zeros(3),
            "nan": torch.full((3, 2), float("nan")),
            "wide": torch.zeros((3, 4)),
        }
        with pytest.raises(exc, match=ref.arg(name)):
            ot_pairs(inputs[x0], inputs[x1], **kwargs)
