"""Run a model file's code in a worker process that may crash, exit or hang.

A :class:`Worker` is a forked child that runs a *setup* (import the model file and call its
``init``) and then serves calls (one gradient check each) sent over a pipe, sending back
picklable results. The parent enforces the wall-time limit of each call and kills the
worker's whole process group when it is exceeded; the memory limit is the worker's address
space (``RLIMIT_AS``), set in the child. The model's stdout and stderr go to a pipe the parent
drains (the tail is kept to quote in a failure reason), so a model that prints megabytes does
not touch the parent's output.

Which model function was running when a worker died is read from a small shared-memory
block the guards of :mod:`gradlab.models.byo` write to (``PHASE_HOOK``): a crash, an exit, a
signal or a hang becomes one line such as ``m.py: killed by signal 11 (SIGSEGV, segmentation
fault) in cost()``. After such a *fatal* failure the worker is gone and every later call raises
the same reason at once. An ordinary exception in the model (a ``ModelError``) is not fatal:
the worker goes on with the next call.

Only model files are isolated; the built-in models run in-process (:mod:`gradlab.runner`).
Where ``fork`` is unavailable the calls run in-process (no isolation).
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import ModelError, one_line

__all__ = ["Limits", "Worker", "WorkerError", "WorkerDied", "DEFAULT_SECONDS", "can_isolate"]

#: the default wall-time limit of one check of one model file, in seconds
DEFAULT_SECONDS = 600.0
PHASES = ("", "import", "init()", "cost()", "gradients()", "cost_batch()")
_TAIL_BYTES = 4096  # how much of the model's output the parent keeps
_HEADER = struct.Struct("<Q")


@dataclass(frozen=True)
class Limits:
    """Limits for one worker.

    Attributes:
        seconds: wall time of one call (the setup, or one check).
        memory_mb: address space the worker may map beyond what it has at start (``None``:
            no limit of gradlab's own).
    """

    seconds: float = DEFAULT_SECONDS
    memory_mb: int | None = None


class WorkerError(ModelError):
    """The model failed in the worker: one line in the message, the child's traceback in
    ``details`` (empty when there is none)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


class WorkerDied(WorkerError):
    """The worker crashed, exited, hung past its time limit or exceeded its memory limit."""


def can_isolate() -> bool:
    """Whether workers can be forked here (POSIX, and no fork-unsafe library imported)."""
    from .fast.byo import FORK_UNSAFE

    return hasattr(os, "fork") and not any(name in sys.modules for name in FORK_UNSAFE)


# ----------------------------------------------------------------------------- phase
class _Phase:
    """Shared memory (survives the child): the model function running now, since when."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 16)
        self._view = memoryview(self._map).cast("d")
        self.last = ""  # child side: the last model function entered

    def __call__(self, phase: str) -> None:
        if phase:
            self.last = phase
        self._view[0] = PHASES.index(phase)
        self._view[1] = time.monotonic()

    def read(self) -> tuple[str, float]:
        """(phase, seconds since it was entered)."""
        return PHASES[int(self._view[0])], time.monotonic() - self._view[1]

    def close(self) -> None:
        self._view.release()
        self._map.close()


def _where(phase: str) -> str:
    if phase == "import":
        return "during import"
    return f"in {phase}" if phase else "in gradlab's check (no model function was running)"


# ----------------------------------------------------------------------------- pipes
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _HEADER.pack(len(data)) + data)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(fd: int) -> Any:
    head = _read_exactly(fd, _HEADER.size)
    if head is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(head)[0])
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
    while calls or (req := _recv(req_fd)) is not None:
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
                where = _where(phase.last if from_model else "")
                _send(res_fd, ("fatal", f"{source}: exceeded {limits.memory_mb} MB {where}", ""))
                return
            reply = ("error", text, traceback.format_exc())
        try:
            _send(res_fd, reply)
        except Exception as exc:  # an unpicklable result
            _send(res_fd, ("error", f"{source}: the result cannot be sent back: "
                                    f"{one_line(exc)}", traceback.format_exc()))
        if fn is setup and reply[0] != "ok":
            return


def _child(setup, args, source, limits, phase, fds) -> None:
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


# ----------------------------------------------------------------------------- the parent
class Worker:
    """A forked worker process for one model file.

    Args:
        setup: ``setup(*args) -> (state, summary)``, run first in the child; ``state`` stays
            there, ``summary`` (picklable) is what :meth:`start` returns.
        args: the setup's arguments.
        source: the model file, for messages.
        limits: time and memory limits.
        echo: where to copy the model's output as it comes (default: nowhere).

    Use as a context manager; :meth:`close` kills the worker and its children.
    """

    def __init__(self, setup: Callable[..., tuple[Any, Any]], args: tuple, source: str,
                 limits: Limits, echo: BinaryIO | None = None):
        self.source, self.limits, self.echo = source, limits, echo
        self.dead = ""  # the fatal reason, once there is one
        self.tail = bytearray()
        self._setup = (setup, args)
        self._phase = _Phase()
        self.pid = 0
        self._status: int | None = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fork(self) -> None:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            _child(*self._setup, self.source, self.limits, self._phase,
                   (req_r, res_w, out_w, (req_w, res_r, out_r)))
        try:
            os.setpgid(pid, pid)
        except OSError:  # the child did it first
            pass
        for fd in (req_r, res_w, out_w):
            os.close(fd)
        self.pid, self._req, self._res, self._out = pid, req_w, res_r, out_r
        self._buf = bytearray()
        try:
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def start(self) -> Any:
        """Fork the worker and run the setup; return its summary.

        Raises:
            WorkerError: the setup raised (its one-line reason).
            WorkerDied: the worker crashed, exited or hung in the setup.
        """
        self._fork()
        return self._reply()

    def call(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        """Run ``fn(state, *args)`` in the worker (``fn`` a module-level function).

        Returns:
            ``(value, cpu_seconds)``: what ``fn`` returned and the CPU time it took.

        Raises:
            WorkerError: ``fn`` raised (the worker goes on).
            WorkerDied: the worker crashed, exited, hung or ran out of memory in this call or
                an earlier one (the reason is the same from then on).
        """
        if self.dead:
            raise WorkerDied(self.dead)
        if not self.pid:
            raise RuntimeError("Worker.call() before start()")
        try:
            _send(self._req, (fn, args))
        except BrokenPipeError:
            pass  # it died: the reply says how
        return self._reply(with_cpu=True)

    def _reply(self, with_cpu: bool = False):
        deadline = time.monotonic() + self.limits.seconds
        msg = self._wait(deadline)
        if msg is None:
            reason = self._death_reason(deadline)
            self.close()
            self.dead = reason
            raise WorkerDied(reason)
        kind, value, extra = msg
        if kind == "fatal":
            self.close()
            self.dead = value
            raise WorkerDied(value)
        if kind == "error":
            raise WorkerError(value, extra)
        return (value, extra) if with_cpu else value

    def _wait(self, deadline: float):
        """The next message, or None when the worker died or the deadline passed."""
        watch = [self._res, self._out] + ([self._pidfd] if self._pidfd is not None else [])
        while True:
            msg = self._message()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select(watch, [], [], min(left, 0.5))
            if self._out in ready:
                self._drain()
            if self._res in ready:
                chunk = os.read(self._res, 1 << 20)
                if not chunk:
                    return self._message()
                self._buf += chunk
            elif self._pidfd in ready or (not ready and self._exited()):
                self._drain()
                return self._message(final=True)

    def _message(self, final: bool = False):
        if final:  # the child is gone: whatever it wrote is in the pipe
            while chunk := self._read_nowait(self._res):
                self._buf += chunk
        if len(self._buf) < _HEADER.size:
            return None
        n = _HEADER.unpack_from(self._buf)[0]
        if len(self._buf) < _HEADER.size + n:
            return None
        body = bytes(self._buf[_HEADER.size:_HEADER.size + n])
        del self._buf[:_HEADER.size + n]
        return pickle.loads(body)

    @staticmethod
    def _read_nowait(fd: int) -> bytes:
        ready, _, _ = select.select([fd], [], [], 0)
        return os.read(fd, 1 << 20) if ready else b""

    def _drain(self) -> None:
        while chunk := self._read_nowait(self._out):
            if self.echo is not None:
                self.echo.write(chunk)
                self.echo.flush()
            self.tail += chunk
            del self.tail[:-_TAIL_BYTES]
            if len(chunk) < (1 << 20):
                break

    def _exited(self) -> bool:
        if self._status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid:
                self._status = status
        return self._status is not None

    def _death_reason(self, deadline: float) -> str:
        phase, running = self._phase.read()
        if time.monotonic() >= deadline:
            limit = f"{self.limits.seconds:g} s"
            if phase in ("", "import"):
                what = "the import" if phase else "the check"
                return f"{self.source}: {what} did not finish within {limit}"
            if running >= 0.5 * self.limits.seconds:
                return f"{self.source}: {phase} did not return within {limit}"
            return (f"{self.source}: the check did not finish within {limit} (it was in {phase},"
                    " called many times: a slow model needs a larger time limit)")
        status = self._reap()
        if status is None:  # pragma: no cover - the pipe closed but the process lives on
            return f"{self.source}: the worker closed its pipe {_where(phase)}"
        last = self._last_output()
        if os.WIFSIGNALED(status):
            n = os.WTERMSIG(status)
            try:
                name = signal.Signals(n).name
            except ValueError:
                name = "unknown signal"
            what = ("kill -9 or the out-of-memory killer" if n == signal.SIGKILL
                    else (signal.strsignal(n) or "").lower())
            return f"{self.source}: killed by signal {n} ({name}: {what}) {_where(phase)}{last}"
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        return f"{self.source}: os._exit({code}) {_where(phase)}{last}"

    def _last_output(self) -> str:
        self._drain()
        lines = [ln.strip() for ln in self.tail.decode("utf-8", "replace").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            return ""
        text = lines[-1] if len(lines[-1]) <= 120 else lines[-1][:117] + "..."
        return f"; its last output: {text!r}"

    def _reap(self) -> int | None:
        if self._status is None:
            try:
                self._status = os.waitpid(self.pid, 0)[1]
            except ChildProcessError:
                return None
        return self._status

    def close(self) -> None:
        """Kill the worker (and any process it started) and release its pipes."""
        if not self.pid:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._reap()
        for fd in (self._req, self._res, self._out, self._pidfd):
            if fd is not None:
                os.close(fd)
        self._phase.close()
        self.pid = 0

