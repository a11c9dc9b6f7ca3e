"""All blocks of the model in one process: the fastest simulation (``sim-stack`` backend)."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree.processes.connections import CheckedInPort

STACK_VARS = ("x", "r", "h")  # per-layer probe points held by the stack


class MMFreeStack(AbstractProcess):
    """Every layer of the model in one process and one step (Lava's CPU runtime pays a per-step protocol cost
    for every leaf process; docs/graph.md), on the token that arrives::

        x_{l+1} = block_l(x_l)   for l = 0 .. L-1     (golden.py layer; h_l persists between tokens)

    Vars hold every layer's probe points as rows [L, n]. There is no decomposed model: the chip's mapping is the
    per-block ``MMFreeBlock``.

    Parameters
    ----------
    net : QuantisedNetwork
    """

    def __init__(self, *, net, name: str | None = None, **kwargs):
        L, d = net.cfg.num_layers, net.cfg.hidden_size
        super().__init__(net=net, name=name or "layer_stack", **kwargs)
        self.x_in = CheckedInPort(shape=(d + 1,))  # warns of a Lava Dense whose weights Lava truncates
        self.x_out = OutPort(shape=(d + 1,))
        self.x = Var(shape=(L, d), init=0)  # residual stream entering each block, Q(x_frac)
        self.r = Var(shape=(L, d), init=0)  # after each token mixer, Q(x_frac)
        self.h = Var(shape=(L, d), init=0)  # every layer's MLGRU state, Q(h_frac) of its layer
