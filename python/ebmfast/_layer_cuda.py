"""CUDA glue of the shared layer update "layer l from its neighbours" (DBN, DBM and the RBM
on the GPU): checks CuPy arrays, allocates the wanted outputs from CuPy's memory pool and
launches ``_core.cuda_layer_update`` on CuPy's current stream. The NumPy spec is
``reference.layer_update``; the kernel is csrc/cuda/layer_update.cu.

Nothing here synchronizes: the outputs are ordinary CuPy arrays ordered on the current
stream, as any CuPy operation's would be."""
from __future__ import annotations

from . import _core
from ._backend import as_device_array, check_device_units, check_float, check_int  # noqa: F401

try:
    import cupy as cp
except ImportError:  # pragma: no cover - exercised only where CuPy is missing
    cp = None

_U32_MAX = 2**32 - 1


def _require_cupy():
    if cp is None:
        raise RuntimeError("the CUDA layer update needs CuPy: pip install 'ebmfast[cuda]'")
    if not getattr(_core, "cuda_compiled", False):
        raise RuntimeError("this ebmfast was built without CUDA")


def _check_array(a, name: str, ndim: int, device_id: int):
    """A float32, C-contiguous CuPy array of `ndim` dimensions on the current device."""
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{name} must be a CuPy array (float32 on the GPU), got {type(a).__name__}")
    if a.dtype != cp.float32:
        raise TypeError(f"{name} must have dtype float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use cupy.ascontiguousarray)")
    if a.device.id != device_id:
        # The kernel runs on the current device and its stream; another device's memory
        # would be read through peer access at best and fault at worst.
        raise ValueError(f"{name} lives on GPU {a.device.id} but the current device is GPU "
                         f"{device_id}; move it or switch devices (cupy.cuda.Device)")
    return a


def _overlaps(a, b) -> bool:
    if a is None or b is None or a.size == 0 or b.size == 0:
        return False
    a0, b0 = int(a.data.ptr), int(b.data.ptr)
    return a0 < b0 + b.nbytes and b0 < a0 + a.nbytes


def _ptr(a) -> int:
    return 0 if a is None or a.size == 0 else int(a.data.ptr)


PRECISIONS = {"fp32": 0, "tf32": 1}


def precision_code(precision: str) -> int:
    """The kernels' code of a ``precision`` argument ("fp32" | "tf32")."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def layer_update(X, M, bias, beta: float, *, X2=None, M2=None, stream: int, seed: int,
                 step: int, chain_offset: int = 0, want_field: bool = False,
                 want_prob: bool = False, want_sample: bool = False, out_sample=None,
                 M_transposed: bool = False, M2_transposed: bool = False,
                 precision: str = "fp32"):
    """z = beta * (X.M + X2.M2) + bias on the GPU -> (field z, sigmoid(z), Bernoulli sample).

    Parameters
    ----------
    X : cupy.ndarray, (rows, n_in) float32, C-contiguous
    M : cupy.ndarray, (n_in, n_out) float32, C-contiguous; (n_out, n_in) when
        ``M_transposed`` (read as its transpose: no transposed copy is made)
    bias : cupy.ndarray, (n_out,) float32
    beta : float, finite
    X2, M2 : cupy.ndarray, (rows, n_in2) and (n_in2, n_out), or both None (one neighbour)
    stream : int, Philox stream (e.g. reference.STREAM_LAYER + l)
    seed : int in [0, 2**64); step, chain_offset : ints in [0, 2**32); row r draws chain
        chain_offset + r, unit j draws unit j (DESIGN.md §3)
    want_field, want_prob, want_sample : which outputs to compute
    out_sample : cupy.ndarray, (rows, n_out) float32, optional; preallocated sample output
        (implies want_sample); must not overlap any input
    M_transposed, M2_transposed : bool, M (M2) given as (n_out, n_in)
    precision : "fp32" (FFMA, matches the CPU to float rounding) or "tf32" (tensor cores)

    Returns
    -------
    (field, prob, sample): cupy.ndarray (rows, n_out) float32 each, or None when not wanted.
    Ordered on CuPy's current stream.
    """
    _require_cupy()
    dev = cp.cuda.Device().id
    X = _check_array(X, "X", 2, dev)
    M = _check_array(M, "M", 2, dev)
    bias = _check_array(bias, "bias", 1, dev)
    prec = precision_code(precision)
    rows, n_in = X.shape
    if M_transposed:
        if M.shape[1] != n_in:
            raise ValueError(f"M (transposed) must have shape (n_out, {n_in}) to match X "
                             f"{X.shape}, got {M.shape}")
        n_out = M.shape[0]
    else:
        if M.shape[0] != n_in:
            raise ValueError(f"M must have shape ({n_in}, n_out) to match X {X.shape}, got {M.shape}")
        n_out = M.shape[1]
    if bias.shape != (n_out,):
        raise ValueError(f"bias must have shape ({n_out},), got {bias.shape}")
    if (X2 is None) != (M2 is None):
        raise ValueError("give both X2 and M2 (the second neighbour), or neither")
    n_in2 = 0
    if X2 is not None:
        X2 = _check_array(X2, "X2", 2, dev)
        M2 = _check_array(M2, "M2", 2, dev)
        if X2.shape[0] != rows:
            raise ValueError(f"X2 must have {rows} rows like X, got shape {X2.shape}")
        n_in2 = X2.shape[1]
        want = (n_out, n_in2) if M2_transposed else (n_in2, n_out)
        if M2.shape != want:
            raise ValueError(f"M2 must have shape {want}, got {M2.shape}")
        if X2.size == 0 or M2.size == 0:  # an empty product adds nothing: one neighbour
            X2 = M2 = None
            n_in2 = 0
    beta = check_float(beta, "beta")
    stream = check_int(stream, "stream", minimum=0, maximum=_U32_MAX)
    seed = check_int(seed, "seed", minimum=0, maximum=2**64 - 1)
    step = check_int(step, "step", minimum=0, maximum=_U32_MAX)
    chain_offset = check_int(chain_offset, "chain_offset", minimum=0,
                             maximum=_U32_MAX - max(rows, 1) + 1)
    if n_out + 3 > _U32_MAX:
        raise ValueError(f"n_out must be < 2**32 - 3 (Philox unit index), got {n_out}")

    inputs = (X, M, bias, X2, M2)
    if out_sample is not None:
        out_sample = _check_array(out_sample, "out_sample", 2, dev)
        if out_sample.shape != (rows, n_out):
            raise ValueError(f"out_sample must have shape ({rows}, {n_out}), got {out_sample.shape}")
        # Blocks read X / M while other blocks write their samples: no aliasing allowed.
        if any(_overlaps(out_sample, a) for a in inputs):
            raise ValueError("out_sample must not overlap X, M, bias, X2 or M2")
        want_sample = True

    field = cp.empty((rows, n_out), cp.float32) if want_field else None
    prob = cp.empty((rows, n_out), cp.float32) if want_prob else None
    sample = out_sample if out_sample is not None else (
        cp.empty((rows, n_out), cp.float32) if want_sample else None)
    _core.cuda_layer_update(_ptr(X), _ptr(M), n_in, _ptr(X2), _ptr(M2), n_in2, _ptr(bias),
                            rows, n_out, beta, _ptr(field), _ptr(prob), _ptr(sample), stream,
                            seed, step, chain_offset, int(cp.cuda.get_current_stream().ptr),
                            bool(M_transposed), bool(M2_transposed), prec)
    return field, prob, sample
