"""MLGRU neurons: the token mixer's stateful neurons; h persists between tokens.

Dynamics of channel j for a token (integers; formats in quantise.py), each result sent one step later:

    on acc_i, acc_f, acc_g:   f = lb + (1 - lb) sigma(acc_f)          sigma by LUT
                              i = SiLU(acc_i) (1 - f)                  SiLU(v) = v sigma(v)
                              h = sat24(f h + i)                       only when a token is present
                              gz = acc_g SiLU(h) ;  sq_out = (w_gn gz)^2   to the gate-norm aggregator
    on r_in (2 steps later):  a_out = sat8(G_o gz r_in)                int8 spikes into o_proj
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class Mlgru(AbstractProcess):
    def __init__(self, *, net, layer: int, schedule, offset: int, float_model=None, name: str | None = None,
                 **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, layer=layer, schedule=schedule, offset=offset, float_model=float_model,
                         name=name, **kwargs)
        self.acc_i = InPort(shape=(d,))
        self.acc_f = InPort(shape=(d,))
        self.acc_g = InPort(shape=(d,))
        self.r_in = InPort(shape=(1,))
        self.sq_out = OutPort(shape=(d,))
        self.a_out = OutPort(shape=(d,))
        self.h = Var(shape=(d,), init=0)  # the recurrent state, Q(h_frac) of its layer
