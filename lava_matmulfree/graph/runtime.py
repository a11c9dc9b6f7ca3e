"""Lifecycle of a Lava CPU runtime: start it, watch it, and always stop it (docs/reliability.md).

Lava 0.10 forks one OS process per leaf model plus one per sync domain and a shared-memory manager
(``lava/magma/runtime/message_infrastructure/multiprocessing.py``); every channel is a segment in
/dev/shm that the manager creates and unlinks at shutdown. Left alone, a parent that dies or is
signalled leaves all of them behind. This module guarantees that nothing outlives the run:

- :func:`run_steps` wraps ``proc.run(...)``: a watchdog thread stops a run whose model raised (which would
  otherwise deadlock lava) or that outlived its time limit, and the runtime is torn down on every failure;
  :func:`stop` ends a runtime (graph.GraphRunner keeps one alive across requests between the two);
- :func:`termination_signals` turns SIGTERM and SIGHUP into a :class:`Terminated` exception in the main
  thread, so the same teardown runs for a service manager's stop or a closed terminal as for Ctrl-C;
- every process forked while a run starts (workers, runtime services, the shared-memory manager) gets a
  parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), ignores SIGINT (the parent alone handles
  Ctrl-C, so no worker prints a KeyboardInterrupt traceback) and drops the parent's signal handlers. When
  the parent is killed outright (SIGKILL), the workers die with it and Python's resource tracker, seeing
  its last client gone, unlinks the shared-memory segments.

Call :func:`run_steps` from the main thread (the watchdog interrupts it with SIGUSR1).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import signal
import sys
import threading
import time

from lava_matmulfree.errors import BackendError

WATCHDOG_POLL_S = 0.2  # how often the watchdog looks at the Lava children
FD_LIMIT_WANTED = 65536  # each leaf process holds ~10 descriptors in the parent
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WORKER_DEATH_SIGNAL = signal.SIGTERM  # what a worker receives when the parent dies: terminates it at once
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_SIGNAL_BASE = 128  # the shell's exit status of a process ended by signal N is 128 + N


class LavaRunError(BackendError):
    """A process model raised inside the Lava runtime, or the run timed out."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached the main thread (a BaseException like KeyboardInterrupt: no ``except
    Exception`` swallows it, every ``finally`` runs)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return EXIT_SIGNAL_BASE + self.signum


