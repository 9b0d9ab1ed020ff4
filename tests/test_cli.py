"""The command line: ``python -m pyot solve`` on good and bad files, ``--version``, ``bench``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import pyot
from pyot.__main__ import main


@pytest.fixture
def files(tmp_path, rng):
    x, y = rng.random((40, 2)), rng.random((30, 2))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "y.npz", y=y)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    np.save(tmp_path / "a.npy", np.full(40, 1 / 40))
    return tmp_path, x, y


def _value(out: str) -> float:
    line = next(s for s in out.splitlines() if s.startswith("value"))
    return float(line.split()[1])


@pytest.mark.parametrize("target", ["y.npz", "y.csv"])
def test_sinkhorn_matches_the_library(files, capsys, target):
    path, x, y = files
    code = main(["solve", str(path / "x.npy"), str(path / target), "--eps", "0.05",
                 "--a", str(path / "a.npy")])
    out = capsys.readouterr().out
    assert code == 0
    expected = pyot.sinkhorn(pyot.cost_matrix(x, y), eps=0.05).value
    assert _value(out) == pytest.approx(expected, rel=1e-8)
    assert "iterations" in out
    assert "marginal error" in out


def test_emd_writes_a_sparse_plan(files, capsys):
    path, x, y = files
    out_file = path / "plan.npz"
    code = main(["solve", str(path / "x.npy"), str(path / "y.csv"), "--solver", "emd",
                 "--out", str(out_file)])
    assert code == 0
    plan = sp.load_npz(out_file)
    assert plan.shape == (40, 30)
    np.testing.assert_allclose(plan.sum(axis=1), np.full(40, 1 / 40), atol=1e-12)
    expected = pyot.emd(pyot.cost_matrix(x, y)).value
    assert _value(capsys.readouterr().out) == pytest.approx(expected, rel=1e-9)  # 10 digits


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--solver", "partial"], "needs --mass"),
        ([], "needs --eps"),
        (["--eps", "-1"], "eps must be a positive"),
        (["--solver", "partial", "--mass", "5"], "mass must be at most"),
    ],
)
def test_bad_options_exit_2(files, capsys, extra, message):
    path, _, _ = files
    code = main(["solve", str(path / "x.npy"), str(path / "y.csv"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_bad_files_exit_2(files, capsys):
    path, _, _ = files
    (path / "bad.csv").write_text("a,b\n1,2\n")
    (path / "y.txt").write_text("1,2\n")
    cases = [("missing.npy", "no such file"), ("bad.csv", "cannot read"),
             ("y.txt", "unsupported file type")]
    for name, message in cases:
        assert main(["solve", str(path / "x.npy"), str(path / name), "--eps", "0.1"]) == 2
        assert message in capsys.readouterr().err
    np.save(path / "y3.npy", np.zeros((3, 2, 2)))
    assert main(["solve", str(path / "x.npy"), str(path / "y3.npy"), "--eps", "0.1"]) == 2
    assert "y" in capsys.readouterr().err


def test_unknown_solver_is_an_argparse_error(files):
    path, _, _ = files
    with pytest.raises(SystemExit) as exit_info:
        main(["solve", str(path / "x.npy"), str(path / "y.csv"), "--solver", "nope"])
    assert exit_info.value.code == 2


def test_version_and_bench_family_check(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the checkout's bench/
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == pyot.__version__
    code = main(["bench", "no-such-family", "--quick"])
    assert code == 2
    assert "no-such-family" in capsys.readouterr().err


def test_module_entry_point(files):
    path, _, _ = files
    done = subprocess.run(
        [sys.executable, "-m", "pyot", "solve", str(path / "x.npy"), str(path / "y.npz"),
         "--solver", "sliced", "--n-projections", "16"],
        capture_output=True, text=True, check=False, cwd=path,  # not the source tree
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("value")
