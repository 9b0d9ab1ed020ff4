"""Package-level contract: public names, version, helpers, import side effects."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import io
import os
import types
import warnings

import pytest
from conftest import run_python

import pyot

# Names this issue (the foundation) adds to the public API (API.md).
FOUNDATION_NAMES = [
    "cost_matrix",
    "PointCloud",
    "sinkhorn",
    "sinkhorn_divergence",
    "unbalanced_sinkhorn",
    "OTResult",
    "SinkhornResult",
    "ConvergenceWarning",
    "cuda_available",
    "show_config",
]


def test_all_is_well_formed():
    assert isinstance(pyot.__all__, (list, tuple))
    assert all(isinstance(name, str) for name in pyot.__all__)
    assert len(set(pyot.__all__)) == len(pyot.__all__), "duplicate names in __all__"


@pytest.mark.parametrize("name", sorted(set(pyot.__all__)))
def test_every_name_in_all_is_importable(name):
    assert hasattr(pyot, name), f"pyot.__all__ lists {name!r} but pyot has no such attribute"
    namespace = {}
    exec(f"from pyot import {name}", namespace)
    assert namespace[name] is getattr(pyot, name)


def test_star_import():
    namespace = {}
    exec("from pyot import *", namespace)
    missing = [name for name in pyot.__all__ if name not in namespace]
    assert not missing


@pytest.mark.parametrize("name", FOUNDATION_NAMES)
def test_foundation_names_are_public(name):
    assert name in pyot.__all__
    assert getattr(pyot, name) is not None


def test_version():
    assert isinstance(pyot.__version__, str)
    parts = pyot.__version__.split(".")
    assert len(parts) >= 2
    assert parts[0].isdigit()
    assert parts[1].isdigit()


def test_version_is_single_sourced():
    """The module's version equals the installed distribution's metadata."""
    try:
        dist_version = importlib.metadata.version("pyot-engine")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree only
        pytest.skip("distribution pyot-engine is not installed")
    assert pyot.__version__ == dist_version


def test_show_config_runs():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ret = pyot.show_config()
    text = buf.getvalue() + ("" if ret is None else str(ret))
    assert text.strip(), "show_config() printed and returned nothing"
    lowered = text.lower()
    # API.md: build facts: compiler, OpenMP, SIMD level, CUDA.
    for fact in ("openmp", "cuda", "simd"):
        assert fact in lowered, f"show_config() does not mention {fact!r}:\n{text}"
    assert pyot.__version__ in text


def test_cuda_available_is_bool():
    value = pyot.cuda_available()
    assert isinstance(value, bool)
    if not os.path.exists("/dev/nvidiactl"):
        # No NVIDIA driver on this machine: there cannot be a usable CUDA device.
        assert value is False


def test_convergence_warning_is_a_warning():
    assert isinstance(pyot.ConvergenceWarning, type)
    assert issubclass(pyot.ConvergenceWarning, Warning)
    with pytest.warns(pyot.ConvergenceWarning, match="hello"):
        warnings.warn("hello", pyot.ConvergenceWarning, stacklevel=1)


def test_result_classes_are_frozen_dataclasses():
    assert dataclasses.is_dataclass(pyot.OTResult)
    assert dataclasses.is_dataclass(pyot.SinkhornResult)
    assert issubclass(pyot.SinkhornResult, pyot.OTResult)
    ot_fields = {f.name for f in dataclasses.fields(pyot.OTResult)}
    for name in ("value", "plan", "f", "g", "n_iter", "marginal_error", "converged"):
        assert name in ot_fields or hasattr(pyot.OTResult, name), name
    sk_fields = {f.name for f in dataclasses.fields(pyot.SinkhornResult)}
    for name in ("objective", "eps"):
        assert name in sk_fields, name
    assert pyot.OTResult.__dataclass_params__.frozen
    assert pyot.SinkhornResult.__dataclass_params__.frozen


def test_sinkhorn_submodule_is_reachable():
    """The function pyot.sinkhorn shadows the submodule; importlib still reaches the module."""
    assert callable(pyot.sinkhorn)
    mod = importlib.import_module("pyot.sinkhorn")
    assert isinstance(mod, types.ModuleType)
    assert isinstance(mod._DENSE_LIMIT, int)
    assert mod._DENSE_LIMIT > 0


def test_import_does_not_import_torch(tmp_path):
    code = (
        "import sys, pyot\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')"
        " or m == 'pyot.torch')\n"
        "print(repr(bad))\n"
    )
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"import pyot imported: {proc.stdout.strip()}"


def test_import_has_no_side_output(tmp_path):
    proc = run_python("import warnings; warnings.simplefilter('error'); import pyot", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""
