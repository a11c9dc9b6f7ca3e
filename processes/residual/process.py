"""Residual-stream neurons of one block: hold x, run the two norms' channel side, add the mixers' outputs.

Dynamics of channel j, for the token whose x arrived ``RESIDUAL_*`` steps ago (see pipeline.py), each
result sent one step later:

    on x_in:        x_j = x_in_j ;                 sq_attn_j = u_j^2,  u_j = sat12(w_attn_j x_j)
    on r_attn:      a_p_j = sat8(G_p_j * x_j * r_attn)          for p in i, f, g   (int8 graded spikes)
    on o_in:        r_j = sat24(x_j + M_o o_j) ;   sq_mlp_j = (w_mlp_j r_j)^2
    on r_mlp:       a_gate_j = sat8(G_gate_j * r_j * r_mlp)
    on down_in:     x_out_j = sat24(r_j + M_down down_j)
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class Residual(AbstractProcess):
    def __init__(self, *, net, layer: int, float_model=None, name: str | None = None, **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, layer=layer, float_model=float_model, name=name, **kwargs)
        self.x_in = InPort(shape=(d,))
        self.r_attn = InPort(shape=(1,))
        self.o_in = InPort(shape=(d,))
        self.r_mlp = InPort(shape=(1,))
        self.down_in = InPort(shape=(d,))
        self.sq_attn = OutPort(shape=(d,))
        self.a_i = OutPort(shape=(d,))
        self.a_f = OutPort(shape=(d,))
        self.a_g = OutPort(shape=(d,))
        self.sq_mlp = OutPort(shape=(d,))
        self.a_gate = OutPort(shape=(d,))
        self.x_out = OutPort(shape=(d,))
        self.x = Var(shape=(d,), init=0)  # residual stream entering the block, Q(x_frac)
        self.r = Var(shape=(d,), init=0)  # after the token mixer, Q(x_frac)
