"""Lava's channel ports without their helper threads, in the Lava workers (docs/graph.md, "Channel ports";
measured in docs/performance.md, "Direct channel ports in Lava's workers").

Lava 0.10's CPU channel (``lava/magma/compiler/channels/pypychannel.py``) is a ring of slots in shared memory and
two semaphores: the sender posts ``req`` per message, the receiver posts ``ack`` per message taken. Each port
starts a helper thread that waits on its semaphore and hands the event to the port's main thread through a queue
and a condition (``CspRecvQueue``, ``CspSelector``'s observers). A message thus wakes three threads: the
receiver's helper, the receiver's main thread, and the sender's helper for the ack. Per Lava step the runtime
service sends every leaf process a command and takes its answer, and every connection carries one message, so
with one process per block (sim-fused: 27 leaves) those wake-ups are most of Lava's own time per step.

:func:`install` (graph/backends.py's ``lava_run_config`` and runtime.py's ``run_steps`` call it) gives the ports a
direct mode, used by every port started in a forked child (Lava's workers and its runtime services; the parent's
own ports are left as Lava makes them) unless :func:`set_direct` turned it off:

- a receive port waits on ``req`` itself in ``recv``/``peek`` (``probe`` takes a posted ``req`` without waiting
  and remembers it); the queue Lava's host I/O asks the size of is a stand-in (:class:`_Pending`);
- a send port takes an ``ack`` only when all its slots are in flight (``probe`` takes a posted one);
- ``CspSelector.select`` over one direct receive port waits on it; over threaded ports only, it is Lava's own;
  otherwise it polls every port (pauses from :data:`POLL_FIRST_S` doubling up to :data:`POLL_MAX_S`).

A model with VarPorts (a token probe's RefPort reads one in the management phase) selects over its command port
and those ports in every phase but the spiking one: its receive ports there keep Lava's threads (:data:`THREADED`),
so that select stays Lava's own and nothing polls. The semaphores are the whole protocol between the two ends, so
a direct end works with a threaded one. Messages, their order, slots and blocking are as in Lava's.
"""
from __future__ import annotations

import os
import time

import numpy as np

#: the pauses of a select that polls (ports of both kinds): the first one, doubled up to the last
POLL_FIRST_S = 50e-6
POLL_MAX_S = 1e-3
THREADED = "lmf_threaded"  # set True on a receive port before it starts: it keeps Lava's helper thread

#: "installed": the methods below replace Lava's; "direct": ports started in a forked child from now on are direct
#: (inherited at the fork); "worker": this process is such a child
_state = {"installed": False, "direct": True, "worker": False}
_lava: dict = {}  # (class name, method name) -> Lava's own method; the classes under their names


def _after_fork_in_child() -> None:
    _state["worker"] = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_direct(direct: bool) -> bool:
    """Whether the workers of runtimes created from now on use direct ports (default True); returns the previous
    setting. A runtime already running keeps the ports it started with."""
    previous, _state["direct"] = _state["direct"], bool(direct)
    return previous


def _starts_direct(port) -> bool:
    """A port this process starts now is direct: a forked child's, allowed, not kept threaded."""
    return _state["worker"] and _state["direct"] and not getattr(port, THREADED, False)


class _Pending:
    """A direct receive port's stand-in for Lava's queue: Lava's Extractor and Injector ask its ``qsize()`` (the
    messages waiting)."""

    def __init__(self, port):
        self.port = port

    def qsize(self) -> int:
        p = self.port
        return p._ready + (p._req.get_value() if p._req is not None else 0)


def _slots(port) -> list:
    """The port's views of its ring of slots in the shared memory (as Lava's ``start``)."""
    n = port._nbytes
    return [np.ndarray(shape=port._shape, dtype=port._dtype, buffer=port._shm.buf[n * i: n * (i + 1)])
            for i in range(port._size)]


# ------------------------------------------------------------------------------- send port
def _send_start(self):
    if not _starts_direct(self):
        return _lava["CspSendPort", "start"](self)
    self._direct = True
    self._array = _slots(self)
    self._free = self._size  # slots not in flight
    self.thread = None


def _send_probe(self):
    if not self._direct:
        return _lava["CspSendPort", "probe"](self)
    if self._free:
        return True
    if self._ack.acquire(False):
        self._free += 1
        return True
    return False


def _send_send(self, data):
    if not self._direct:
        return _lava["CspSendPort", "send"](self, data)
    with self._io_watchdog:
        if data.shape != self._shape:
            raise AssertionError(f"{data.shape=} {self._shape=} Mismatch")
        if isinstance(data, _lava["csr_matrix"]):
            data = _lava["find"](data, explicit_zeros=True)[2]
        if not self._free:
            self._ack.acquire()  # every slot in flight: wait until the receiver takes one
            self._free += 1
        self._free -= 1
        self._array[self._idx][:] = data[:]
        self._idx = (self._idx + 1) % self._size
        self._req.release()


