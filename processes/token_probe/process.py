"""Probes that record once per token, not every step (docs/graph.md, "Streaming, sessions and probes")."""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class PortProbe(AbstractProcess):
    """Records the messages of an OutPort that carry a token (their lane set), in the order they come: row k is
    the k-th token's message (without its lane).

    Dynamics, each step::

        if a_in carries a token:  records[count] = a_in[:-1] ;  count += 1

    Parameters
    ----------
    port : OutPort
        The port to record (n channels and the token lane); connected here.
    capacity : int
        Most tokens to record.
    """

    def __init__(self, *, port, capacity: int, name: str | None = None):
        n = int(np.prod(port.shape)) - 1
        super().__init__(capacity=capacity, name=name)
        self.a_in = InPort(shape=port.shape)
        self.records = Var(shape=(capacity, n), init=0)
        self.count = Var(shape=(1,), init=0)
        port.connect(self.a_in)


class VarProbe(AbstractProcess):
    """Reads a Var once per token: ``latency`` steps after the token passes a reference port (the lane of the
    message on ``lane_in``), the structural latency from that port to the Var's process (graph.BLOCK_TIMING).

    Dynamics, each step::

        if lane_in carries a token:  due.append(step + latency)
        after the step, if due[0] == step:  records[count] = var ;  count += 1 ;  due.pop(0)

    Parameters
    ----------
    var : Var
        The Var to read (through a RefPort; aliases of hierarchical processes resolve to their leaf).
    lane_port : OutPort
        A port whose messages mark the tokens (e.g. the embedding source's x_out).
    latency : int
        Steps from a token on ``lane_port`` to the Var holding that token's value.
    capacity : int
        Most tokens to record.
    """

    def __init__(self, *, var, lane_port, latency: int, capacity: int, name: str | None = None):
        super().__init__(latency=int(latency), capacity=capacity, name=name)
        self.lane_in = InPort(shape=lane_port.shape)
        self.var_ref = RefPort(shape=var.shape)
        self.records = Var(shape=(capacity,) + tuple(var.shape), init=0)
        self.count = Var(shape=(1,), init=0)
        lane_port.connect(self.lane_in)
        self.var_ref.connect_var(var)
