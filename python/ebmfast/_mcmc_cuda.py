"""GPU path of ebmfast.mcmc: built-in energies through the compiled CUDA launcher
(_core.mcmc_run_chunk_cuda), user energies (energies.CudaSource) through CuPy's RawModule
compiling _cuda/mcmc_chain.cuh after the user's device functions. Arrays stay on the
GPU; kernels run on CuPy's current stream. Not run on a GPU yet (no device in CI).
"""
from __future__ import annotations

import functools
import os
import time

import numpy as np

from . import _core

_BLOCK = 128
_HEADER = os.path.join(os.path.dirname(__file__), "_cuda", "mcmc_chain.cuh")


@functools.lru_cache(maxsize=32)
def _user_module(source: str, need_grad_stub: bool):
    import cupy as cp
    with open(_HEADER) as f:
        header = f.read()
    stub = "\n__device__ void grad(const float*, float*, int) {}\n" if need_grad_stub else ""
    code = "#define EBM_NVRTC 1\n" + source + stub + "\n" + header
    try:
        mod = cp.RawModule(code=code, options=("--std=c++14",))
        for name in ("ebm_chain_rwmh", "ebm_chain_mala", "ebm_chain_ula"):
            mod.get_function(name)  # forces compilation now
    except Exception as exc:  # cupy.cuda.compiler.CompileException and friends
        raise ValueError(f"CudaSource failed to compile:\n{exc}") from None
    return mod


def run(sampler, energy, mode, x0, eps, n_steps, seed, burn_in, do_adapt, target, thin,
        step_offset, chain_offset, bar):
    import cupy as cp
    from .mcmc import _SAMPLER_ID, _chunk_steps

    n, d = x0.shape
    x = cp.array(x0, dtype=cp.float32, order="C", copy=True)
    eps_d = cp.asarray(eps, dtype=cp.float32)
    n_accept = cp.zeros(n, cp.int64)
    tgt = float(target) if target is not None else 0.0
    null = np.uint64(0)

    if mode == "builtin":
        host = energy.params(d)
        dev_arrays = {k: cp.asarray(v) for k, v in host.items() if isinstance(v, np.ndarray)}
        prm = {k: int(v.data.ptr) for k, v in dev_arrays.items()}
        prm.update({k: float(v) for k, v in host.items() if not isinstance(v, np.ndarray)})
        if "b" in prm and "W" not in prm:  # Rosenbrock's b is b_coef in the view
            prm["b_coef"] = prm.pop("b")
        k = int(host["log_coef"].shape[0]) if "log_coef" in host else 0
        nh = int(host["c"].shape[0]) if "c" in host else 0
        prm["k"], prm["n_hidden"] = k, nh
        scratch = cp.empty(_core.mcmc_cuda_scratch_floats(energy.kind, d, k, nh, n), cp.float32)

        def launch(m, step, adapt, aidx, na, samp, en, th):
            _core.mcmc_run_chunk_cuda(
                energy.kind, prm, _SAMPLER_ID[sampler], x.data.ptr, eps_d.data.ptr,
                0 if na is None else na.data.ptr, n, d, m, seed, step, chain_offset, adapt,
                aidx, tgt, 0 if samp is None else samp.data.ptr,
                0 if en is None else en.data.ptr, th, scratch.data.ptr,
                cp.cuda.get_current_stream().ptr)
        cost = 1
    else:
        mod = _user_module(energy.source, sampler == "rwmh" and "grad" not in energy.source)
        fn = mod.get_function("ebm_chain_" + sampler)
        per_chain = 3 * d + 1
        scratch = cp.empty(n * per_chain, cp.float32)
        grid = ((n + _BLOCK - 1) // _BLOCK,)

        def launch(m, step, adapt, aidx, na, samp, en, th):
            fn(grid, (_BLOCK,), (x, eps_d, null if na is None else na,
                                 null if samp is None else samp, null if en is None else en,
                                 scratch, np.int64(per_chain), np.int64(n), np.int64(d),
                                 np.int64(m), np.int64(th), np.int64(aidx), np.uint64(seed),
                                 np.uint32(step), np.uint32(chain_offset), np.int32(adapt),
                                 np.float32(tgt)))
        cost = 4

    chunk = _chunk_steps(n, d, cost, thin) * 8  # a GPU chunk can be longer
    chunk = max(thin, chunk // thin * thin)
    step = step_offset
    t0 = time.perf_counter()
    done = 0
    while done < burn_in:
        m = min(chunk, burn_in - done)
        launch(m, step, do_adapt, done, None, None, None, 1)
        cp.cuda.get_current_stream().synchronize()  # Ctrl-C between chunks
        done += m
        step += m
        if bar is not None:
            bar.update(m)
    t_burn = time.perf_counter() - t0
    n_kept = n_steps // thin
    samples = cp.empty((n_kept, n, d), cp.float32)
    energies = cp.empty((n_kept, n), cp.float64)
    done = 0
    t0 = time.perf_counter()
    while done < n_steps:
        m = min(chunk, n_steps - done)
        full = m // thin * thin
        k0 = done // thin
        if full:
            launch(full, step, False, 0, n_accept, samples[k0:k0 + full // thin],
                   energies[k0:k0 + full // thin], thin)
        if m > full:
            launch(m - full, step + full, False, 0, n_accept, None, None, 1)
        cp.cuda.get_current_stream().synchronize()
        done += m
        step += m
        if bar is not None:
            bar.update(m)
    t_sample = time.perf_counter() - t0
    return samples, x, energies, n_accept.get(), eps_d, t_burn, t_sample
