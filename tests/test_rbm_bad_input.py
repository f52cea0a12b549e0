"""Bad input to ebmfast.RBM (DESIGN.md §4): every rejected call raises ValueError or
TypeError whose message names the argument, and leaves the model exactly as it was."""
from __future__ import annotations

import copy
import math
import re
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ebmfast as ef
from ebmfast import reference as ref

NV, NH = 5, 3
BASE = dict(n_visible=NV, n_hidden=NH, seed=0)


def _train_once():
    rbm = ef.RBM(NV, NH, seed=3, method="pcd", momentum=0.5, batch_size=4, epochs=2)
    rbm.fit((np.random.default_rng(0).random((9, NV)) < 0.5).astype(np.float32))
    return rbm


_TRAINED = _train_once()


def trained_model():
    """A PCD model with momentum after two epochs: velocities, chains, step, history all set
    (a deep copy of one trained model, so that the hundreds of cases cost no training)."""
    rbm = copy.deepcopy(_TRAINED)
    assert rbm._chains is not None and rbm.step > 0 and np.any(rbm._vW != 0)
    return rbm


def snapshot(rbm):
    return dict(W=rbm.W.copy(), b=rbm.b.copy(), c=rbm.c.copy(), WT=rbm.components_.copy(),
                vW=rbm._vW.copy(), vb=rbm._vb.copy(), vc=rbm._vc.copy(),
                chains=None if rbm._chains is None else rbm._chains.copy(), step=rbm.step,
                seed_=rbm.seed_, epochs_trained_=rbm.epochs_trained_,
                n_history=len(rbm.history_), params=rbm.get_params(), device_=rbm.device_)


def assert_unchanged(rbm, snap):
    now = snapshot(rbm)
    for key, old in snap.items():
        new = now[key]
        if isinstance(old, np.ndarray):
            assert isinstance(new, np.ndarray) and np.array_equal(old, new), key
        elif isinstance(old, dict):
            assert old.keys() == new.keys(), key
            for name in old:   # NaN-safe comparison of parameters
                assert old[name] is new[name] or old[name] == new[name], (key, name)
        else:
            assert old == new, key


def names(arg, message):
    """True when ``arg`` occurs in ``message`` as a word of its own (not inside another
    identifier, nor as the 'X' of a hint such as 'X.reshape(1, -1)')."""
    return re.search(rf"(?<![\w.]){re.escape(arg)}(?![\w.(])", message) is not None


def _id(value):
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


# --------------------------------------------------------------------------- constructor


BAD_PARAMS = [
    ("n_visible", 0, ValueError), ("n_visible", -1, ValueError), ("n_visible", 2.5, TypeError),
    ("n_visible", True, TypeError), ("n_visible", "3", TypeError), ("n_visible", None, TypeError),
    ("n_visible", np.float64(3.0), TypeError), ("n_visible", 2**31, ValueError),
    ("n_hidden", -1, ValueError), ("n_hidden", 0, ValueError), ("n_hidden", 2.5, TypeError),
    ("n_hidden", True, TypeError), ("n_hidden", np.array([3]), TypeError),
    ("device", "gpu", ValueError), ("device", "CPU", ValueError), ("device", None, ValueError),
    ("device", 0, ValueError),
    ("seed", -1, ValueError), ("seed", 2**64, ValueError), ("seed", 1.5, TypeError),
    ("seed", "42", TypeError), ("seed", True, TypeError),
    ("learning_rate", 0, ValueError), ("learning_rate", 0.0, ValueError),
    ("learning_rate", -0.1, ValueError), ("learning_rate", math.nan, ValueError),
    ("learning_rate", math.inf, ValueError), ("learning_rate", "0.1", TypeError),
    ("learning_rate", True, TypeError), ("learning_rate", None, TypeError),
    ("learning_rate", 1j, TypeError),
    ("method", "sgd", ValueError), ("method", "CD", ValueError), ("method", None, ValueError),
    ("method", ["cd"], ValueError),
    ("k", 0, ValueError), ("k", -1, ValueError), ("k", 1.5, TypeError), ("k", True, TypeError),
    ("momentum", 1.0, ValueError), ("momentum", 1, ValueError), ("momentum", 1.5, ValueError),
    ("momentum", -0.1, ValueError), ("momentum", math.nan, ValueError),
    ("momentum", "0.5", TypeError),
    ("weight_decay", -1e-3, ValueError), ("weight_decay", math.nan, ValueError),
    ("weight_decay", math.inf, ValueError),
    ("batch_size", 0, ValueError), ("batch_size", -5, ValueError), ("batch_size", 2.5, TypeError),
    ("batch_size", True, TypeError),
    ("epochs", -1, ValueError), ("epochs", 1.5, TypeError),
    ("progress", "yes", TypeError), ("progress", 1, TypeError), ("progress", None, TypeError),
]
BAD_PARAM_IDS = [f"{n}={_id(v)}" for n, v, _ in BAD_PARAMS]


