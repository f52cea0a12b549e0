"""A host stand-in for the part of CuPy that ebmfast's GPU glue uses, so the Python side of
``device="cuda"`` (rbm.py, _rbm_cuda.py, _layer_cuda.py) can run on a machine without a
GPU, with the CUDA kernels themselves run by the host emulator (build.py).

``ndarray`` wraps a NumPy array the way a CuPy array wraps device memory:
- ``.data.ptr`` is the address of the memory (the emulated kernels read it directly);
- ``__cuda_array_interface__`` is present, ``.get()`` copies to the host, ``.device.id``
  is 0;
- NumPy ufuncs and array functions work on it and return fake device arrays (CuPy
  implements ``__array_ufunc__`` / ``__array_function__`` the same way);
- an implicit conversion to NumPy (``np.asarray(x)``) is a TypeError, as in CuPy, so a
  host-only code path taken with a device array fails here as it would on a GPU.
It is a test double, not a CuPy: only what the glue and its tests touch is provided.
"""
from __future__ import annotations

import types

import numpy as np

float32, float64, uint32, int32, int64, bool_ = (np.float32, np.float64, np.uint32, np.int32,
                                                 np.int64, np.bool_)
nan = np.nan


def _unwrap(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):  # CuPy reductions return 0-d device arrays
        return ndarray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


class _Memory:
    def __init__(self, ptr: int):
        self.ptr = ptr


class Device:
    def __init__(self, id: int = 0):
        self.id = id

    def __enter__(self):
        if self.id != 0:
            raise RuntimeError("the fake CuPy has one device")
        return self

    def __exit__(self, *exc):
        return False


class ndarray:  # noqa: N801 - CuPy's name
    __array_priority__ = 100

    def __init__(self, a: np.ndarray):
        self._a = a

    # --- what CuPy arrays expose
    @property
    def data(self):
        return _Memory(self._a.ctypes.data)

    @property
    def device(self):
        return Device(0)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self._a.shape, "typestr": self._a.dtype.str,
                "data": (self._a.ctypes.data, False), "version": 3}

    def get(self):
        return self._a.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fake CuPy); "
                        "use .get()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = getattr(ufunc, method)(*_unwrap(inputs), **{k: _unwrap(v) for k, v in kwargs.items()})
        return _wrap(out)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    # --- NumPy-like surface
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r})"

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def astype(self, dtype, copy=True):
        return ndarray(self._a.astype(dtype, copy=copy))

    def copy(self):
        return ndarray(self._a.copy())

    def reshape(self, *shape):
        return ndarray(self._a.reshape(*shape))

    def ravel(self):
        return ndarray(self._a.ravel())

    def __getattr__(self, name):  # reductions and the like: min, max, all, any, sum, mean
        if name.startswith("__") or name == "_a":
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: _wrap(attr(*_unwrap(a), **{n: _unwrap(v) for n, v in k.items()}))
        return attr


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__pow__", "__lt__", "__le__", "__gt__", "__ge__",
              "__eq__", "__ne__", "__and__", "__or__", "__xor__", "__rand__", "__ror__",
              "__matmul__", "__rmatmul__", "__iadd__", "__isub__", "__imul__", "__rshift__",
              "__lshift__", "__mod__", "__floordiv__", "__rpow__"):
    setattr(ndarray, _name, _binary(_name))
for _name in ("__neg__", "__abs__", "__invert__"):
    setattr(ndarray, _name, (lambda n: lambda self: _wrap(getattr(self._a, n)()))(_name))


# --------------------------------------------------------------------------- creation

def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    if hasattr(a, "__cuda_array_interface__"):
        raise TypeError("the fake CuPy wraps only its own arrays")
    return ndarray(np.array(a, dtype=dtype, order=order or "K"))  # host -> "device": a copy


def array(a, dtype=None, order="K", copy=True):
    return ndarray(np.array(_unwrap(a), dtype=dtype, order=order, copy=True))


def ascontiguousarray(a, dtype=None):
    return _wrap(np.ascontiguousarray(_unwrap(a), dtype=dtype))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def _creator(fn):
    return lambda *args, **kwargs: _wrap(fn(*_unwrap(args), **kwargs))


empty, zeros, ones, full = (_creator(np.empty), _creator(np.zeros), _creator(np.ones),
                            _creator(np.full))
empty_like, zeros_like, ones_like, full_like = (_creator(np.empty_like), _creator(np.zeros_like),
                                                _creator(np.ones_like), _creator(np.full_like))
stack, concatenate, isfinite, isnan, abs, arange, where = (  # noqa: A001 - CuPy's names
    _creator(np.stack), _creator(np.concatenate), _creator(np.isfinite), _creator(np.isnan),
    _creator(np.abs), _creator(np.arange), _creator(np.where))


def __getattr__(name):
    """Any other NumPy function, on fake device arrays (cupy.log, cupy.clip, ...)."""
    fn = getattr(np, name, None)
    if fn is None or not callable(fn):
        raise AttributeError(f"the fake CuPy has no {name!r}")
    if isinstance(fn, type):  # scalar types: cupy.uint64 is numpy.uint64
        return fn
    return _creator(fn)


# --------------------------------------------------------------------------- cuda

class _Stream:
    ptr = 0

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(
    Device=Device,
    get_current_stream=lambda: _Stream(),
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
)
