"""The token mixer (MLGRU) of one block as a hierarchical Lava process.

Its channel inputs come from the block's residual neurons, which hold x and run the channel side of the
attn norm: u^2 messages in (``sq_in``), the inverse RMS back (``r_out``), then the int8 spikes for the
i, f, g projections in; the o_proj synaptic sums go out (``o_out``).

Dynamics (golden.py, per token): S = sum u^2, r = invsqrt(S); acc_p = W_p a_p; f = lb + (1-lb) sigma(acc_f);
i = SiLU(acc_i)(1-f); h = f h + i (persists between tokens); gz = acc_g SiLU(h); gate norm; o = W_o a_o.

Two models, same integers and same timing (``pipeline.TOKEN_MIXER_HOPS`` steps from spikes in to o out):
``SubTokenMixerModel`` (7 leaf processes: two aggregators, four ternary synapse matrices, MLGRU neurons) and
``PyFusedTokenMixerFixed`` (one OS process).
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class TokenMixer(AbstractProcess):
    def __init__(self, *, net, layer: int, schedule, float_model=None, name: str | None = None, **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, layer=layer, schedule=schedule, float_model=float_model,
                         name=name or f"l{layer}.token_mixer", **kwargs)
        self.sq_in = InPort(shape=(d,))
        self.r_out = OutPort(shape=(1,))
        self.a_i_in = InPort(shape=(d,))
        self.a_f_in = InPort(shape=(d,))
        self.a_g_in = InPort(shape=(d,))
        self.o_out = OutPort(shape=(d,))
        self.h = Var(shape=(d,), init=0)  # MLGRU hidden state, Q(h_frac)
        self.attn_sum_sq = Var(shape=(1,), init=0)
        self.gate_sum_sq = Var(shape=(1,), init=0)
