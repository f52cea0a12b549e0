"""Ctrl-C and long kernel calls (DESIGN.md §4: long loops run in chunks and honour Ctrl-C
between them).

The kernels release the GIL, so a SIGINT that arrives during a call is seen by Python only
when the call returns: the KeyboardInterrupt is then raised at the first bytecode check
after it, which may fall between a kernel that changed a model in place and the Python
lines that record the change (step counter, transposes, caches). Two tools here:

* ``chunk_size(work_per_unit, total)``: how many steps (sweeps, rows) make one kernel call
  of about ``CHUNK_WORK`` elementary operations (5..50 ms), so that Ctrl-C is answered well
  within a second;
* ``deferred_interrupt()``: a context manager for the short "kernel + commit" sections of
  model updates. In the main thread it holds a SIGINT back until the section has finished
  and then raises it again, so a model is either updated completely or not at all. Other
  threads never receive KeyboardInterrupt, so there it does nothing.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

# Elementary operations (multiply-adds, coupling reads, gathered row elements) per kernel
# call in chunked loops. The CPU kernels run 2e9..2e10 of them per second on the 2-core
# development machine, so a call lasts 5..50 ms (a few times that when the cores are
# shared): Ctrl-C is honoured well within a second, and the per-call overhead (~10-50 us)
# stays below 1%.
CHUNK_WORK = 1e8


def chunk_size(work_per_unit: float, total: int, *, multiple: int = 1, minimum: int = 1) -> int:
    """Units (steps, sweeps, rows) per kernel call: about CHUNK_WORK operations, at least
    ``minimum``, a multiple of ``multiple``, at most ``total`` (rounded up to ``multiple``)."""
    n = int(CHUNK_WORK // max(float(work_per_unit), 1.0))
    n = max(n, minimum, 1)
    n = max(multiple, n // multiple * multiple)
    top = -(-max(int(total), 1) // multiple) * multiple
    return min(n, top)


# Aimed duration of one kernel call where the calls are sized from the time of the one
# before (timed_chunks): Ctrl-C is answered between calls.
CALL_S = 0.1


def timed_chunks(total: int, first: int, *, multiple: int = 1, grow: int = 8):
    """(start, size) pairs covering range(total), for loops whose cost per unit is not
    known beforehand (a recall cue needs a few sweeps or a hundred) or whose calls carry
    a per-call cost (state handed on, layouts converted). The first has ``first`` units;
    each later one is sized from the time the caller spent on the one before (measured
    between the generator's yields) to last about CALL_S, at most ``grow`` times the
    previous; sizes are multiples of ``multiple`` except the last."""
    multiple = max(int(multiple), 1)
    size = max(multiple, int(first) // multiple * multiple)
    start = 0
    while start < total:
        size = min(size, total - start)
        t0 = time.perf_counter()
        yield start, size
        per_unit = (time.perf_counter() - t0) / size
        start += size
        aim = int(CALL_S / max(per_unit, 1e-12)) // multiple * multiple
        size = max(multiple, min(aim, grow * size))


@contextlib.contextmanager
def deferred_interrupt():
    """Hold SIGINT back for the duration of the block (main thread only), then re-raise it.

    The previous handler is restored before the signal is raised again, so whatever the
    program had installed (the default KeyboardInterrupt, a custom handler) sees it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # no signal support here (embedded interpreter)
        yield
        return
    if previous is None:  # a handler not installed from Python: leave it alone
        yield
        return
    received = []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)
