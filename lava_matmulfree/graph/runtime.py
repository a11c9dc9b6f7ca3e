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

Call :func:`run_steps` from the main thread (the watchdog interrupts it with SIGUSR1). The signal handling and
the fork guard live in ``signals.py``.

Every fork of this process (Lava's workers) happens with Python's garbage collector frozen (``gc.freeze``, undone
in the parent right after): a worker's collections then never walk, and so never write to, the objects it
inherited, whose pages stay shared with the parent. And Lava's compiler does not import pandas (and pyarrow with
it, 64 MiB) through networkx's input test (:class:`_NoPandasProbe`). Both: docs/graph.md, "Memory". Before a run,
:func:`run_steps` gives the workers channel ports without Lava's helper threads (graph/channels.py; docs/performance.md,
"The Lava graph: what a token costs per step").
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
import multiprocessing.util  # noqa: F401  (its exit handler is registered before this module's, so runs after it)
import os
import resource
import signal
import sys
import threading
import time

from lava_matmulfree.config import MIN_TIMEOUT_S
from lava_matmulfree.errors import BackendError
from lava_matmulfree.graph.signals import (EXIT_SIGNAL_BASE, PR_SET_PDEATHSIG, STOP_GRACE_S,  # noqa: F401  (API)
                                           TERMINATION_SIGNALS, WORKER_DEATH_SIGNAL, Terminated, guard_forks,
                                           leave_signals_to_the_main_thread, running_child, stop_children,
                                           termination_signals)

SHM_DIR = "/dev/shm"  # where POSIX shared memory lives on Linux (Lava's channels)

WATCHDOG_POLL_S = 0.2  # how often the watchdog looks at the Lava children
FD_LIMIT_WANTED = 65536  # each leaf process holds ~10 descriptors in the parent
#: Lava's own stop of a runtime that ran cleanly: past this (a worker that does not answer), every child is
#: stopped instead; a signal during the stop does the same at once
STOP_TIMEOUT_S = 60.0
FORKED_ATTR = "lmf_forked"  # the pids forked while a runtime started, kept on Lava's Runtime object


# ------------------------------------------------------------------------------- forks share the parent's pages
_gc_frozen_here = [False]  # whether the hook below froze the collector for the fork in progress


def _freeze_gc_before_fork() -> None:
    """Before every fork: move every object the collector tracks into its permanent generation. A child's
    collection walks (and writes the collector's header of) every object of the generations it collects, which
    would copy each page of the parent's objects into the child; frozen objects are never walked there."""
    _gc_frozen_here[0] = gc.get_freeze_count() == 0  # a caller's own freeze is left as it is
    if _gc_frozen_here[0]:
        gc.freeze()


def _unfreeze_gc_in_parent() -> None:
    """After the fork, in the parent: its objects go back to the collector, into its oldest generation (the child
    keeps them frozen)."""
    if _gc_frozen_here[0]:
        _gc_frozen_here[0] = False
        gc.unfreeze()


def _forget_freeze_in_child() -> None:
    _gc_frozen_here[0] = False  # the child keeps its inherited objects frozen for its whole life


os.register_at_fork(before=_freeze_gc_before_fork, after_in_parent=_unfreeze_gc_in_parent,
                    after_in_child=_forget_freeze_in_child)


class _NoPandasProbe:
    """An import finder that refuses one import: ``import pandas`` made by networkx's ``to_networkx_graph`` while
    pandas is not imported yet. Lava's compiler builds its process graphs through that function, which imports
    pandas only to ask whether its input is a DataFrame; nothing is one before pandas is imported, so the answer
    is the same, and networkx, as where pandas is missing, skips the test (with an ImportWarning, ignored by
    default). Every other import of pandas, networkx's own once pandas is imported, any other thread's: as
    before. The import would otherwise put pandas and pyarrow (64 MiB) into the process Lava forks its workers
    from."""

    FRAMES = 12  # how far up the importing code is looked for (importlib's own frames lie between)

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        frame = sys._getframe(1)
        for _ in range(self.FRAMES):
            if frame is None:
                break
            if frame.f_code.co_name == "to_networkx_graph" and frame.f_globals.get("__name__") == "networkx.convert":
                raise ModuleNotFoundError("pandas is not imported for networkx's DataFrame test in a Lava compile "
                                          "(lava_matmulfree.graph.runtime)", name=name)
            frame = frame.f_back
        return None


if not any(isinstance(f, _NoPandasProbe) for f in sys.meta_path):
    sys.meta_path.insert(0, _NoPandasProbe())


class LavaRunError(BackendError):
    """A process model raised inside the Lava runtime, or the run timed out."""


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


def _alive(actor) -> bool:
    """Whether a worker still runs, read from /proc: never by collecting its exit status (``is_alive`` calls
    ``os.waitpid``), which its joiner collects. The watchdog and the stop timer call this from their threads
    while the main thread may be joining the same worker, and of two threads waiting on one child the second
    gets ECHILD, which multiprocessing takes for a child still running: Lava's join then raised "Cannot close a
    process while it is still running" (docs/reliability.md)."""
    popen = getattr(actor, "_popen", None)
    if popen is None or popen.returncode is not None:
        return False
    return running_child(popen.pid, os.getpid())


