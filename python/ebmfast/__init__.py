"""ebmfast: fast samplers and trainers for energy-based models on CPU and GPU."""
from __future__ import annotations

import ctypes as _ctypes
import os as _os

# The compiled core links the BLAS of the scipy-openblas32 wheel; load it first (global
# symbols) so the core finds it whatever the install layout.
import scipy_openblas32 as _openblas

_ctypes.CDLL(
    _os.path.join(_openblas.get_lib_dir(), _openblas.get_library(fullname=True)),
    mode=_ctypes.RTLD_GLOBAL,
)

from . import _core  # noqa: E402

__version__ = _core.__version__

__all__ = ["build_info", "cuda_available", "__version__"]


def cuda_available() -> bool:
    """True when the CUDA backend was compiled in and a GPU is visible."""
    return bool(_core.cuda_compiled) and _core.cuda_device_count() > 0


def build_info() -> dict:
    """Facts about this build: version, CUDA (compiled, available, archs, device), threads, BLAS."""
    available = cuda_available()
    return {
        "version": __version__,
        "cuda_compiled": bool(_core.cuda_compiled),
        "cuda_available": available,
        "cuda_archs": _core.cuda_archs,
        "cuda_runtime": _core.cuda_runtime_version(),
        "device_name": _core.cuda_device_name(0) if available else None,
        "openmp_threads": _core.get_num_threads(),
        "blas": _core.blas_config(),
    }

from . import datasets, estimators, reference  # noqa: E402
from .rbm import RBM  # noqa: E402
from .ising import IsingLattice2D, sample_ising  # noqa: E402
from .bm import BoltzmannMachine  # noqa: E402
from .dbn import DBN  # noqa: E402
from .dbm import DBM  # noqa: E402
from .gaussian_rbm import GaussianRBM  # noqa: E402
from .hopfield import Hopfield  # noqa: E402


def set_num_threads(n: int) -> None:
    """Threads of the CPU kernels and of the BLAS they call (default: all cores).

    ``n``: an integer in [1, 1024] (TypeError for anything else, bools and floats included;
    ValueError outside the range: OpenMP would try to start that many threads)."""
    from ._backend import check_int
    _core.set_num_threads(check_int(n, "n", minimum=1, maximum=1024))


def get_num_threads() -> int:
    return _core.get_num_threads()


__all__ += ["IsingLattice2D", "sample_ising", "BoltzmannMachine"]
__all__ += ["Hopfield", "DBN", "DBM", "GaussianRBM"]
__all__ += ["RBM", "datasets", "estimators", "reference", "set_num_threads", "get_num_threads"]

# --- continuous chains (mcmc) and diagnostics
from . import diagnostics, energies  # noqa: E402
from .mcmc import MCMCResult, langevin, mala, metropolis  # noqa: E402

__all__ += ["diagnostics", "energies", "metropolis", "mala", "langevin", "MCMCResult"]