@contextlib.contextmanager
def termination_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (once: a second
    signal during the teardown is ignored). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        for s in TERMINATION_SIGNALS:  # the teardown that follows must not be cut short
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {s: signal.signal(s, on_signal) for s in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ------------------------------------------------------------------------------- the forked children
_libc = None
_guard = {"parent": None}  # pid of the process whose forks are guarded, while a runtime starts


def _prctl():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc.prctl


def _in_forked_child() -> None:
    """Runs in every child forked while a run is guarded (``os.register_at_fork``)."""
    parent = _guard["parent"]
    if parent is None:
        return
    _guard["parent"] = None  # the child's own forks are not ours to guard
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in TERMINATION_SIGNALS + (signal.SIGUSR1,):
        signal.signal(s, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        _prctl()(PR_SET_PDEATHSIG, int(WORKER_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(EXIT_SIGNAL_BASE + int(WORKER_DEATH_SIGNAL))


os.register_at_fork(after_in_child=_in_forked_child)


@contextlib.contextmanager
def guard_forks():
    """Children forked in this block (by the main thread: a parent-death signal is tied to the thread that
    forked) die with this process and leave SIGINT to it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _guard["parent"] = os.getpid()
    try:
        yield
    finally:
        _guard["parent"] = None


# ------------------------------------------------------------------------------- watching and teardown
def raise_fd_limit(want: int = FD_LIMIT_WANTED) -> None:
    """Each leaf process holds ~10 descriptors in the parent: lift the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def actors(proc) -> list:
    """The OS processes (lava's SystemProcess objects) of the runtime ``proc`` belongs to."""
    rt = getattr(proc, "runtime", None)
    infra = getattr(rt, "_messaging_infrastructure", None)
    return list(getattr(infra, "actors", None) or [])


def kill(procs) -> None:
    for actor in procs:
        try:
            if actor.is_alive():
                actor.terminate()
        except ValueError:  # the process object is already closed
            pass


def teardown(proc, failed: bool) -> None:
    """Stop the runtime and make sure no child survives. After a model error or a signal lava's own stop()
    would wait on dead services (and can take the interpreter down), so the children are terminated and
    the messaging layer (which joins them and unlinks the shared memory) is shut directly."""
    rt = getattr(proc, "runtime", None)
    if rt is None:
        return
    if not failed:
        try:
            proc.stop()
            return
        except Exception:  # fall through to the forced teardown
            pass
    kill(actors(proc))
    try:
        rt._messaging_infrastructure.stop()
    finally:
        rt._watchdog_manager.stop()
        rt._is_started = rt._is_running = False


def child_errors(proc) -> list[str]:
    out = []
    for actor in actors(proc):
        try:
            exc = actor.exception
        except (OSError, EOFError, ValueError):  # its pipe is already closed
            continue
        if exc:
            out.append(f"{type(exc[0]).__name__}: {exc[0]}")
    return out


class WatchdogInterrupt(Exception):
    """Raised in the main thread by the watchdog's signal."""


class Watchdog(threading.Thread):
    """Watches a Lava run from a thread. A model that raises leaves the others waiting on its channels
    forever (lava then blocks joining them); a run past its time limit is presumed deadlocked. Either way
    the watchdog terminates every child and interrupts the main thread with SIGUSR1."""

    def __init__(self, proc, timeout: float | None):
        super().__init__(daemon=True, name="lava-watchdog")
        self.proc, self.timeout = proc, timeout
        self.main = threading.main_thread().ident
        self.done = threading.Event()
        self.reason: str | None = None

    def run(self):
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.done.wait(WATCHDOG_POLL_S):
            procs = actors(self.proc)
            try:
                failed = any(a.exception for a in procs)
            except (OSError, EOFError, ValueError):  # a pipe closed under us: lava is finishing
                failed = False
            if failed or (deadline is not None and time.monotonic() > deadline):
                self.reason = "error" if failed else "timeout"
                kill(procs)
                signal.pthread_kill(self.main, signal.SIGUSR1)
                return


def run_steps(proc, run_cfg, steps: int, timeout: float | None = None, consume=None) -> None:
    """Run a Lava graph ``steps`` more steps (the first call compiles and starts its runtime) under a watchdog.

    ``consume``, when given, is called in this thread while the graph runs (a non-blocking run), to take what
    the graph sends to the host as it comes (e.g. an Extractor's messages); the run is then waited for.

    A model error or a run past ``timeout`` seconds stops every child and becomes :class:`LavaRunError`; the
    runtime is then torn down. Ctrl-C (KeyboardInterrupt), :class:`Terminated` and any other exception tear it
    down too and pass through. A clean run leaves the runtime running: :func:`stop` ends it."""
    from lava.magma.core.run_conditions import RunSteps

    raise_fd_limit()
    in_main = threading.current_thread() is threading.main_thread()

    def on_watchdog(signum, frame):
        raise WatchdogInterrupt()

    previous = signal.signal(signal.SIGUSR1, on_watchdog) if in_main else None
    dog = Watchdog(proc, timeout) if in_main else None
    try:
        if dog is not None:
            dog.start()
        try:
            with guard_forks():
                proc.run(condition=RunSteps(num_steps=steps, blocking=consume is None), run_cfg=run_cfg)
            if consume is not None:
                consume()
                proc.wait()
        except (WatchdogInterrupt, RuntimeError) as e:
            if dog is not None:
                dog.done.set()
            errs = child_errors(proc)
            stop(proc, failed=True)
            if errs:
                raise LavaRunError("a process model failed: " + "; ".join(errs)) from None
            if isinstance(e, WatchdogInterrupt) and dog is not None and dog.reason == "timeout":
                raise LavaRunError(f"the Lava run did not finish within {timeout:.0f} s (a deadlock?); its "
                                   "processes were stopped") from None
            raise LavaRunError(f"the Lava runtime failed: {e}") from None
        except BaseException:
            stop(proc, failed=True)
            raise
    finally:
        if dog is not None:
            dog.done.set()
            dog.join()
        if in_main:
            signal.signal(signal.SIGUSR1, previous)


def stop(proc, failed: bool = False) -> None:
    """Stop a graph's runtime (Lava's own stop after clean runs, else every child terminated); Ctrl-C, SIGTERM
    and SIGHUP wait until it is over."""
    with signals_held():
        teardown(proc, failed)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C, SIGTERM and SIGHUP wait until the teardown is over (it is what they ask for anyway); one
    that came meanwhile is delivered afterwards unless an exception is already on its way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    held = (signal.SIGINT,) + TERMINATION_SIGNALS
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending and sys.exc_info()[1] is None:
            signal.raise_signal(pending[0])