def kill(procs, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every live process of ``procs``; SIGKILL those still alive ``grace`` seconds later (a worker
    blocked in a system call, or one that set SIGTERM aside, stops all the same). ``grace=0``: SIGTERM only."""
    procs = [a for a in procs if _alive(a)]
    for a in procs:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            a.terminate()
    if grace <= 0:
        return
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        time.sleep(0.02)
        procs = [a for a in procs if _alive(a)]
    for a in procs:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            a.kill()


_EXIT_HANDLER_PID = os.getpid()  # the process that registers it: a forked child's exit is not its to clean


def _stop_leftover_workers() -> None:
    """At interpreter exit, before multiprocessing's own exit handler joins every child it started: a Lava worker
    that a teardown cut short by a signal left running would hold that join for ever (Ctrl-C during a prompt on
    sim-fused, about 1 run in 40: the message "stopped by SIGINT", then no exit). Stop such workers first."""
    if os.getpid() == _EXIT_HANDLER_PID:
        kill(multiprocessing.active_children())


atexit.register(_stop_leftover_workers)


def start_resource_tracker() -> None:
    """Start Python's resource tracker, if it is not running, with SIGHUP blocked: it ignores SIGINT and SIGTERM
    itself, but a hangup to the whole process group (a closed terminal or SSH session) killed it, and every
    shared-memory segment the teardown then released came back as a KeyError traceback from the tracker started
    anew. A hangup that comes meanwhile reaches this process once the tracker has started."""
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGHUP,))
    try:
        resource_tracker.ensure_running()  # the tracker inherits the mask, and keeps it across its exec
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class StopInterrupted(Exception):
    """Lava's own stop took too long, or a signal came during it: every child is stopped instead."""

    signum = signal.SIGUSR1


def teardown(proc, failed: bool) -> None:
    """Stop the runtime and make sure no child survives. After a model error or a signal, or a start-up that
    was interrupted halfway, lava's own stop() would wait on dead services (and can take the interpreter down),
    so the children are terminated and the messaging layer (which joins them and unlinks the shared memory) is
    shut directly; then every process forked while the runtime started that is still alive is stopped too."""
    rt = getattr(proc, "runtime", None)
    if rt is None:
        return
    if not failed and getattr(rt, "_is_started", False):
        try:
            with _bounded_stop(proc):
                proc.stop()
            stop_children(getattr(rt, FORKED_ATTR, ()))
            return
        except Exception:  # StopInterrupted or lava's own error: fall through to the forced teardown
            pass
    kill(actors(proc))
    infra = getattr(rt, "_messaging_infrastructure", None)
    segments = channel_segments(infra)  # the manager forgets them as it shuts down
    try:
        if infra is not None:
            infra.stop()
    except Exception:  # a start-up cut short: the manager may not be up; what is left is stopped below
        pass
    finally:
        with contextlib.suppress(Exception):
            if getattr(rt, "_watchdog_manager", None) is not None:
                rt._watchdog_manager.stop()
        rt._is_started = rt._is_running = False
        stop_children(getattr(rt, FORKED_ATTR, ()))
        unlink_segments(segments)


def channel_segments(infra) -> list[str]:
    """Names of the shared-memory segments this runtime's channels were given (Lava's SharedMemoryManager keeps
    their handles)."""
    smm = getattr(infra, "smm", None)
    return [h.name for h in getattr(smm, "_shared_memory_handles", ())]


def unlink_segments(names) -> None:
    """Unlink those of ``names`` still in /dev/shm: a manager stopped mid-shutdown (a signal, a kill during the
    start-up) leaves them behind, and nothing else would ever free them (docs/reliability.md)."""
    for name in names:
        try:
            os.unlink(os.path.join(SHM_DIR, name.lstrip("/")))
        except OSError:
            continue
        forget_segment(name)


def forget_segment(name: str) -> None:
    """Tell Python's resource tracker that a segment it tracks was unlinked here (os.unlink does not), or it would
    report it "leaked" when it exits and fail to unlink it again: one false warning per segment."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if getattr(tracker, "_fd", None) is None:
        return  # no tracker of this process: none to tell (and none to start now)
    with contextlib.suppress(Exception):
        resource_tracker.unregister("/" + name.lstrip("/"), "shared_memory")


@contextlib.contextmanager
def _bounded_stop(proc):
    """Lava's stop() waits for every runtime service without a limit: after :data:`STOP_TIMEOUT_S`, or at once
    when SIGINT, SIGTERM or SIGHUP comes meanwhile, the children are stopped and :class:`StopInterrupted` breaks
    the wait."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    main, done = threading.main_thread().ident, threading.Event()

    def interrupt(signum=None, frame=None):
        kill(actors(proc))
        raise StopInterrupted()

    def late():
        leave_signals_to_the_main_thread()
        if not done.wait(STOP_TIMEOUT_S):
            kill(actors(proc), grace=0)
            signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    _held["escalate"] = interrupt
    timer = threading.Thread(target=late, daemon=True, name="lava-stop-timer")
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()
        _held["escalate"] = None
        signal.signal(signal.SIGUSR1, previous)


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

    signum = signal.SIGUSR1  # delivered again if something swallows it (signals.redeliver_swallowed)


class Watchdog(threading.Thread):
    """Watches a Lava run from a thread. A model that raises leaves the others waiting on its channels
    forever (lava then blocks joining them); a run past its time limit is presumed deadlocked. Either way
    the watchdog terminates every child and interrupts the main thread with SIGUSR1 (again every poll, until
    the main thread has seen it)."""

    def __init__(self, proc, timeout: float | None):
        super().__init__(daemon=True, name="lava-watchdog")
        self.proc, self.timeout = proc, timeout
        self.main = threading.main_thread().ident
        self.done = threading.Event()
        self.reason: str | None = None

    def run(self):
        leave_signals_to_the_main_thread()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.done.wait(WATCHDOG_POLL_S):
            if self.reason is not None:  # not seen yet (e.g. deferred during a fork): once more
                signal.pthread_kill(self.main, signal.SIGUSR1)
                continue
            procs = actors(self.proc)
            try:
                failed = any(a.exception for a in procs)
            except (OSError, EOFError, ValueError):  # a pipe closed under us: lava is finishing
                failed = False
            if failed or (deadline is not None and time.monotonic() > deadline):
                self.reason = "error" if failed else "timeout"
                kill(procs, grace=0)
                signal.pthread_kill(self.main, signal.SIGUSR1)


def check_timeout(timeout: float | None) -> None:
    """A run's time limit: None (no limit) or at least :data:`config.MIN_TIMEOUT_S`."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= MIN_TIMEOUT_S:
        raise ValueError(f"timeout {timeout!r} s: a Lava run's time limit must be at least {MIN_TIMEOUT_S:g} s "
                         "(its start-up alone takes about that long), or None")


def run_steps(proc, run_cfg, steps: int, timeout: float | None = None, consume=None) -> None:
    """Run a Lava graph ``steps`` more steps (the first call compiles and starts its runtime) under a watchdog.

    ``consume``, when given, is called in this thread while the graph runs (a non-blocking run), to take what
    the graph sends to the host as it comes (e.g. an Extractor's messages); the run is then waited for.

    A model error or a run past ``timeout`` seconds (at least :data:`config.MIN_TIMEOUT_S`) stops every child and
    becomes :class:`LavaRunError`; the runtime is then torn down. Ctrl-C (KeyboardInterrupt), :class:`Terminated`
    and any other exception tear it down too and pass through, also during the runtime's start-up. A clean run
    leaves the runtime running: :func:`stop` ends it."""
    from lava.magma.core.run_conditions import RunSteps

    from lava_matmulfree.graph import channels

    check_timeout(timeout)
    channels.install()  # the workers' channel ports without Lava's helper threads (graph/channels.py)
    raise_fd_limit()
    in_main = threading.current_thread() is threading.main_thread()

    def on_watchdog(signum, frame):
        if dog is not None and dog.reason is not None and not dog.done.is_set():
            raise WatchdogInterrupt()

    dog = Watchdog(proc, timeout) if in_main else None
    previous = signal.signal(signal.SIGUSR1, on_watchdog) if in_main else None
    starting = getattr(proc, "runtime", None) is None
    if starting:  # before Lava's shared memory registers with it
        start_resource_tracker()
    forked: set = set()
    try:
        if dog is not None:
            dog.start()
        try:
            try:
                with guard_forks(forked if starting else None):
                    proc.run(condition=RunSteps(num_steps=steps, blocking=consume is None), run_cfg=run_cfg)
            finally:
                if starting and getattr(proc, "runtime", None) is not None:
                    setattr(proc.runtime, FORKED_ATTR, forked)
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
                raise LavaRunError(f"the Lava run did not finish within {timeout:g} s (timeout_s; --timeout on the "
                                   "command line; a deadlock, or a run too large for it); its processes were "
                                   "stopped") from None
            raise LavaRunError(f"the Lava runtime failed: {e}") from None
        except BaseException:
            if dog is not None:
                dog.done.set()
            if starting and getattr(proc, "runtime", None) is None:
                stop_children(forked)  # interrupted before lava had a runtime to stop
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
    and SIGHUP wait until it is over, or, during Lava's own stop, turn it into the forced one at once."""
    with signals_held():
        teardown(proc, failed)


_held = {"escalate": None}  # set while Lava's own stop runs: a held signal cuts it short


@contextlib.contextmanager
def signals_held():
    """Ctrl-C, SIGTERM and SIGHUP wait until the teardown is over (it is what they ask for anyway); one
    that came meanwhile is delivered afterwards unless an exception is already on its way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def hold(signum, frame):
        pending.append(signum)
        escalate = _held["escalate"]
        if escalate is not None:
            _held["escalate"] = None
            escalate()

    held = (signal.SIGINT,) + TERMINATION_SIGNALS
    previous = {s: signal.signal(s, hold) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending and sys.exc_info()[1] is None:
            signal.raise_signal(pending[0])
