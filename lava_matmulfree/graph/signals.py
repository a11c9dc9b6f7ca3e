"""Signals that always reach the main thread, and the children a Lava runtime forks (docs/reliability.md).

A Python signal handler runs between two bytecodes of the main thread, wherever it is. Two places swallow
what it raises: Python's own fork hooks (``os.register_at_fork``: logging's ``_releaseLock`` runs in the
parent right after every fork, and an exception there is only printed as "Exception ignored"), and every
other "unraisable" spot (finalizers, ``__del__``). A SIGTERM that lands there used to be lost, and could leave
logging's lock held, so the next log call of Lava's start-up hung. Hence:

- while a fork is in progress (between this module's ``before`` hook, which runs before logging's, and its
  ``after_in_parent`` hook, which runs after logging's) the handlers of SIGINT, SIGTERM, SIGHUP and SIGUSR1
  installed for a guarded run only note the signal; it is delivered again to the main thread once the fork is
  over (:func:`redeliver`, from a helper thread, so the handler runs in ordinary code);
- an exception of a signal (:class:`Terminated`, ``KeyboardInterrupt``, or one with a ``signum`` attribute,
  like the watchdog's) that is swallowed anyway is caught by ``sys.unraisablehook`` and its signal delivered
  again (:func:`redeliver_swallowed`);
- every process forked while a run starts (:func:`guard_forks`) gets a parent-death signal (Linux
  ``prctl(PR_SET_PDEATHSIG, SIGTERM)``), ignores SIGINT (the parent alone handles Ctrl-C) and drops the
  parent's handlers; its pid is recorded, so a teardown can find a child that Lava never registered (one forked
  just before a signal interrupted its start-up: :func:`stop_children`).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging  # noqa: F401  (imported first: its fork hooks then run inside this module's, see above)
import os
import signal
import sys
import threading
import time
from pathlib import Path

from lava_matmulfree.utils.procfs import child_pids  # the runtime and the tests read it here too

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WORKER_DEATH_SIGNAL = signal.SIGTERM  # what a worker receives when the parent dies: terminates it at once
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: the signals whose handlers defer while a guarded fork is in progress
GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
EXIT_SIGNAL_BASE = 128  # the shell's exit status of a process ended by signal N is 128 + N
#: a deferred or swallowed signal is sent again this long after: the fork (a few microseconds) is over by then,
#: and if it is not, the handler defers once more
REDELIVER_S = 0.02
#: a child asked to stop (SIGTERM) that still runs this long after gets SIGKILL
STOP_GRACE_S = 3.0
STOP_POLL_S = 0.02


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


# ------------------------------------------------------------------------------- delivery
_state = {"forking": False, "deferred": [], "guard": None, "terminating": False, "hook_pid": None, "noted": None}


def leave_signals_to_the_main_thread() -> None:
    """Called first in a helper thread: the kernel then delivers a process-wide SIGINT/SIGTERM/SIGHUP/SIGUSR1 to
    the main thread, whose blocking calls it interrupts, rather than to this one."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_BLOCK, GUARDED_SIGNALS)


def redeliver(signums) -> None:
    """Send ``signums`` again to the main thread, from a helper thread, after :data:`REDELIVER_S`."""
    main = threading.main_thread().ident
    pid = os.getpid()

    def send():
        leave_signals_to_the_main_thread()
        time.sleep(REDELIVER_S)
        if os.getpid() != pid:
            return
        for s in signums:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.pthread_kill(main, s)

    threading.Thread(target=send, daemon=True, name="lava-signal-redelivery").start()


def deferring(handler):
    """``handler`` as a signal handler that only notes its signal while a fork is in progress."""
    if not callable(handler) or getattr(handler, "defers", False):
        return handler

    def on_signal(signum, frame):
        if _state["forking"]:
            _state["deferred"].append(signum)
            _state["noted"] = signum
            return None
        _state["noted"] = None
        return handler(signum, frame)

    on_signal.defers = True
    on_signal.wrapped = handler
    return on_signal


def noted_signal(forget: bool = False) -> int | None:
    """A signal noted during a fork whose handler has not run yet: the error it caused meanwhile (a manager
    process it killed, a connection it reset) is that signal's doing, and is reported as it. ``forget``: clear
    it (a command starting anew in this process)."""
    signum = _state["noted"]
    if forget:
        _state["noted"] = None
    return signum


def _before_fork() -> None:
    _state["forking"] = True


def _after_fork_in_parent() -> None:
    _state["forking"] = False
    deferred, _state["deferred"] = _state["deferred"], []
    if deferred:
        redeliver(deferred)


def _signum_of(exc) -> int | None:
    if isinstance(exc, Terminated):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    return getattr(exc, "signum", None) if isinstance(exc, BaseException) else None