@pytest.mark.parametrize("name,value,exc", BAD_PARAMS, ids=BAD_PARAM_IDS)
def test_constructor_rejects(name, value, exc):
    with pytest.raises(exc) as info:
        ef.RBM(**{**BASE, name: value})
    assert type(info.value) is exc
    assert names(name, str(info.value)), str(info.value)


@pytest.mark.parametrize("name,value,exc", BAD_PARAMS, ids=BAD_PARAM_IDS)
def test_set_params_rejects_and_leaves_model_unchanged(name, value, exc):
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(exc) as info:
        rbm.set_params(**{name: value})
    assert names(name, str(info.value)), str(info.value)
    assert_unchanged(rbm, snap)
    # a valid change next to an invalid one is not applied either (all-or-nothing)
    with pytest.raises(exc):
        rbm.set_params(**{"learning_rate": 0.3, "epochs": 99, name: value})
    assert_unchanged(rbm, snap)


def test_set_params_unknown_name():
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(ValueError, match="n_visibles"):
        rbm.set_params(n_visibles=3)
    with pytest.raises(ValueError, match="n_components"):
        rbm.set_params(n_components=4, learning_rate=0.2)
    assert_unchanged(rbm, snap)


def test_constructor_requires_keywords():
    with pytest.raises(TypeError):
        ef.RBM(NV, NH, "cpu")   # everything after the sizes is keyword-only
    with pytest.raises(TypeError):
        ef.RBM(NV)


# --------------------------------------------------------------------------- array arguments


class FakeCudaArray:
    """Stands in for a CuPy array: exposes __cuda_array_interface__."""

    def __init__(self, shape=(4, NV)):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (0, False),
                                         "version": 3}


def _with(value, where=(0, 0), shape=(4, NV), dtype=np.float64):
    a = np.zeros(shape, dtype)
    a[where] = value
    return a


BAD_ARRAYS = [
    ("1-D", lambda: np.zeros(NV, np.float32), ValueError),
    ("3-D", lambda: np.zeros((2, NV, 1), np.float32), ValueError),
    ("0-D", lambda: np.float32(0.0), ValueError),
    ("python-scalar", lambda: 0.5, ValueError),
    ("too-few-columns", lambda: np.zeros((4, NV - 1), np.float32), ValueError),
    ("too-many-columns", lambda: np.zeros((4, NV + 1), np.float32), ValueError),
    ("transposed", lambda: np.zeros((NV, 4), np.float32), ValueError),
    ("zero-rows", lambda: np.zeros((0, NV), np.float32), ValueError),
    ("zero-columns", lambda: np.zeros((3, 0), np.float32), ValueError),
    ("empty-list", lambda: [], ValueError),
    ("complex", lambda: np.zeros((4, NV), np.complex64), TypeError),
    ("object", lambda: np.zeros((4, NV)).astype(object), TypeError),
    ("str", lambda: np.full((4, NV), "0"), TypeError),
    ("bytes", lambda: np.full((4, NV), b"1"), TypeError),
    ("datetime", lambda: np.zeros((4, NV), "datetime64[s]"), TypeError),
    ("None", lambda: None, TypeError),
    ("ragged-list", lambda: [[0, 1, 0, 1, 0], [0, 1]], TypeError),
    ("nan", lambda: _with(np.nan), ValueError),
    ("nan-float32", lambda: _with(np.nan, (3, 4), dtype=np.float32), ValueError),
    ("inf", lambda: _with(np.inf), ValueError),
    ("-inf-float16", lambda: _with(-np.inf, dtype=np.float16), ValueError),
    ("above-one", lambda: _with(1.5), ValueError),
    ("negative", lambda: _with(-0.25, (2, 1)), ValueError),
    ("int-2", lambda: _with(2, dtype=np.int64), ValueError),
    ("int-minus-1", lambda: _with(-1, dtype=np.int8), ValueError),
    ("gpu-array", lambda: FakeCudaArray(), TypeError),
]
NON_BINARY = ("non-binary", lambda: _with(0.5), ValueError)

