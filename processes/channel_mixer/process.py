"""The channel mixer (GLU) of one block as a hierarchical Lava process.

Like the token mixer, its inputs come from the block's residual neurons (the channel side of the mlp
norm): u^2 messages in (``sq_in``), the inverse RMS back (``r_out``), the int8 spikes for gate_proj in;
the down_proj synaptic sums go out (``down_out``).

Dynamics (golden.py, per token): S = sum u^2, r = invsqrt(S); [u, v] = W_gate a; y = SiLU(u) v; down norm;
down = W_down a_d.

Two models, same integers and same timing (``pipeline.CHANNEL_MIXER_HOPS`` steps from spikes in to down
out): ``SubChannelMixerModel`` (5 leaf processes) and ``PyFusedChannelMixerFixed`` (one OS process).
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class ChannelMixer(AbstractProcess):
    def __init__(self, *, net, layer: int, schedule, float_model=None, name: str | None = None, **kwargs):
        d, n = net.cfg.hidden_size, net.cfg.intermediate_size
        super().__init__(net=net, layer=layer, schedule=schedule, float_model=float_model,
                         name=name or f"l{layer}.channel_mixer", **kwargs)
        self.sq_in = InPort(shape=(d,))
        self.r_out = OutPort(shape=(1,))
        self.a_gate_in = InPort(shape=(d,))
        self.down_out = OutPort(shape=(d,))
        self.y = Var(shape=(n,), init=0)  # GLU output SiLU(u) * v, Q(y_frac)
        self.mlp_sum_sq = Var(shape=(1,), init=0)
        self.down_sum_sq = Var(shape=(1,), init=0)
