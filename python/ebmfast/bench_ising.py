"""Spin-chain and lattice benchmark: ebmfast vs NumPy written the obvious way vs the
peers (dwave-samplers' simulated annealing, THRML) vs a floor, all in one run.

    ebmfast bench --suite ising            (or: python -m ebmfast.bench_ising)

Every figure is a rate, spin updates (site visits) per nanosecond, from the median of
repeated calls; a ratio compares two rates measured in the same run. Slow baselines run
fewer sweeps than ebmfast (their cost is linear in sweeps), peers run the same instance,
sweep count and schedule. JSON goes to benchmarks/results/ising_cpu_<time>_t<threads>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import ebmfast
from ebmfast import _core
from ebmfast.bench import _cpu_snapshot, _environment, _other_cpu, time_cell, save_run
from ebmfast.ising import _couplings
from ebmfast.reference import STREAM_ACCEPT

SEED = 1234


# --------------------------------------------------------------------------- instances

def sk_instance(n: int, seed: int = SEED):
    """Sherrington-Kirkpatrick couplings J_ij ~ N(0, 1/n), upper triangle, no field."""
    rng = np.random.default_rng(seed)
    return np.zeros(n), np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)


def regular3_instance(n: int, seed: int = SEED):
    """A random 3-regular graph (configuration model, resampled until simple) with +-1
    couplings: the (h, J dict, edge array, weights) of a sparse spin glass."""
    rng = np.random.default_rng(seed)
    while True:
        stubs = np.repeat(np.arange(n), 3)
        rng.shuffle(stubs)
        a, b = stubs[::2], stubs[1::2]
        e = np.sort(np.stack([a, b], 1), axis=1)
        if np.all(a != b) and len(np.unique(e[:, 0] * n + e[:, 1])) == len(e):
            break
    w = rng.choice([-1.0, 1.0], len(e))
    J = {(int(i), int(j)): float(v) for (i, j), v in zip(e, w)}
    return np.zeros(n), J, e, w


# --------------------------------------------------------------------------- NumPy baselines

def numpy_dense_sweeps(h, Ju, reads: int, sweeps: int, beta: float, seed: int = SEED):
    """Heat-bath sweeps written the obvious way: vectorised over chains, a Python loop
    over sites, the field of site i recomputed as S @ J[i] (float32, default_rng)."""
    Jsym = (Ju + Ju.T).astype(np.float32)
    h32 = np.asarray(h, np.float32)
    rng = np.random.default_rng(seed)
    n = Jsym.shape[0]
    S0 = rng.choice(np.array([-1.0, 1.0], np.float32), size=(reads, n))

    def run():
        S = S0.copy()
        for _ in range(sweeps):
            for i in range(n):
                g = S @ Jsym[i] + h32[i]
                p_up = 1.0 / (1.0 + np.exp(2.0 * beta * g))
                S[:, i] = np.where(rng.random(reads, dtype=np.float32) < p_up, 1.0, -1.0)
        # No energies: this baseline runs fewer sweeps than ebmfast (often one), so an
        # energy GEMM per run would weigh on its rate far more than on ebmfast's.
        return S
    return run


def numpy_sparse_sweeps(n: int, edges, w, reads: int, betas, seed: int = SEED):
    """Metropolis sweeps the obvious way on a sparse graph: per site, gather the
    neighbours' spins of every chain (neighbour lists as arrays)."""
    nbr = [[] for _ in range(n)]
    val = [[] for _ in range(n)]
    for (a, b), v in zip(edges, w):
        nbr[a].append(b); val[a].append(v)
        nbr[b].append(a); val[b].append(v)
    nbr = [np.array(x, np.int64) for x in nbr]
    val = [np.array(x, np.float32) for x in val]
    rng = np.random.default_rng(seed)
    S0 = rng.choice(np.array([-1.0, 1.0], np.float32), size=(reads, n))

    def run():
        S = S0.copy()
        for beta in betas:
            for i in range(n):
                g = S[:, nbr[i]] @ val[i]
                accept = rng.random(reads, dtype=np.float32) < np.exp(np.minimum(2.0 * beta * g * S[:, i], 0.0))
                S[accept, i] *= -1.0
        return S
    return run


