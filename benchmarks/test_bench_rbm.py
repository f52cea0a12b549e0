"""pytest-benchmark timings of the RBM kernels: ebmfast against plain NumPy.

Run explicitly (these live outside ``testpaths``):

    pytest benchmarks/ --benchmark-only            # timings
    pytest benchmarks/test_bench_rbm.py --benchmark-disable -q   # smoke test, one call each

The data, initial parameters and the NumPy baseline come from ``ebmfast.bench``, the same
code the ``ebmfast bench`` table uses.
"""
import functools

import numpy as np
import pytest

from ebmfast import bench

SIZES = [(784, 500, 100), (784, 500, 1000)]
IMPLS = ["ebmfast", "numpy"]


@functools.lru_cache(maxsize=None)
def _case(size):
    return bench.make_case(*size)


def _id(size):
    return "x".join(map(str, size))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kernel", bench.KERNELS)
@pytest.mark.parametrize("size", SIZES, ids=_id)
def test_rbm_kernel(benchmark, size, kernel, impl):
    case = _case(size)
    fn = bench.make_runner(impl, case, kernel)
    fn()  # warm-up: PCD chains start here, first-touch of the buffers
    benchmark.extra_info.update(n_visible=size[0], n_hidden=size[1], batch=size[2],
                                data=case.data["source"],
                                floor_gflop=bench.floor_flops(case, kernel) / 1e9)
    out = benchmark(fn)
    if kernel == "gibbs":  # a Gibbs step returns binary visibles of the batch's shape
        assert out.shape == case.X.shape
        assert np.isin(out, (0.0, 1.0)).all()
    else:  # an update returns the model, whose weights moved and stayed finite
        W = np.asarray(out.W)
        assert np.isfinite(W).all()
        assert not np.array_equal(W, case.W)
