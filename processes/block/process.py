"""One HGRN-Bit block (token mixer + channel mixer) as a hierarchical Lava process."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree.processes.connections import CheckedInPort

#: Probe points of a block: name -> what it holds.
BLOCK_VARS = {"x": "residual stream entering the block, Q(x_frac)",
              "r": "residual stream after the token mixer, Q(x_frac)",
              "h": "MLGRU hidden state, Q(h_frac)",
              "y": "GLU output SiLU(u) v, Q(y_frac)",
              "attn_sum_sq": "attn-norm aggregator's sum of squares",
              "gate_sum_sq": "gate-norm aggregator's sum of squares",
              "mlp_sum_sq": "mlp-norm aggregator's sum of squares",
              "down_sum_sq": "down-norm aggregator's sum of squares",
              "attn_inv_rms": "attn-norm aggregator's inverse RMS (Q22)",
              "gate_inv_rms": "gate-norm aggregator's inverse RMS (Q22)",
              "mlp_inv_rms": "mlp-norm aggregator's inverse RMS (Q22)",
              "down_inv_rms": "down-norm aggregator's inverse RMS (Q22)"}


class MMFreeBlock(AbstractProcess):
    """x in, x out (d channels and the token lane); a neuron-to-neuron link at both ends (no delay).

    Dynamics (golden.py, per token)::

        r = x + o_proj(MLGRU(attn_norm(x)))          h_t = f_t h_{t-1} + i_t persists between tokens
        x_out = r + down_proj(GLU(mlp_norm(r)))

    Models: ``SubBlockModel`` (the chip's mapping: residual neurons; attn and mlp norms as fan-in connection,
    aggregator, broadcast connection; a ``TokenMixer`` and a ``ChannelMixer``, hierarchical in turn: 22 leaf
    processes and 12 steps per token when every level is decomposed) and ``PyFusedBlockFixed`` /
    ``PyFusedBlockFloat`` (the whole block in one OS process, in the step x arrives).

    Parameters
    ----------
    net : QuantisedNetwork
        The compiled network (the decomposition builds its leaves from this layer's weights and bindings).
    layer : int
    float_model : FloatModel, optional
        The folded float model (floating_pt models).
    """

    def __init__(self, *, net, layer: int, float_model=None, name: str | None = None, **kwargs):
        d, n = net.cfg.hidden_size, net.cfg.intermediate_size
        super().__init__(net=net, layer=layer, float_model=float_model, name=name or f"block{layer}", **kwargs)
        self.x_in = CheckedInPort(shape=(d + 1,))  # warns of a Lava Dense whose weights Lava truncates
        self.x_out = OutPort(shape=(d + 1,))
        self.x = Var(shape=(d,), init=0)
        self.r = Var(shape=(d,), init=0)
        self.h = Var(shape=(d,), init=0)
        self.y = Var(shape=(n,), init=0)
        for stage in ("attn", "gate", "mlp", "down"):
            setattr(self, f"{stage}_sum_sq", Var(shape=(1,), init=0))
            setattr(self, f"{stage}_inv_rms", Var(shape=(1,), init=0))
