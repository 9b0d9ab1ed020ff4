"""Helpers shared by the bench families: timing, machine facts, hardware-bound probes, plan
statistics, tables, JSON output and peer detection.

Only the standard library and numpy are imported here, so that a subprocess worker (peak-RSS
measurements) can use these helpers without loading a peer.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# Machine facts


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sysfs_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def cache_sizes() -> dict[str, int]:
    """Data/unified cache sizes in bytes by level (``{"L1d": ..., "L2": ..., "L3": ...}``)."""
    out: dict[str, int] = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            with open(f"{base}/{entry}/level", encoding="utf-8") as fh:
                level = fh.read().strip()
            with open(f"{base}/{entry}/type", encoding="utf-8") as fh:
                kind = fh.read().strip()
            with open(f"{base}/{entry}/size", encoding="utf-8") as fh:
                size = _sysfs_size(fh.read())
        except (OSError, ValueError):
            continue
        if kind == "Instruction":
            continue
        out[f"L{level}" + ("d" if kind == "Data" else "")] = size
    return out


def load_average() -> float | None:
    """1-minute load average (None where unknown): other work on the machine skews timings."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class ForeignLoad:
    """Share of the machine's cores used by OTHER processes between start and ``fraction()``:
    busy jiffies from /proc/stat minus this process's own CPU time (children included)."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="utf-8") as fh:
                fields = [float(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        busy = (sum(fields) - idle) / tick
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return busy, own, time.monotonic()

    def fraction(self) -> float | None:
        end = self._sample()
        if end is None or self._start is None:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self._start, strict=True))
        cores = os.cpu_count() or 1
        if wall <= 0:
            return None
        return max(0.0, (busy - own) / (wall * cores))


def memory_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS / OpenMP pools loaded in this process."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    return [
        {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "prefix")}
        for info in threadpoolctl.threadpool_info()
    ]


@contextlib.contextmanager
def blas_threads(threads: int):
    """Limit (or raise) the BLAS pools to ``threads`` for numpy-based peers."""
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        yield


def capture_show_config(module: Any) -> str | None:
    """``module.show_config()`` as text (whatever it prints or returns), None if it is missing."""
    fn = getattr(module, "show_config", None)
    if fn is None:
        return None
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            ret = fn()
    except Exception as exc:  # report, never crash the bench
        return f"show_config() failed: {type(exc).__name__}: {exc}"
    text = buf.getvalue()
    if ret is not None and not text:
        text = json.dumps(ret, default=str, indent=1) if isinstance(ret, dict) else str(ret)
    return text.strip()


# ---------------------------------------------------------------------------------------------
# Peer detection


@dataclass
class Peer:
    """An optional benchmark peer: importable or not, and why."""

    name: str
    modules: tuple[str, ...]
    dist: str
    available: bool = False
    version: str | None = None
    reason: str | None = None
    handles: dict[str, Any] = field(default_factory=dict)

    def status(self) -> str:
        if self.available:
            return f"{self.name} {self.version}"
        return f"{self.name}: {self.reason}"


def detect_peer(name: str, modules: Sequence[str], dist: str, load: bool = True) -> Peer:
    """Import ``modules`` (the first one's version is reported); never raises. With
    ``load=False`` only look for them (a subprocess will import them)."""
    peer = Peer(name=name, modules=tuple(modules), dist=dist)
    for mod in modules:
        if importlib.util.find_spec(mod.split(".")[0]) is None:
            peer.reason = f"not installed (pip install {dist})"
            return peer
    if not load:
        peer.available = True
        peer.version = dist_version(dist) or "?"
        return peer
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for mod in modules:
                peer.handles[mod] = importlib.import_module(mod)
    except Exception as exc:  # a broken peer is skipped, not fatal
        peer.reason = f"import failed: {type(exc).__name__}: {exc}"
        return peer
    try:
        peer.version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        peer.version = getattr(peer.handles[modules[0]], "__version__", "?")
    peer.available = True
    return peer


def import_pyot() -> Any:
    """Import the installed pyot, even when run from the repository root.

    ``python -m bench`` puts the repository root first on ``sys.path``, so ``import pyot`` finds
    the source tree, which has no compiled ``_core`` after a regular (non-editable) install. Then
    the partial import is dropped and pyot is imported again without the root on the path.
    """
    try:
        import pyot

        return pyot
    except ImportError as first:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for name in [k for k in sys.modules if k == "pyot" or k.startswith("pyot.")]:
            del sys.modules[name]
        saved = list(sys.path)
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
        try:
            import pyot

            return pyot
        except ImportError:
            raise first from None
        finally:
            sys.path[:] = saved


def dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Timing


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (``fn`` must block until its result is ready)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def settle(seconds: float = 0.25) -> None:
    """Let the previous solver's thread pools stop spinning (OpenMP, Eigen and MKL workers
    busy-wait for up to ~200 ms after a parallel region) before the next solver is timed."""
    gc.collect()
    time.sleep(seconds)


class Stopwatch:
    """Wall time since creation."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


