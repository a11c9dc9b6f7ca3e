"""Final-norm neurons: the channel side of the final RMSNorm (folded with lm_head's own norm).

Dynamics of channel j, each result sent one step later:

    on x_in:                 sq_out = (w_norm x)^2                 to the head aggregator
    on r_in (2 steps later): a_out = sat8(G_head x r_in)           int8 spikes into the ternary LM head

floating_pt (the float reference's folded head, exact eps; float_model.DualRMSNorm):

    on x_in:                 sq_out = (w_norm x)^2 + eps_head x^2   (the aggregator adds eps_norm eps_head)
    on r_in (2 steps later): a_out = Q8(w_norm w_head x r_in)       per-token absmax fake quantisation
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class FinalNorm(AbstractProcess):
    def __init__(self, *, net, float_model=None, name: str | None = None, **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, float_model=float_model, name=name, **kwargs)
        self.x_in = InPort(shape=(d,))
        self.r_in = InPort(shape=(1,))
        self.sq_out = OutPort(shape=(d,))
        self.a_out = OutPort(shape=(d,))
        self.x = Var(shape=(d,), init=0)  # final residual stream, Q(x_frac)