# (method, name of its array argument, requires binary input)
ARRAY_METHODS = [
    ("fit", "X", False), ("partial_fit", "X", False), ("transform", "X", False),
    ("gradient", "X", False), ("free_energy", "V", False), ("score_samples", "X", True),
    ("gibbs", "V", True),
]


def _cases():
    for method, arg, needs_binary in ARRAY_METHODS:
        rows = BAD_ARRAYS + ([NON_BINARY] if needs_binary else [])
        for label, make, exc in rows:
            yield pytest.param(method, arg, make, exc, id=f"{method}-{label}")


@pytest.mark.parametrize("method,arg,make,exc", list(_cases()))
def test_array_argument_rejected_and_model_unchanged(method, arg, make, exc):
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(exc) as info:
        getattr(rbm, method)(make())
    message = str(info.value)
    assert names(arg, message), message
    if isinstance(make(), FakeCudaArray):
        assert "GPU" in message and "CPU" in message
    assert_unchanged(rbm, snap)


@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "free_energy"])
def test_probabilities_accepted_where_allowed(method):
    rbm = trained_model()
    X = np.random.default_rng(1).random((6, NV))
    getattr(rbm, method)(X)   # values in [0, 1] are valid data here


def test_log_likelihood_error_names_its_argument():
    rbm = trained_model()
    with pytest.raises(ValueError) as info:
        rbm.log_likelihood(np.zeros((2, NV + 1)))
    assert names("X", str(info.value)), str(info.value)


@pytest.mark.parametrize("target", ["transform", "fit", "W"])
def test_float64_beyond_float32_range_is_a_clean_value_error(target):
    rbm = trained_model()
    snap = snapshot(rbm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as info:
            if target == "W":
                rbm.W = np.full((NV, NH), 1e300)
            else:
                getattr(rbm, target)(_with(1e300))
    assert names("W" if target == "W" else "X", str(info.value))
    assert "NaN" not in str(info.value)
    assert_unchanged(rbm, snap)


# --------------------------------------------------------------------------- scalar arguments


BAD_SCALARS = [
    ("gibbs", "k", 0, ValueError), ("gibbs", "k", -1, ValueError),
    ("gibbs", "k", 1.5, TypeError), ("gibbs", "k", True, TypeError),
    ("gibbs", "k", None, TypeError), ("gibbs", "k", "2", TypeError),
    ("sample", "n_samples", 0, ValueError), ("sample", "n_samples", -1, ValueError),
    ("sample", "n_samples", 2.5, TypeError), ("sample", "n_samples", True, TypeError),
    ("sample", "n_samples", None, TypeError), ("sample", "n_samples", np.float64(2), TypeError),
    ("sample", "n_samples", 2**31, ValueError),
    ("sample", "n_steps", -1, ValueError), ("sample", "n_steps", 2.5, TypeError),
    ("sample", "n_steps", True, TypeError),
    ("sample", "beta", -1.0, ValueError), ("sample", "beta", math.nan, ValueError),
    ("sample", "beta", math.inf, ValueError), ("sample", "beta", "1", TypeError),
    ("sample", "beta", True, TypeError), ("sample", "beta", None, TypeError),
    ("sample", "beta", 1j, TypeError),
]


@pytest.mark.parametrize("method,name,value,exc", BAD_SCALARS,
                         ids=[f"{m}-{n}={_id(v)}" for m, n, v, _ in BAD_SCALARS])
def test_scalar_argument_rejected_and_model_unchanged(method, name, value, exc):
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(exc) as info:
        if method == "gibbs":
            rbm.gibbs(np.ones((2, NV)), **{name: value})
        else:
            rbm.sample(**{"n_samples": 3, "n_steps": 2, **{name: value}})
    assert type(info.value) is exc
    assert names(name, str(info.value)), str(info.value)
    assert_unchanged(rbm, snap)


BAD_ASSIGNMENTS = [
    ("W", np.zeros((NV, NH + 1)), ValueError), ("W", np.zeros((NH, NV)), ValueError),
    ("W", np.zeros(NV * NH), ValueError), ("W", np.zeros((NV, NH), complex), TypeError),
    ("W", np.full((NV, NH), np.nan), ValueError), ("W", np.full((NV, NH), "x"), TypeError),
    ("W", None, TypeError),
    ("b", np.zeros(NV + 1), ValueError), ("b", np.zeros((1, NV)), ValueError),
    ("b", np.full(NV, np.inf), ValueError),
    ("c", np.zeros(NV), ValueError), ("c", np.array([0.0, np.nan, 0.0]), ValueError),
    ("c", np.zeros(NH).astype(object), TypeError),
]


@pytest.mark.parametrize("name,value,exc", BAD_ASSIGNMENTS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_ASSIGNMENTS)])
def test_parameter_assignment_rejected_and_model_unchanged(name, value, exc):
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(exc) as info:
        setattr(rbm, name, value)
    assert names(name, str(info.value)), str(info.value)
    assert_unchanged(rbm, snap)


