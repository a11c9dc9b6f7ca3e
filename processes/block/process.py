"""One HGRN-Bit block (token mixer + channel mixer) as a hierarchical Lava process.

Two models compute the same integers:

* ``SubBlockModel`` (a SubProcessModel) decomposes the block as it maps onto the chip: residual neurons, a
  ``TokenMixer`` and a ``ChannelMixer`` (hierarchical in turn: two RMS aggregators, ternary synapses and the
  MLGRU or GLU neurons each), 13 leaf processes and ``pipeline.BLOCK_HOPS`` steps per token;
* ``PyFusedBlockFixed`` computes the whole layer in one OS process in one step (fast simulation).

Dynamics (golden.py, per token): x -> r = x + o_proj(MLGRU(norm(x))) -> x_out = r + down_proj(GLU(norm(r))),
with h_t = f_t h_{t-1} + i_t persisting between tokens. The Vars below are the probe points; in the
decomposed model they are aliases of the leaf processes' Vars.
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree import pipeline as pl

# probe points: name -> steps after the block receives a token at which the Var holds that token's value
DECOMPOSED_OFFSETS = {"x": 0, "r": pl.RESIDUAL_O, "h": pl.MLGRU_IN, "y": pl.GLU_IN,
                      "attn_sum_sq": 1, "gate_sum_sq": pl.MLGRU_IN + 1,
                      "mlp_sum_sq": pl.RESIDUAL_O + 1, "down_sum_sq": pl.GLU_IN + 1}
FUSED_OFFSETS = {k: 0 for k in DECOMPOSED_OFFSETS}


class MMFreeBlock(AbstractProcess):
    def __init__(self, *, net, layer: int, schedule, float_model=None, name: str | None = None, **kwargs):
        d, n = net.cfg.hidden_size, net.cfg.intermediate_size
        super().__init__(net=net, layer=layer, schedule=schedule, float_model=float_model,
                         name=name or f"block{layer}", **kwargs)
        self.x_in = InPort(shape=(d,))
        self.x_out = OutPort(shape=(d,))
        self.x = Var(shape=(d,), init=0)  # residual stream entering the block, Q(x_frac)
        self.r = Var(shape=(d,), init=0)  # residual stream after the token mixer, Q(x_frac)
        self.h = Var(shape=(d,), init=0)  # MLGRU hidden state, Q(h_frac)
        self.y = Var(shape=(n,), init=0)  # GLU output SiLU(u) * v, Q(y_frac)
        for stage in ("attn", "gate", "mlp", "down"):  # the aggregators' sums of squares
            setattr(self, f"{stage}_sum_sq", Var(shape=(1,), init=0))

    @property
    def fused(self) -> bool:
        return self.proc_params["schedule"].block_hops == pl.FUSED_BLOCK_HOPS

    def probe_offset(self, var: str) -> int:
        """Steps after the source computes a token at which ``var`` holds that token's value."""
        sched, l = self.proc_params["schedule"], self.proc_params["layer"]
        offs = FUSED_OFFSETS if self.fused else DECOMPOSED_OFFSETS
        return sched.block_offset(l) + offs[var]
