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

import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import ModelError
from .isolate_child import HEADER, Phase, child_main, send, where

__all__ = ["Limits", "Worker", "WorkerError", "WorkerDied", "DEFAULT_SECONDS", "can_isolate"]

#: the default wall-time limit of one check of one model file, in seconds
DEFAULT_SECONDS = 600.0
_TAIL_BYTES = 4096  # how much of the model's output the parent keeps


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
        self._phase = Phase()
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
            child_main(*self._setup, self.source, self.limits, self._phase,
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
        try:
            return self._reply()
        except WorkerError as exc:  # the worker has stopped: later calls give the same reason
            self.dead = self.dead or str(exc)
            raise

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
            send(self._req, (fn, args))
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
        if len(self._buf) < HEADER.size:
            return None
        n = HEADER.unpack_from(self._buf)[0]
        if len(self._buf) < HEADER.size + n:
            return None
        body = bytes(self._buf[HEADER.size:HEADER.size + n])
        del self._buf[:HEADER.size + n]
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
        grace = time.monotonic() + 2.0  # the pipe closed: the process is on its way out
        while not self._exited() and time.monotonic() < grace:
            time.sleep(0.01)
        status = self._status
        if status is None:  # the model closed gradlab's pipe (os.closerange?) and lives on
            return f"{self.source}: the worker's pipe was closed {where(phase)}"
        last = self._last_output()
        if os.WIFSIGNALED(status):
            n = os.WTERMSIG(status)
            try:
                name = signal.Signals(n).name
            except ValueError:
                name = "unknown signal"
            what = ("kill -9 or the out-of-memory killer" if n == signal.SIGKILL
                    else (signal.strsignal(n) or "").lower())
            return f"{self.source}: killed by signal {n} ({name}: {what}) {where(phase)}{last}"
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        return f"{self.source}: os._exit({code}) {where(phase)}{last}"

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

