"""Run numpy's BLAS on one thread for a while (small GEMMs on a shared machine).

The engine's matrix products are small (a few million multiply-adds). OpenBLAS splits them over
all cores, and on a busy 2-core machine its threads then wait for each other: measured here,
one 128x64 @ 64x256 product took 0.13 ms on one thread and 0.6 ms on two while other jobs ran,
and a whole check 0.3 s against 6.6 s. :func:`single_thread` sets the thread count of the
OpenBLAS that numpy loaded to 1 and restores it afterwards; where that library cannot be found
(another BLAS, another OS), it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from contextlib import contextmanager

__all__ = ["single_thread", "blas_threads", "fast_problems_single_thread"]

_LOCK = threading.Lock()
_STATE: dict = {}


def _functions():
    """(get, set) of the loaded OpenBLAS's thread count, or None."""
    if "fns" in _STATE:
        return _STATE["fns"]
    fns = None
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line.lower() and ".so" in line})
        for path in paths:
            lib = ctypes.CDLL(path)
            for get, put in (("scipy_openblas_get_num_threads64_",
                              "scipy_openblas_set_num_threads64_"),
                             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                             ("openblas_get_num_threads", "openblas_set_num_threads")):
                if hasattr(lib, get) and hasattr(lib, put):
                    g, s = getattr(lib, get), getattr(lib, put)
                    g.restype, g.argtypes = ctypes.c_int, []
                    s.restype, s.argtypes = None, [ctypes.c_int]
                    fns = (g, s)
                    break
            if fns:
                break
    except (OSError, AttributeError):  # no /proc, no such library: leave BLAS alone
        fns = None
    _STATE["fns"] = fns
    return fns


def blas_threads() -> int | None:
    """The current OpenBLAS thread count, or None when it cannot be read."""
    fns = _functions()
    return int(fns[0]()) if fns else None


@contextmanager
def single_thread():
    """Within the block, numpy's OpenBLAS uses one thread (re-entrant, thread-safe)."""
    fns = _functions()
    if fns is None:
        yield
        return
    with _LOCK:
        depth = _STATE.get("depth", 0)
        if depth == 0:
            _STATE["saved"] = int(fns[0]())
            if _STATE["saved"] != 1:
                fns[1](1)
        _STATE["depth"] = depth + 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0 and _STATE["saved"] != 1:
                fns[1](_STATE["saved"])


def fast_problems_single_thread(check):
    """Decorate ``check(problem, ...)``: one BLAS thread while checking a problem that has a
    fast engine (the built-in networks, whose products are all small). Other problems (a
    user's model, which may have large products) keep numpy's setting."""

    @functools.wraps(check)
    def run(problem, *args, **kwargs):
        if getattr(problem, "fast", None) is None:
            return check(problem, *args, **kwargs)
        with single_thread():
            return check(problem, *args, **kwargs)

    return run
