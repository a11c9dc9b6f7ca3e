"""GLU neurons: the channel mixer's neurons, SiLU(u) * v by LUT, then the down-norm's channel side.

Dynamics of channel j (integers; formats in quantise.py), each result sent one step later:

    on acc_uv:                 y = sat24(SiLU(M_u acc_u) * (M_v acc_v)) ;  sq_out = y^2
    on r_in (2 steps later):   a_out = sat8(G_down y r_in)            int8 spikes into down_proj
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class Glu(AbstractProcess):
    def __init__(self, *, net, layer: int, float_model=None, name: str | None = None, **kwargs):
        n = net.cfg.intermediate_size
        super().__init__(net=net, layer=layer, float_model=float_model, name=name, **kwargs)
        self.acc_uv = InPort(shape=(2 * n,))
        self.r_in = InPort(shape=(1,))
        self.sq_out = OutPort(shape=(n,))
        self.a_out = OutPort(shape=(n,))
        self.y = Var(shape=(n,), init=0)  # SiLU(u) * v, Q(y_frac)
