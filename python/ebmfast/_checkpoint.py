"""Model files and training checkpoints shared by every trainable model.

One layout for all of them: an uncompressed .npz (never a pickle) whose entry ``meta`` is
a JSON object ``{"format": "ebmfast", "version": 1, "kind": "<class name>", ...}`` beside
the model's arrays. ``write`` is atomic (temporary file in the same directory, flush +
fsync, ``os.replace``), so a crash mid-write leaves the previous file intact; ``read``
turns every way a file can be wrong (truncated, random bytes, another program's .npz,
another model kind, a newer format version) into a ValueError that names the path.

``FitCheckpoints`` is the small object a fit loop calls at the end of each epoch: it writes
the model's full state plus the progress of the running call (``fit`` meta: the epoch
target, a fingerprint of the data, phase-specific entries) every ``checkpoint_every``
epochs and after the last one. ``fit(..., resume=path)`` reads that back and finishes the
interrupted call bit for bit (same Philox steps, same shuffles).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Callable

import numpy as np

from ._backend import check_int

FORMAT = "ebmfast"
VERSION = 1
_META = "meta"
_DIGEST = "digest"  # sha256 of meta and arrays: numpy reads zip members without their CRC
_LEGACY_RBM = "ebmfast.RBM/1"  # RBM files written before the shared layout


# --------------------------------------------------------------------------- writing

def write(path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and the JSON ``meta`` to ``path`` atomically."""
    path = os.fspath(path)
    if _META in arrays or _DIGEST in arrays:
        raise ValueError(f"array names {_META!r} and {_DIGEST!r} are reserved")
    header = json.dumps({"format": FORMAT, "version": VERSION, "kind": kind, **meta})
    payload = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    payload[_DIGEST] = np.array(digest(header, payload))
    payload[_META] = np.array(header)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ebmfast-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------- reading

def read(path, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of an ebmfast file holding a ``kind`` model. Missing files and
    permission problems raise their OSError; anything wrong with the content a ValueError
    naming the path and the problem."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise _NotNpz()
            with loaded as z:
                arrays = {name: z[name] for name in z.files}
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(f"{path!r} is not an ebmfast {kind} file: truncated or corrupt "
                         f"({exc})") from None
    except _NotNpz:
        raise ValueError(f"{path!r} is not an ebmfast {kind} file: it holds a single array "
                         "(.npy), not an .npz archive") from None
    except Exception as exc:  # zipfile, zlib, numpy format errors: all mean a bad file
        raise ValueError(f"{path!r} is not an ebmfast {kind} file: truncated or corrupt "
                         f"({type(exc).__name__}: {exc})") from None
    if _META not in arrays:
        raise ValueError(f"{path!r} is an .npz archive but not an ebmfast {kind} file (no "
                         f"{_META!r} entry; it holds {sorted(arrays)[:5]})")
    stored_digest = arrays.pop(_DIGEST, None)
    try:
        raw = str(arrays.pop(_META)[()])
        meta = json.loads(raw)
    except Exception:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r} is not an ebmfast {kind} file (its {_META!r} entry is not "
                         "a JSON object)")
    fmt = meta.get("format")
    if fmt == _LEGACY_RBM:
        meta = {**meta, "format": FORMAT, "version": 1, "kind": "RBM"}
    elif fmt != FORMAT:
        raise ValueError(f"{path!r} is not an ebmfast {kind} file (format tag {fmt!r})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path!r} is a damaged ebmfast file (format version {version!r})")
    if version > VERSION:
        raise ValueError(f"{path!r} was written by a newer ebmfast (format version {version}; "
                         f"this version reads up to {VERSION}): upgrade ebmfast to load it")
    if meta.get("kind") != kind:
        other = meta.get("kind")
        hint = f"; load it with ebmfast.{other}.load" if isinstance(other, str) else ""
        raise ValueError(f"{path!r} holds an ebmfast {other!r} model, not a {kind!r}{hint}")
    if fmt != _LEGACY_RBM:  # legacy RBM files carry no digest; their content checks remain
        try:
            ok = str(stored_digest[()]) == digest(raw, arrays)
        except Exception:
            ok = False
        if not ok:
            raise ValueError(f"{path!r} is a damaged ebmfast {kind} file: checksum mismatch "
                             "(its content changed after it was written)")
    return meta, arrays


def digest(meta_json: str, arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the meta JSON and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class _NotNpz(Exception):
    pass


def damaged(path, kind: str, exc: BaseException) -> ValueError:
    """The error for a file that passed the format checks but whose content is unusable."""
    detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
    return ValueError(f"{os.fspath(path)!r} is a damaged ebmfast {kind} file: missing or bad "
                      f"entry ({detail})")


def array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...] | None = None,
          dtype=np.float32, finite: bool = True) -> np.ndarray:
    """Entry ``name`` checked for shape and finiteness, as a C-contiguous ``dtype`` copy
    (dtype None: the stored one, so that a resumed run sees the very same bits)."""
    if name not in arrays:
        raise KeyError(name)
    a = arrays[name]
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return np.array(a, dtype=a.dtype if dtype is None else dtype, order="C")


# --------------------------------------------------------------------------- fit loops

def fingerprint(*arrays) -> str:
    """Digest of the training data (shapes, dtypes, bytes): a resumed call must see the
    data the interrupted one saw, or it could not continue it bit for bit."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:32]


class FitCheckpoints:
    """Checkpoint writer of one fit call. ``path`` None disables it."""

    def __init__(self, path, every) -> None:
        self.every = check_int(every, "checkpoint_every", minimum=1)
        if path is None:
            self.path = None
            return
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {path!r}")
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):  # fail now, not after the first epoch's work
            raise FileNotFoundError(f"checkpoint: directory {directory!r} does not exist")
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"checkpoint: {self.path!r} is a directory")

    def epoch_done(self, epochs_done: int, last: bool, save: Callable[[str], None]) -> None:
        """Call after every epoch; ``save(path)`` writes the model with its fit progress."""
        if self.path is not None and (last or epochs_done % self.every == 0):
            save(self.path)


def check_resume_path(resume) -> str:
    if not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a path (str or os.PathLike), got {resume!r}")
    return os.fspath(resume)


def check_same_data(path: str, fit: dict | None, data_id: str) -> None:
    if fit is not None and fit.get("data") != data_id:
        raise ValueError(f"resume: {path!r} was written while fitting other data; pass the "
                         "same X (and y) as the interrupted call to continue it")


def adopt(model, loaded, keep: tuple[str, ...] = ()) -> None:
    """Replace ``model``'s whole state by that of ``loaded`` (a fresh instance read from a
    checkpoint), keeping the attributes named in ``keep``."""
    kept = {name: getattr(model, name) for name in keep}
    vars(model).clear()
    vars(model).update(vars(loaded))
    for name, value in kept.items():
        setattr(model, name, value)