def _send_join(self):
    if not self._direct:
        return _lava["CspSendPort", "join"](self)
    with self._join_watchdog:
        self._done = True
        self._ack = self._req = None


# ------------------------------------------------------------------------------- receive port
def _recv_start(self):
    if not _starts_direct(self):
        return _lava["CspRecvPort", "start"](self)
    self._direct = True
    if self._dtype == 4:  # as Lava's start: LavaCDataType.INT32
        self._dtype = np.int32
    self._array = _slots(self)
    self._ready = 0  # messages whose req this port has taken but not yet received
    self._queue = _Pending(self)
    self.thread = None


def _recv_probe(self):
    if not self._direct:
        return _lava["CspRecvPort", "probe"](self)
    if self._ready:
        return True
    if self._req.acquire(False):
        self._ready += 1
        return True
    return False


def _wait(port) -> None:
    """Wait until a message is there; it is counted in ``_ready``."""
    if not port._ready:
        port._req.acquire()
        port._ready += 1


def _recv_peek(self):
    if not self._direct:
        return _lava["CspRecvPort", "peek"](self)
    _wait(self)
    return self._array[self._idx].copy()


def _recv_recv(self):
    if not self._direct:
        return _lava["CspRecvPort", "recv"](self)
    with self._io_watchdog:
        _wait(self)
        self._ready -= 1
        result = self._array[self._idx].copy()
        self._idx = (self._idx + 1) % self._size
        self._ack.release()
        return result


def _recv_join(self):
    if not self._direct:
        return _lava["CspRecvPort", "join"](self)
    with self._join_watchdog:
        self._done = True
        self._ack = self._req = None


# ------------------------------------------------------------------------------- select, models
def _select(self, *channel_actions):
    if not any(getattr(ch, "_direct", False) for ch, _ in channel_actions):
        return _lava["CspSelector", "select"](self, *channel_actions)
    if len(channel_actions) == 1 and isinstance(channel_actions[0][0], _lava["CspRecvPort"]):
        port, action = channel_actions[0]
        _wait(port)
        return action()
    pause = POLL_FIRST_S
    while True:
        for ch, action in channel_actions:
            if ch.probe():
                return action()
        time.sleep(pause)
        pause = min(2 * pause, POLL_MAX_S)


def _model_start(self):
    """A model with VarPorts selects over its command port and theirs outside the spiking phase: those receive
    ports keep Lava's threads."""
    if self.var_ports:
        setattr(self.service_to_process, THREADED, True)
        for var_port in self.var_ports:
            for port in var_port.csp_ports:
                if isinstance(port, _lava["CspRecvPort"]):
                    setattr(port, THREADED, True)
    return _lava["AbstractPyProcessModel", "start"](self)


_PATCHES = {"CspSendPort": {"start": _send_start, "probe": _send_probe, "send": _send_send, "join": _send_join},
            "CspRecvPort": {"start": _recv_start, "probe": _recv_probe, "peek": _recv_peek, "recv": _recv_recv,
                            "join": _recv_join},
            "CspSelector": {"select": _select},
            "AbstractPyProcessModel": {"start": _model_start}}


def install() -> None:
    """Replace the methods of Lava's ports, selector and Python model base (idempotent); from then on the ports a
    forked child starts are direct while :func:`set_direct` allows it. Called before every runtime the project
    creates (``lava_run_config``, ``run_steps``), so before Lava forks its workers."""
    if _state["installed"]:
        return
    from lava.magma.compiler.channels import pypychannel
    from lava.magma.core.model.py.model import AbstractPyProcessModel
    from lava.utils.sparse import find
    from scipy.sparse import csr_matrix

    classes = {"CspSendPort": pypychannel.CspSendPort, "CspRecvPort": pypychannel.CspRecvPort,
               "CspSelector": pypychannel.CspSelector, "AbstractPyProcessModel": AbstractPyProcessModel}
    _lava.update(classes, csr_matrix=csr_matrix, find=find)
    for cls_name, methods in _PATCHES.items():
        cls = classes[cls_name]
        for name, fn in methods.items():
            _lava[cls_name, name] = cls.__dict__[name]
            setattr(cls, name, fn)
    for cls in (pypychannel.CspSendPort, pypychannel.CspRecvPort):
        cls._direct = False  # a port started by Lava's own start (in the parent, threaded, or not direct)
    _state["installed"] = True