@dataclass
class Timing:
    """Median of the timed repeats; ``warm`` says whether an untimed warm-up run preceded them."""

    median: float
    samples: list[float]
    warm: bool
    warmup: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "samples_s": self.samples,
            "warm": self.warm,
            "warmup_s": self.warmup,
        }


SHORT_RUN_SECONDS = 0.3
SHORT_RUN_MAX = 51


def measure(fn: Callable[[], Any], repeats: int, budget: float) -> tuple[Timing, Any]:
    """Warm-up run, then up to ``repeats`` timed runs while they fit in ``budget`` seconds.

    A run that takes more than half the budget is not repeated: its single (cold) time is
    reported and ``warm`` is False. Runs of a few milliseconds are repeated until about
    ``SHORT_RUN_SECONDS`` of samples (at most ``SHORT_RUN_MAX`` runs): at that scale single runs
    vary by 2x on this VM (thread wake-ups, another library's spinning BLAS threads), and a
    median of three is noise. Returns the timing and the output of the last run.
    """
    t_first, out = timed(fn)
    if t_first * 2.0 > budget:
        return Timing(t_first, [t_first], warm=False, warmup=None), out
    if t_first < SHORT_RUN_SECONDS / repeats:
        repeats = min(SHORT_RUN_MAX, max(repeats, int(SHORT_RUN_SECONDS / max(t_first, 1e-6))))
    samples: list[float] = []
    spent = 0.0
    for k in range(repeats):
        if k > 0 and spent + samples[-1] > budget:
            break
        t, out = timed(fn)
        samples.append(t)
        spent += t
    return Timing(statistics.median(samples), samples, warm=True, warmup=t_first), out


def iteration_cap(t_iter: float, budget: float, lo: int, hi: int = 1_000_000) -> int:
    """Largest iteration count that keeps one run under ``budget`` at ``t_iter`` per iteration."""
    if not math.isfinite(t_iter) or t_iter <= 0:
        return hi
    return int(max(lo, min(hi, budget / t_iter)))