@pytest.mark.parametrize("name", ["components_", "intercept_hidden_", "intercept_visible_",
                                  "device_"])
def test_derived_attributes_cannot_be_assigned(name):
    rbm = trained_model()
    snap = snapshot(rbm)
    with pytest.raises(AttributeError):
        setattr(rbm, name, getattr(rbm, name))
    assert_unchanged(rbm, snap)


# --------------------------------------------------------------------------- property-based


_FLOATS = {"float16": 16, "float32": 32, "float64": 32}   # float64 within float32 range
_KINDS = ["float16", "float32", "float64", "int8", "uint8", "int64", "uint64", "bool",
          "complex64", "complex128", "str", "object"]


@st.composite
def transform_inputs(draw):
    kind = draw(st.sampled_from(_KINDS))
    shape = draw(st.one_of(
        st.tuples(st.integers(0, 4), st.just(NV)),      # mostly the valid layout ...
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)))   # ... or any
    unit = draw(st.booleans())   # values in [0, 1] (often valid) or anything
    if kind in _FLOATS:
        width = _FLOATS[kind]
        elements = st.floats(0, 1, width=width) if unit else st.floats(width=width)
    elif kind == "bool":
        elements = None
    elif kind.startswith(("int", "uint")):
        elements = st.integers(0, 1) if unit else None
    elif kind == "object":
        elements = st.floats(0, 1)
    else:
        elements = None
    dtype = np.dtype("U3") if kind == "str" else np.dtype(kind)
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return arr.tolist() if draw(st.integers(0, 4)) == 0 else arr


def _expected(x):
    """None when transform must succeed, else the exception type it must raise."""
    try:
        a = np.asarray(x)
    except Exception:
        return TypeError
    if a.dtype.kind not in "biuf":
        return TypeError
    if a.ndim != 2 or a.shape[1] != NV or a.shape[0] == 0:
        return ValueError
    f = a.astype(np.float64)
    if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
        return ValueError
    return None


_MODEL = ef.RBM(NV, NH, seed=0)
_MODEL.W = np.random.default_rng(0).standard_normal((NV, NH))
_MODEL.c = np.array([0.5, -1.0, 0.25])


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(transform_inputs())
def test_transform_on_arbitrary_arrays(x):
    step = _MODEL.step
    expected = _expected(x)
    if expected is None:
        P = _MODEL.transform(x)
        f = np.asarray(x, np.float64)
        assert P.shape == (f.shape[0], NH) and P.dtype == np.float32
        np.testing.assert_allclose(P, ref.sigmoid(f @ _MODEL.W + _MODEL.c), rtol=0, atol=2e-6)
    else:
        with pytest.raises((ValueError, TypeError)) as info:
            _MODEL.transform(x)
        assert type(info.value) is expected, (info.value, x)
        assert names("X", str(info.value)), str(info.value)
    assert _MODEL.step == step
