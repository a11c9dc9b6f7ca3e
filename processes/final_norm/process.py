"""Final-norm neurons: the channel side of the final RMSNorm (folded with lm_head's own norm).

Dynamics of channel j, each result sent one step later:

    on x_in:                 sq_out = (w_norm x)^2                 to the head aggregator
    on r_in (2 steps later): a_out = sat8(G_head x r_in)           int8 spikes into the ternary LM head
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class FinalNorm(AbstractProcess):
    def __init__(self, *, net, name: str | None = None, **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, name=name, **kwargs)
        self.x_in = InPort(shape=(d,))
        self.r_in = InPort(shape=(1,))
        self.sq_out = OutPort(shape=(d,))
        self.a_out = OutPort(shape=(d,))
        self.x = Var(shape=(d,), init=0)  # final residual stream, Q(x_frac)