def numpy_lattice_sweeps(L: int, sweeps: int, beta: float, seed: int = SEED):
    """Checkerboard Metropolis the obvious way: np.roll neighbour sums, one colour at a
    time, a uniform per site from default_rng."""
    rng = np.random.default_rng(seed)
    S0 = rng.choice(np.array([-1, 1], np.int8), size=(L, L))
    ii, jj = np.indices((L, L))
    colours = [((ii + jj) % 2 == c) for c in (0, 1)]

    def run():
        S = S0.copy()
        for _ in range(sweeps):
            for mask in colours:
                nb = (np.roll(S, 1, 0) + np.roll(S, -1, 0) + np.roll(S, 1, 1) + np.roll(S, -1, 1))
                p = np.exp(np.minimum(-2.0 * beta * (S * nb), 0.0), dtype=np.float32)
                flip = mask & (rng.random((L, L), dtype=np.float32) < p)
                S[flip] *= -1
        return S
    return run


# --------------------------------------------------------------------------- peers

def dwave_runner(h, J, reads: int, sweeps: int, beta_range, proposal: str, seed: int = SEED):
    try:
        from dwave.samplers import SimulatedAnnealingSampler
    except ImportError:
        return None
    sampler = SimulatedAnnealingSampler()
    hd = {i: float(v) for i, v in enumerate(h)}
    if not isinstance(J, dict):
        r, c = np.nonzero(J)
        J = {(int(a), int(b)): float(J[a, b]) for a, b in zip(r, c)}
    crit = "Gibbs" if proposal == "gibbs" else "Metropolis"

    def run():
        return sampler.sample_ising(hd, J, num_reads=reads, num_sweeps=sweeps,
                                    beta_range=list(beta_range), beta_schedule_type="geometric",
                                    proposal_acceptance_criteria=crit, seed=seed)
    return run


def thrml_runner(n: int, edges, w, reads: int, sweeps: int, beta: float, seed: int = SEED):
    """THRML block Gibbs (JAX) on the same graph: the graph greedily coloured into
    independent sets, one sweep = one pass over the colour blocks, chains by vmap."""
    try:
        import jax
        import jax.numpy as jnp
        from thrml import Block, SamplingSchedule, SpinNode, sample_states
        from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init
    except ImportError:
        return None
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    colour = -np.ones(n, int)
    for i in range(n):
        used = {colour[j] for j in adj[i]}
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    nodes = [SpinNode() for _ in range(n)]
    blocks = [Block([nodes[i] for i in np.nonzero(colour == c)[0]]) for c in range(colour.max() + 1)]
    # THRML's energy is -beta (b.s + sum J s s): dimod's couplings enter negated.
    model = IsingEBM(nodes, [(nodes[a], nodes[b]) for a, b in edges], jnp.zeros(n),
                     jnp.asarray(-np.asarray(w), jnp.float32), jnp.array(beta, jnp.float32))
    program = IsingSamplingProgram(model, blocks, [])
    schedule = SamplingSchedule(n_warmup=sweeps - 1, n_samples=1, steps_per_sample=1)
    k_init, k_run = jax.random.split(jax.random.key(seed))
    init = hinton_init(k_init, model, blocks, (reads,))
    keys = jax.random.split(k_run, reads)
    fn = jax.jit(jax.vmap(lambda k, st: sample_states(k, program, schedule, st, [], [Block(nodes)])))
    jax.block_until_ready(fn(keys, init))  # compile outside the timing

    def run():
        return jax.block_until_ready(fn(keys, init))
    return run


# --------------------------------------------------------------------------- rows

