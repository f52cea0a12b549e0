"""Device choice and array checks shared by every model.

CPU models take NumPy arrays; models on the GPU take CuPy arrays and anything exposing
``__cuda_array_interface__`` (a PyTorch CUDA tensor, a Numba array) without a copy
(``as_device_array``, ``check_device_units``). Nothing is ever copied silently between
devices: a GPU array handed to a CPU model, or a host array handed to a GPU model, is a
TypeError that says so.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from . import _core

DEVICES = ("auto", "cpu", "cuda")


#: The kernels are built for sm_80 and sm_90 (tf32 tensor cores): older GPUs cannot run them.
MIN_COMPUTE_CAPABILITY = 80


def cuda_unusable_reason() -> str | None:
    """Why the CUDA backend cannot run here (None when it can): not compiled, no device,
    a device older than compute capability 8.0, or CuPy missing."""
    if not _core.cuda_compiled:
        return "this ebmfast was built without CUDA"
    if _core.cuda_device_count() <= 0:
        return "no CUDA device is available"
    cc = _core.cuda_compute_capability()
    if 0 < cc < MIN_COMPUTE_CAPABILITY:
        return (f"the GPU has compute capability {cc // 10}.{cc % 10}; ebmfast's kernels need "
                f"{MIN_COMPUTE_CAPABILITY // 10}.0 or newer (Ampere, Hopper)")
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'ebmfast[cuda]')"
    return None


def resolve_device(device: str, *, cuda_implemented: bool = False) -> str:
    """Map the ``device`` argument to "cpu" or "cuda"."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "auto":
        if not (cuda_implemented and bool(_core.cuda_compiled) and _core.cuda_device_count() > 0):
            return "cpu"
        return "cuda" if cuda_unusable_reason() is None else "cpu"
    if not cuda_implemented:
        raise NotImplementedError(
            "device='cuda': this model has no CUDA backend yet; use device='cpu' (or 'auto')")
    reason = cuda_unusable_reason()
    if reason is not None:
        if reason == "no CUDA device is available" or reason.startswith("this ebmfast"):
            raise RuntimeError("device='cuda' but no CUDA device is available "
                               f"(ebmfast built with CUDA: {bool(_core.cuda_compiled)})")
        raise RuntimeError(f"device='cuda': {reason}")
    return "cuda"


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                open_min: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (open_min and value == minimum)):
        raise ValueError(f"{name} must be {'>' if open_min else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_seed(seed) -> int:
    """None -> fresh 64-bit entropy; otherwise an integer in [0, 2**64)."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    return check_int(seed, "seed", minimum=0, maximum=2**64 - 1)


def check_units(X, name: str, n_cols: int, *, binary: bool, allow_empty: bool = False):
    """Validate a batch of unit states for a CPU model.

    Returns ``(array, is_binary)``: ``array`` is float32, C-contiguous, shape (rows, n_cols),
    values in [0, 1] (exactly 0/1 when ``binary``); ``is_binary`` tells whether every value
    is 0 or 1 (which selects the gather kernels).
    """
    if hasattr(X, "__cuda_array_interface__") or type(X).__module__.startswith("cupy"):
        raise TypeError(f"{name} is a GPU array but this model lives on the CPU; "
                        "move it to the host (e.g. cupy.asnumpy) or use a CUDA model")
    if isinstance(X, np.ndarray):
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a 2-D numeric array: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric or bool dtype, got {arr.dtype}")
    if arr.ndim != 2:
        hint = f" (use {name}.reshape(1, -1) for a single sample)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, {n_cols}), got shape {arr.shape}{hint}")
    if arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    if arr.dtype != np.float32:
        # Range first: casting huge float64 values to float32 would overflow.
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if arr.dtype.kind in "iuf" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name} values must lie in [0, 1] (probabilities or binary "
                             f"states), got range [{arr.min()}, {arr.max()}]")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    # One compiled pass tells finiteness, binariness and range (the common float32 case
    # costs a single read of the batch).
    finite, is_binary, lo, hi = _core.summarize(out)
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values")
    if binary and not is_binary:
        raise ValueError(f"{name} must be binary (every value 0 or 1)")
    if out.size and (lo < 0.0 or hi > 1.0):
        raise ValueError(f"{name} values must lie in [0, 1] (probabilities or binary states), "
                         f"got range [{lo}, {hi}]")
    return out, bool(is_binary)


def check_bool(value, name: str) -> bool:
    """A real bool (Python or NumPy); 'yes', 1 or None are TypeErrors."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def physical_memory() -> int:
    """Bytes of physical memory of this machine (2**40 when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 2**40


def check_memory(n_bytes: float, what: str) -> None:
    """MemoryError, before anything is allocated, when ``what`` needs more bytes than the
    machine has: an absurd size fails at once instead of after the OS hands out (lazily)
    terabytes or the process is killed filling them."""
    total = physical_memory()
    if n_bytes > total:
        raise MemoryError(f"{what} needs about {n_bytes / 2**30:.3g} GiB, more than this "
                          f"machine's {total / 2**30:.3g} GiB of memory")


def check_steps(first: int, n: int, name: str, owner: str = "the model") -> None:
    """OverflowError naming ``name`` when n Philox steps from ``first`` would pass 2**32
    (the counter is a 32-bit word of the Philox counter): raised before anything runs."""
    if first + n >= 2**32:
        raise OverflowError(f"{name}: {n} more Philox steps would exhaust {owner}'s step "
                            f"counter ({first} of 2**32 used)")


#: Largest finite float32: parameters and states that the compiled kernels hold in float32
#: must stay below it (a cast beyond it turns them into inf silently).
F32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- GPU arrays

def _cupy():
    """CuPy, imported on first use (it is an optional extra)."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError("GPU arrays need CuPy: pip install 'ebmfast[cuda]'") from None
    if not getattr(_core, "cuda_compiled", False):
        raise RuntimeError("this ebmfast was built without CUDA")
    return cupy


def as_device_array(X, name: str):
    """X as a CuPy array without a copy: CuPy arrays as they are, any object exposing
    ``__cuda_array_interface__`` (a PyTorch CUDA tensor, a Numba array) as a CuPy view of
    the same memory. Host arrays are a TypeError that says how to move them: nothing is
    ever copied between devices behind the caller's back."""
    cp = _cupy()
    if isinstance(X, cp.ndarray):
        return X
    if hasattr(X, "__cuda_array_interface__"):
        return cp.asarray(X)  # zero-copy view (CuPy reads the interface)
    raise TypeError(f"{name} must be a GPU array (CuPy, or any object with "
                    f"__cuda_array_interface__) for a model on the GPU, got "
                    f"{type(X).__name__}; move host data with cupy.asarray")


def check_device_units(X, name: str, n_cols: int, *, binary: bool):
    """The GPU counterpart of ``_backend.check_units``: ``(array, is_binary)`` with the
    array a float32 C-contiguous CuPy array of shape (rows, n_cols), values in [0, 1]
    (exactly 0/1 when ``binary``). Host arrays are refused, never copied silently; a
    float32 C-contiguous input is used as it is (no copy). The checks cost one
    synchronisation of the current stream."""
    cp = _cupy()
    X = as_device_array(X, name)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric or bool dtype, got {X.dtype}")
    if X.ndim != 2 or X.shape[1] != n_cols:
        hint = f" (use {name}.reshape(1, -1) for a single sample)" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, {n_cols}), got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {X.shape}")
    if X.device.id != cp.cuda.Device().id:
        raise ValueError(f"{name} lives on GPU {X.device.id}, not the current device "
                         f"{cp.cuda.Device().id}; move it or switch devices (cupy.cuda.Device)")
    if X.dtype.kind == "f" and X.dtype != cp.float32:
        # Range first: casting huge float64 values to float32 would overflow to inf.
        lo64, hi64, finite64 = (float(v) for v in cp.stack(
            [X.min(), X.max(), cp.isfinite(X).all()]).get())
        if not finite64:
            raise ValueError(f"{name} contains NaN or infinite values")
        if lo64 < 0.0 or hi64 > 1.0:
            raise ValueError(f"{name} values must lie in [0, 1] (probabilities or binary "
                             f"states), got range [{lo64}, {hi64}]")
    out = cp.ascontiguousarray(X, dtype=cp.float32)
    finite, is_binary, lo, hi = summarize_device(out)
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values")
    if binary and not is_binary:
        raise ValueError(f"{name} must be binary (every value 0 or 1)")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} values must lie in [0, 1] (probabilities or binary states), "
                         f"got range [{lo}, {hi}]")
    return out, bool(is_binary)