@contextlib.contextmanager
def recorded_warnings():
    """Collect every warning raised in the block (a list of ``(category name, message)``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box: list[tuple[str, str]] = []
        yield box
    box.extend((w.category.__name__, str(w.message)) for w in caught)


# ---------------------------------------------------------------------------------------------
# Hardware-bound probes


def _numpy_exp_rate(threads: int, n: int = 1 << 15, seconds: float = 0.5) -> float:
    """Double-precision exp evaluations per second with numpy, ``threads`` Python threads
    (numpy releases the GIL inside ufuncs). A fallback: numpy's exp is slower than a solver's."""
    rng = np.random.default_rng(0)
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        x = rng.uniform(-30.0, 0.0, n)
        out = np.empty_like(x)
        np.exp(x, out=out)
        barrier.wait()
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            for _ in range(8):
                np.exp(x, out=out)
            counts[k] += 8 * n

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


def _numpy_read_bandwidth(threads: int, nbytes: int, repeats: int) -> float:
    """Streaming-read bytes per second: ``threads`` threads each summing its slice (numpy's
    pairwise sum is SIMD and releases the GIL)."""
    x = np.ones(nbytes // 8)
    parts = np.array_split(x, threads)
    best = math.inf
    for _ in range(repeats):
        workers = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return x.nbytes / best


@dataclass
class HardwareBounds:
    exp_rate: float  # double exp evaluations per second, all threads
    bandwidth: float  # streaming-read bytes per second, all threads
    exp_source: str
    bandwidth_source: str
    threads: int
    # float exp evaluations per second (the float lanes of float32 problems); None when the
    # core has no float exp probe
    exp_rate_single: float | None = None

    def exp_rate_for(self, dtype: str) -> float:
        """The exp rate a solve of this dtype is bound by."""
        if dtype == "float32" and self.exp_rate_single:
            return self.exp_rate_single
        return self.exp_rate

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_hardware(core: Any | None, threads: int, quick: bool) -> HardwareBounds:
    """Measure exp throughput and read bandwidth, with pyot's own probes where they exist
    (``pyot._core.hw_exp_throughput`` / ``hw_read_bandwidth``), else with numpy."""
    nbytes = (256 if quick else 512) << 20
    exp_n, exp_repeats = 1 << 23, 5
    exp_fn = getattr(core, "hw_exp_throughput", None) if core is not None else None
    bw_fn = getattr(core, "hw_read_bandwidth", None) if core is not None else None
    if exp_fn is not None:
        exp_fn(exp_n, 1, threads)  # warm the threads
        exp_rate = float(exp_fn(exp_n, exp_repeats, threads))
        exp_source = f"pyot._core.hw_exp_throughput(n={exp_n}, repeats={exp_repeats})"
        try:
            exp_rate_single = float(exp_fn(exp_n, exp_repeats, threads, True))
            exp_source += " (float32: single=True)"
        except TypeError:  # a core without the float exp probe
            exp_rate_single = None
    else:
        exp_rate_single = None
        exp_rate = _numpy_exp_rate(threads)
        exp_source = "numpy fallback (np.exp; pyot._core.hw_exp_throughput missing)"
    if bw_fn is not None:
        bw_fn(nbytes, 1, threads)
        bandwidth = float(bw_fn(nbytes, 5, threads))
        bw_source = f"pyot._core.hw_read_bandwidth(nbytes={nbytes >> 20} MiB, repeats=5)"
    else:
        bandwidth = _numpy_read_bandwidth(threads, nbytes, 5)
        bw_source = "numpy fallback (np.add.reduce; pyot._core.hw_read_bandwidth missing)"
    return HardwareBounds(exp_rate, bandwidth, exp_source, bw_source, threads, exp_rate_single)


# ---------------------------------------------------------------------------------------------
# Inputs and plan statistics


def uniform_points(n: int, m: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in the unit cube, float64, reproducible per (seed, n, m, d)."""
    rng = np.random.default_rng([seed, n, m, d])
    return rng.random((n, d)), rng.random((m, d))


def max_sqdist(x: np.ndarray, y: np.ndarray) -> float:
    """max_ij ||x_i - y_j||^2 without the n x m matrix.

    The farthest pair lies on the convex hulls' vertices (a convex function of each point), so
    in low dimension the hulls reduce the search to a few hundred points; above 8 dimensions the
    bounding-box diagonal (an upper bound) is used.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d = x.shape[1]
    if d > 8:
        lo = np.minimum(x.min(0), y.min(0))
        hi = np.maximum(x.max(0), y.max(0))
        return float(np.sum((hi - lo) ** 2))
    if d > 1:
        from scipy.spatial import ConvexHull

        x = x[ConvexHull(x).vertices]
        y = y[ConvexHull(y).vertices]
    best = 0.0
    for i0 in range(0, x.shape[0], 1024):
        diff = x[i0 : i0 + 1024, None, :] - y[None, :, :]
        best = max(best, float(np.max(np.einsum("ijk,ijk->ij", diff, diff))))
    return best


def peak_rss() -> int:
    """Peak resident set size of this process in bytes.

    ``VmHWM`` from /proc/self/status where it exists: ``getrusage``'s ``ru_maxrss`` survives
    fork + exec, so in a subprocess it starts at the parent's RSS and would charge a worker
    with the memory of the bench that started it.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return rusage_maxrss()


def rusage_maxrss() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in bytes (see :func:`peak_rss` for its caveat)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


@dataclass
class PlanStats:
    """Quality of a returned plan, recomputed here in float64 the same way for every solver."""

    err_a: float  # ||P 1 - a||_1
    err_b: float  # ||P^T 1 - b||_1
    value: float  # <P, C>
    objective: float  # <P, C> + eps KL(P | a b^T)
    finite: bool

    @property
    def err(self) -> float:
        return self.err_a + self.err_b