def _row(name: str, updates: dict, fns: dict, repeats: int, log, **extra) -> dict:
    """Time the callables of one row (interleaved), turn medians into updates/ns."""
    fns = {k: v for k, v in fns.items() if v is not None}
    snap = _cpu_snapshot()
    # >= 0.3 s of warm-up per round: the BLAS threads a NumPy baseline woke spin ~0.1 s
    cells = time_cell(fns, repeats, warmup=1, warmup_s=0.0 if repeats <= 3 else 0.6,
                      rounds=2 if repeats > 2 else 1,
                      slow_repeats={k: (None if k == "ebmfast" else 3) for k in fns})
    other = _other_cpu(snap, _cpu_snapshot())
    rate = {k: updates[k] / (c["median_ms"] * 1e-3) / 1e9 for k, c in cells.items()}
    ours = rate["ebmfast"]
    row = {"case": name, "updates_per_call": updates,
           "median_ms": {k: c["median_ms"] for k, c in cells.items()},
           "updates_per_ns": rate,
           "ratios": {f"ebmfast/{k}": ours / v for k, v in rate.items() if k != "ebmfast"},
           "other_cpu": other, "raw": cells}
    row.update(extra)
    log(f"{name:<44}" + "  ".join(f"{k} {v:8.4f}" for k, v in rate.items())
        + "   " + "  ".join(f"{k} {v:6.2f}x" for k, v in row["ratios"].items()))
    return row