def _unraisable(u) -> None:
    signum = _signum_of(u.exc_value)
    if signum is not None and os.getpid() == _state["hook_pid"]:
        if isinstance(u.exc_value, Terminated):
            _state["terminating"] = False  # it never arrived: the handler must raise it again
        redeliver([signum])
        return
    _previous_unraisable(u)


_previous_unraisable = sys.unraisablehook


@contextlib.contextmanager
def redeliver_swallowed():
    """Within the block, a signal's exception swallowed by an unraisable spot is delivered again."""
    global _previous_unraisable
    if sys.unraisablehook is _unraisable or threading.current_thread() is not threading.main_thread():
        yield
        return
    _previous_unraisable, sys.unraisablehook = sys.unraisablehook, _unraisable
    _state["hook_pid"] = os.getpid()
    try:
        yield
    finally:
        sys.unraisablehook = _previous_unraisable


@contextlib.contextmanager
def termination_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (once: a second signal
    while the first one unwinds and the teardown runs is ignored). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        if _state["terminating"]:  # the teardown that follows must not be cut short
            return
        _state["terminating"] = True
        raise Terminated(signum)

    handler = deferring(on_signal)
    previous = {s: signal.signal(s, handler) for s in TERMINATION_SIGNALS}
    _state["terminating"] = False
    try:
        with redeliver_swallowed():
            yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state["terminating"] = False


# ------------------------------------------------------------------------------- the forked children
_libc = None


def _prctl():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc.prctl


def _after_fork_in_child() -> None:
    """Runs in every forked child (``os.register_at_fork``); guards those forked while a run starts."""
    _state["hook_pid"] = None
    parent = _state["guard"]
    if parent is not None:
        _state["guard"] = None  # the child's own forks are not ours to guard
        # still "forking" until the defaults are in place: a SIGTERM now (the watchdog stopping a start-up) is
        # only noted by the inherited handler, not raised inside this hook
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for s in TERMINATION_SIGNALS + (signal.SIGUSR1,):
            signal.signal(s, signal.SIG_DFL)
    _state["forking"] = False
    deferred, _state["deferred"] = _state["deferred"], []  # signals that reached this child during the fork
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        _prctl()(PR_SET_PDEATHSIG, int(WORKER_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(EXIT_SIGNAL_BASE + int(WORKER_DEATH_SIGNAL))
    for s in deferred:
        if s != signal.SIGINT:
            os.kill(os.getpid(), s)  # SIG_DFL now: a SIGTERM sent during the fork ends this child


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def guard_forks(forked: set | None = None):
    """Children forked in this block (by the main thread: a parent-death signal is tied to the thread that
    forked) die with this process and leave SIGINT to it; the handlers of :data:`GUARDED_SIGNALS` defer while a
    fork is in progress. With ``forked``, the pids of the new children are added to it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = child_pids() if forked is not None else set()
    previous = {}
    for s in GUARDED_SIGNALS:
        h = signal.getsignal(s)
        if callable(h):
            previous[s] = signal.signal(s, deferring(h))
    _state["guard"] = os.getpid()
    try:
        with redeliver_swallowed():
            yield
    finally:
        _state["guard"] = None
        for s, h in previous.items():
            signal.signal(s, h)
        if forked is not None:
            forked.update(child_pids() - before)


def running_child(pid: int, parent: int) -> bool:
    """Whether ``pid`` is still a live child of ``parent`` (not a zombie; not a reused pid)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z" and int(fields[1]) == parent


def stop_children(pids, grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM every pid that is still a child of this process, SIGKILL those alive ``grace`` seconds later;
    returns the pids that had to be stopped. Python's resource tracker (a child that must outlive the runtime to
    unlink what is left) is spared."""
    me = os.getpid()
    spare = _resource_tracker_pid()
    alive = [p for p in pids if p != spare and running_child(p, me)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(STOP_POLL_S)
            alive = [p for p in alive if running_child(p, me)]
        if not alive:
            break
    return [p for p in pids if p != spare]


def _resource_tracker_pid() -> int | None:
    rt = sys.modules.get("multiprocessing.resource_tracker")
    return getattr(getattr(rt, "_resource_tracker", None), "_pid", None)


def release_resource_tracker(timeout: float = STOP_GRACE_S) -> None:
    """Let Python's resource tracker finish now rather than after this process (it unlinks what is left and
    exits once every holder of its pipe is gone): no descendant outlives the command line."""
    rt = sys.modules.get("multiprocessing.resource_tracker")
    tracker = getattr(rt, "_resource_tracker", None)
    if tracker is None or getattr(tracker, "_fd", None) is None:
        return
    pid = tracker._pid
    with contextlib.suppress(OSError):
        os.close(tracker._fd)
    tracker._fd = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        time.sleep(STOP_POLL_S)
    tracker._pid = None