def _rows(n: int, m: int, target_bytes: int = 64 << 20) -> int:
    return max(1, min(n, target_bytes // max(1, 8 * m)))


def plan_stats(plan: Any, cost: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> PlanStats:
    """Statistics of a dense plan, row block by row block (no n x m float64 copy)."""
    plan = np.asarray(plan)
    n, m = cost.shape
    if plan.shape != (n, m):
        raise ValueError(f"plan has shape {plan.shape}, expected {(n, m)}")
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    row = np.empty(n)
    col = np.zeros(m)
    value = 0.0
    plogp = 0.0
    finite = True
    step = _rows(n, m)
    with np.errstate(all="ignore"):
        for i0 in range(0, n, step):
            p = plan[i0 : i0 + step].astype(np.float64)
            c = cost[i0 : i0 + step].astype(np.float64)
            finite = finite and bool(np.isfinite(p).all())
            row[i0 : i0 + step] = p.sum(axis=1)
            col += p.sum(axis=0)
            value += float(np.einsum("ij,ij->", p, c))
            ratio = p / (a64[i0 : i0 + step, None] * b64[None, :])
            plogp += float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, ratio, 1.0)), 0.0)))
    # KL(P | ab^T) = sum P log(P / ab) - sum P + sum ab
    kl = plogp - float(row.sum()) + float(a64.sum() * b64.sum())
    return PlanStats(
        err_a=float(np.abs(row - a64).sum()),
        err_b=float(np.abs(col - b64).sum()),
        value=value,
        objective=value + eps * kl,
        finite=finite and math.isfinite(value),
    )


def potential_plan_stats(
    f: np.ndarray,
    g: np.ndarray,
    cost: Callable[[int, int], np.ndarray] | np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    eps: float,
) -> PlanStats:
    """Statistics of ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` without forming P.

    ``cost`` is a dense array or a callable ``(i0, i1) -> C[i0:i1]`` (online costs).
    """
    f = np.asarray(f, np.float64)
    g = np.asarray(g, np.float64)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, m = f.shape[0], g.shape[0]
    row = np.empty(n)
    col = np.zeros(m)
    value = 0.0
    plogp = 0.0
    finite = True
    step = _rows(n, m, 32 << 20)
    with np.errstate(all="ignore"):
        for i0 in range(0, n, step):
            i1 = min(n, i0 + step)
            c = cost(i0, i1) if callable(cost) else cost[i0:i1]
            c = np.asarray(c, np.float64)
            logk = (f[i0:i1, None] + g[None, :] - c) / eps
            p = a64[i0:i1, None] * b64[None, :] * np.exp(logk)
            finite = finite and bool(np.isfinite(p).all())
            row[i0:i1] = p.sum(axis=1)
            col += p.sum(axis=0)
            value += float(np.einsum("ij,ij->", p, c))
            plogp += float(np.einsum("ij,ij->", p, logk))
    kl = plogp - float(row.sum()) + float(a64.sum() * b64.sum())
    return PlanStats(
        err_a=float(np.abs(row - a64).sum()),
        err_b=float(np.abs(col - b64).sum()),
        value=value,
        objective=value + eps * kl,
        finite=finite and math.isfinite(value),
    )


# ---------------------------------------------------------------------------------------------
# Command-line values


def int_list(text: str) -> tuple[int, ...]:
    """``"500,2000"`` -> ``(500, 2000)`` (argparse ``type=``)."""
    return tuple(int(t) for t in text.split(",") if t.strip())


def float_list(text: str) -> tuple[float, ...]:
    """``"0.1,0.01"`` -> ``(0.1, 0.01)`` (argparse ``type=``)."""
    return tuple(float(t) for t in text.split(",") if t.strip())


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt_time(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1.0:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def fmt_sci(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.{digits}e}"


def fmt_ratio(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def fmt_bytes(x: float | None) -> str:
    if x is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return str(x)  # pragma: no cover


def print_table(
    title: str | None,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    right: Sequence[bool] | None = None,
    file: Any = None,
) -> None:
    """A plain-text table: left-aligned text columns, right-aligned numeric ones."""
    file = file or sys.stdout
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for k, v in enumerate(r):
            widths[k] = max(widths[k], len(v))
    right = right or [False] * len(headers)

    def line(cells: Sequence[str]) -> str:
        out = []
        for k, v in enumerate(cells):
            out.append(v.rjust(widths[k]) if right[k] else v.ljust(widths[k]))
        return " | ".join(out).rstrip()

    if title:
        print(f"\n{title}", file=file)
    print(line(list(headers)), file=file)
    print("-+-".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)
    file.flush()


def print_header(title: str, facts: Sequence[tuple[str, str]]) -> None:
    print(f"== {title} ==")
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        lines = str(v).splitlines() or [""]
        print(f"{k:<{width}} : {lines[0]}")
        for extra in lines[1:]:
            print(f"{'':<{width}}   {extra}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# JSON


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no nan / inf
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "as_dict"):
        return _jsonable(x.as_dict())
    return str(x)


def write_json(path: str, payload: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(payload), fh, indent=1)
        fh.write("\n")
