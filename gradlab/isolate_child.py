"""The worker's side of :mod:`gradlab.isolate`: what runs in the forked child.

The child leaves the parent's process group (so the parent can kill it with everything it
starts), dies with the parent (``PR_SET_PDEATHSIG`` on Linux), sends its stdout and stderr to a
pipe, limits its address space, then runs the setup and serves one call per request. Before the
model's code runs, the guards of :mod:`gradlab.models.byo` write the function's name and the
time into a shared-memory :class:`Phase` the parent reads after a crash or at a timeout.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import struct
import time
import traceback
from typing import Any

from .errors import ModelError, one_line

__all__ = ["Phase", "PHASES", "HEADER", "send", "recv", "where", "child_main"]

PHASES = ("", "import", "init()", "cost()", "gradients()", "cost_batch()")
HEADER = struct.Struct("<Q")  # every message: its length, then a pickle


class Phase:
    """Shared memory (survives the child): the model function running now, since when."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 16)
        self._view = memoryview(self._map).cast("d")
        self.last = ""  # child side: the last model function entered

    def __call__(self, phase: str) -> None:
        """Record that ``phase`` (one of :data:`PHASES`) starts now."""
        if phase:
            self.last = phase
        self._view[0] = PHASES.index(phase)
        self._view[1] = time.monotonic()

    def read(self) -> tuple[str, float]:
        """(phase, seconds since it was entered)."""
        return PHASES[int(self._view[0])], time.monotonic() - self._view[1]

    def close(self) -> None:
        """Release the shared memory."""
        self._view.release()
        self._map.close()


def where(phase: str) -> str:
    """``in cost()``, ``during import``: where a failure happened, for a reason's text."""
    if phase == "import":
        return "during import"
    return f"in {phase}" if phase else "in gradlab's check (no model function was running)"


# ----------------------------------------------------------------------------- pipes
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, obj: Any) -> None:
    """Write one message (``obj`` pickled, after its length) to a pipe."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, HEADER.pack(len(data)) + data)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int) -> Any:
    """Read one message from a pipe, blocking; ``None`` when the pipe is closed."""
    head = _read_exactly(fd, HEADER.size)
    if head is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)


# ----------------------------------------------------------------------------- the child
def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's kill on close still applies
        pass


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(memory_mb: int | None) -> None:
    if memory_mb is None:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = _vm_bytes() + memory_mb * (1 << 20)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _memory_error(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, MemoryError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _serve(setup, args, source, limits, phase, req_fd, res_fd) -> None:
    """The child's main loop: setup, then one call per request until the pipe closes."""
    from .models import byo

    byo.PHASE_HOOK = phase
    calls = [(setup, args)]
    state = None
    while calls or (req := recv(req_fd)) is not None:
        fn, fargs = calls.pop() if calls else req
        started = time.process_time()
        try:
            out = fn(*fargs) if fn is setup else fn(state, *fargs)
            if fn is setup:
                state, out = out
            reply = ("ok", out, time.process_time() - started)
        except BaseException as exc:  # noqa: B036 - everything the model does is reported
            text = one_line(exc, source)
            if limits.memory_mb is not None and _memory_error(exc):
                from_model = isinstance(exc, ModelError)
                text = f"{source}: exceeded {limits.memory_mb} MB " \
                    + where(phase.last if from_model else "")
                send(res_fd, ("fatal", text, ""))
                return
            reply = ("error", text, traceback.format_exc())
        try:
            send(res_fd, reply)
        except Exception as exc:  # an unpicklable result
            send(res_fd, ("error", f"{source}: the result cannot be sent back: "
                                    f"{one_line(exc)}", traceback.format_exc()))
        if fn is setup and reply[0] != "ok":
            return


def child_main(setup, args, source, limits, phase, fds) -> None:
    """The forked child's whole life; never returns (``os._exit``).

    Args:
        setup, args: the setup and its arguments (see :class:`gradlab.isolate.Worker`).
        source: the model file, for messages.
        limits: the :class:`~gradlab.isolate.Limits` (the memory limit is applied here).
        phase: the shared :class:`Phase`.
        fds: ``(requests, replies, output, parent_ends)``: the child's pipe ends, and the
            parent's ends to close.
    """
    req_r, res_w, out_w, closing = fds
    code = 0
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        for fd in closing:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        _limit_memory(limits.memory_mb)
        _serve(setup, args, source, limits, phase, req_r, res_w)
    except BaseException:  # noqa: B036 - the child never returns into the parent's code
        code = 70
    finally:
        os._exit(code)