def run(quick: bool = False, repeats: int = 7, peers: bool = True, smoke: bool = False,
        log=print) -> list[dict]:
    """One dict per row. ``quick``: fewer sweeps and repeats; ``smoke``: tiny sizes (a
    test of the harness, not a measurement)."""
    rows = []
    reps = 3 if (quick or smoke) else repeats
    quick = quick or smoke
    # Dense SK at beta = 1, heat bath, 1000 chains.
    dense_sizes = ((40, 5, 1),) if smoke else ((100, 200, 5), (1000, 40, 1))
    for n, sweeps, np_sweeps in dense_sizes:
        if quick and n == 1000:
            sweeps, np_sweeps = 2, 1
        h, Ju = sk_instance(n)
        reads = 64 if smoke else 1000
        dw_reads = 100 if n == 1000 else reads
        Jsym32 = (Ju + Ju.T).astype(np.float32)
        S32 = np.random.default_rng(0).choice(np.array([-1.0, 1.0], np.float32), size=(reads, n))
        fns = {
            "ebmfast": lambda h=h, Ju=Ju, s=sweeps: ebmfast.sample_ising(
                h, Ju, num_reads=reads, num_sweeps=s, beta_range=1.0, proposal="gibbs", seed=SEED),
            "numpy": numpy_dense_sweeps(h, Ju, reads, np_sweeps, 1.0),
            # floor: the FLOPs of one field recomputation per sweep, as one BLAS sgemm
            "floor": lambda S32=S32, Jsym32=Jsym32, s=sweeps: [S32 @ Jsym32 for _ in range(s)],
            "dwave": dwave_runner(h, Ju, dw_reads, sweeps, (1.0, 1.0), "gibbs") if peers else None,
        }
        upd = {"ebmfast": reads * n * sweeps, "numpy": reads * n * np_sweeps,
               "floor": reads * n * sweeps, "dwave": dw_reads * n * sweeps}
        rows.append(_row(f"dense SK n={n} x {reads} chains, heat bath", upd, fns, reps, log,
                         n=n, reads=reads, sweeps=sweeps, beta=1.0,
                         floor_note="one sgemm S.J per sweep (n^2 FMAs per chain)"))

    # Sparse 3-regular n = 10^4, +-1 couplings, geometric anneal, Metropolis.
    n = 500 if smoke else 10_000
    h, J, edges, w = regular3_instance(n)
    reads, sweeps, np_sweeps = (128, 20 if quick else 100, 1)
    betas = np.geomspace(0.1, 3.0, sweeps)
    c = _couplings(h, J)
    fns = {
        "ebmfast": lambda: ebmfast.sample_ising(h, J, num_reads=reads, num_sweeps=sweeps,
                                                beta_range=(0.1, 3.0), seed=SEED),
        "numpy": numpy_sparse_sweeps(n, edges, w, reads, betas[:np_sweeps]),
        # floor: the Philox uniforms alone (one per site visit)
        "floor": lambda: [_core.philox_uniforms(SEED, STREAM_ACCEPT, t, reads, n, 0) for t in range(sweeps)],
        "dwave": dwave_runner(h, J, reads, sweeps, (0.1, 3.0), "metropolis") if peers else None,
    }
    upd = {"ebmfast": reads * n * sweeps, "numpy": reads * n * np_sweeps, "floor": reads * n * sweeps,
           "dwave": reads * n * sweeps}
    rows.append(_row(f"sparse 3-regular n={n} x {reads}, anneal (Metropolis)", upd, fns, reps, log,
                     n=n, reads=reads, sweeps=sweeps, beta_range=[0.1, 3.0], nnz=int(c.nnz),
                     floor_note="Philox uniforms alone, one per site visit"))

    # The same graph at fixed beta, heat bath: against THRML's block Gibbs.
    t_sweeps = 10 if quick else 50
    fns = {
        "ebmfast": lambda: ebmfast.sample_ising(h, J, num_reads=reads, num_sweeps=t_sweeps,
                                                beta_range=0.5, proposal="gibbs", seed=SEED),
        "thrml": thrml_runner(n, edges, w, reads, t_sweeps, 0.5) if peers else None,
    }
    upd = {"ebmfast": reads * n * t_sweeps, "thrml": reads * n * t_sweeps}
    rows.append(_row(f"sparse 3-regular n={n} x {reads}, beta=0.5 (Gibbs)", upd, fns, reps, log,
                     n=n, reads=reads, sweeps=t_sweeps, beta=0.5))

    # 2-D lattice, checkerboard Metropolis at beta = 0.44, one chain.
    for L, sweeps in (((32, 4),) if smoke else ((256, 400), (1024, 40), (4096, 16))):
        if quick:
            sweeps = max(1, sweeps // 4)
        model = ebmfast.IsingLattice2D(L)
        init = ebmfast.ising.random_spins(SEED, 1, L * L).reshape(1, L, L)
        fns = {
            "ebmfast": lambda model=model, init=init, s=sweeps: model.sample(
                0.44, s, 1, seed=SEED, initial_states=init, trace=False),
            "numpy": numpy_lattice_sweeps(L, 1, 0.44),
            "floor": lambda L=L, s=sweeps: [_core.philox_uniforms(SEED, STREAM_ACCEPT, t, 1, L * L, 0)
                                            for t in range(s)],
        }
        upd = {"ebmfast": L * L * sweeps, "numpy": L * L, "floor": L * L * sweeps}
        rows.append(_row(f"2-D lattice L={L}, Metropolis beta=0.44", upd, fns, reps, log,
                         L=L, sweeps=sweeps, floor_note="Philox uniforms alone"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ebmfast bench --suite ising", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="fewer sweeps and repeats")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    p.add_argument("--no-peers", action="store_true", help="skip dwave-samplers and THRML")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    if args.threads is not None:
        ebmfast.set_num_threads(args.threads)
    threads = ebmfast.get_num_threads()
    env = _environment(threads)
    print(f"ebmfast {ebmfast.__version__} Ising CPU benchmark: {env['machine']['cpu_model']}, "
          f"{threads} threads; spin updates per ns (median of repeats), ratios in the same run")
    t0 = time.perf_counter()
    rows = run(quick=args.quick, repeats=args.repeats, peers=not args.no_peers, smoke=args.smoke)
    save_run(env, {"repeats": args.repeats, "quick": args.quick, "smoke": args.smoke,
                          "peers": not args.no_peers, "seed": SEED}, rows, t0, args.out, "ising", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
