"""Every GPU RBM entry point once, at small sizes that straddle tile and vector widths, with
CuPy's memory pool off so that each array is its own cudaMalloc. Meant to run under

    compute-sanitizer --tool memcheck --error-exitcode 86 python benchmarks/gpu_memcheck_rbm.py

(benchmarks/gpu_session.sh does). It also checks the results are sane (binary samples of
the right shape, probabilities in [0, 1], finite weights). An entry point that raises
NotImplementedError is reported as not implemented; any other exception or bad result makes
the exit status 1. Without CuPy, a GPU or ebmfast's CUDA backend it says so and exits 2.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

import ebmfast

#: (n_visible, n_hidden, batch)
SIZES = ((1, 1, 1), (7, 3, 5), (33, 17, 31), (257, 129, 33), (784, 500, 100))


def main() -> int:
    try:
        import cupy as cp
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as exc:  # noqa: BLE001
        print(f"gpu_memcheck_rbm: no CuPy GPU ({type(exc).__name__}: {exc})")
        return 2
    if not ebmfast.cuda_available():
        print("gpu_memcheck_rbm: ebmfast has no usable CUDA backend")
        return 2
    cp.cuda.set_allocator(None)          # plain cudaMalloc per array: exact bounds for memcheck
    cp.cuda.set_pinned_memory_allocator(None)
    failures, missing, done = [], [], 0

    def check(label, fn):
        nonlocal done
        try:
            fn()
            cp.cuda.get_current_stream().synchronize()
            done += 1
        except NotImplementedError as exc:
            missing.append(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
            traceback.print_exc()

    for nv, nh, B in SIZES:
        rng = np.random.default_rng(nv * 1000 + nh)
        X = cp.asarray((rng.random((B, nv)) < 0.3).astype(np.float32))
        for prec in ("fp32", "tf32"):
            tag = f"{nv}x{nh}x{B} {prec}"

            def gibbs(k):
                rbm = ebmfast.RBM(nv, nh, device="cuda", precision=prec, seed=1)
                V = rbm.gibbs(X, k=k)
                a = cp.asnumpy(cp.asarray(V))
                assert a.shape == (B, nv), a.shape
                assert np.isin(a, (0.0, 1.0)).all(), "gibbs output not binary"

            def train(method, fit=False):
                rbm = ebmfast.RBM(nv, nh, device="cuda", precision=prec, seed=2, method=method,
                                  k=1, learning_rate=0.05, momentum=0.5, weight_decay=1e-4,
                                  batch_size=max(1, B // 2) if fit else B, epochs=1)
                for _ in range(2):
                    rbm.fit(X) if fit else rbm.partial_fit(X)
                w = cp.asnumpy(cp.asarray(rbm.W))
                assert w.shape == (nv, nh) and np.isfinite(w).all(), "W not finite"
                H = cp.asnumpy(cp.asarray(rbm.transform(X)))
                assert H.shape == (B, nh), H.shape
                assert np.isfinite(H).all() and H.min() >= 0.0 and H.max() <= 1.0, "transform"

            check(f"{tag} gibbs k=1", lambda: gibbs(1))
            check(f"{tag} gibbs k=3", lambda: gibbs(3))
            check(f"{tag} partial_fit cd", lambda: train("cd"))
            check(f"{tag} partial_fit pcd", lambda: train("pcd"))
            check(f"{tag} fit cd", lambda: train("cd", fit=True))
    print(f"gpu_memcheck_rbm: {done} calls ok, {len(missing)} not implemented, "
          f"{len(failures)} failed")
    for m in missing:
        print(f"  not implemented: {m}")
    for f in failures:
        print(f"  FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