def _key_to_float(key: int) -> float:
    """Inverse of the order-preserving float -> uint32 key of csrc/cuda/summarize.cu."""
    bits = (key & 0x7FFFFFFF) if key & 0x80000000 else (~key & 0xFFFFFFFF)
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def summarize_device(a) -> tuple[bool, bool, float, float]:
    """(all finite, all 0 or 1, min, max of the finite values) of a float32 C-contiguous
    CuPy array: one kernel (csrc/cuda/summarize.cu) and one readback."""
    cp = _cupy()
    n = a.size
    if n == 0:
        return True, True, 0.0, 0.0
    if n >= 2**32:  # beyond the kernel's counters: CuPy's reductions
        finite, lo, hi, binary = (float(v) for v in cp.stack(
            [cp.isfinite(a).all().astype(cp.float32), a.min(), a.max(),
             ((a == 0) | (a == 1)).all().astype(cp.float32)]).get())
        return bool(finite), bool(binary), lo, hi
    stats = cp.empty(4, cp.uint32)
    _core.cuda_summarize(int(a.data.ptr), n, int(stats.data.ptr),
                         int(cp.cuda.get_current_stream().ptr))
    bad, nonbinary, hi_key, lo_key = (int(v) for v in stats.get())
    if bad:
        return False, False, float("nan"), float("nan")
    return True, nonbinary == 0, _key_to_float(~lo_key & 0xFFFFFFFF), _key_to_float(hi_key)
