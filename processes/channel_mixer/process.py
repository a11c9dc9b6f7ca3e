"""The channel mixer (GLU) of one block as a hierarchical Lava process."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class ChannelMixer(AbstractProcess):
    """Graded spikes of the normalised residual stream in, the down_proj synaptic sums out (token lane on both).

    Dynamics (golden.py, per token)::

        [u, v] = W_gate a ;  y = SiLU(u) v ;  down norm (aggregator round trip) ;  down = W_down a_down

    Models: ``SubChannelMixerModel`` (Dense gate_u, gate_v, down; GLU neurons; the down-norm fan-in, aggregator
    and broadcast: 7 leaf processes, 4 steps) and the fused models (one OS process, 1 step).

    Parameters
    ----------
    net : QuantisedNetwork
    layer : int
    float_model : FloatModel, optional
    """

    def __init__(self, *, net, layer: int, float_model=None, name: str | None = None, **kwargs):
        d, n = net.cfg.hidden_size, net.cfg.intermediate_size
        super().__init__(net=net, layer=layer, float_model=float_model, name=name or f"l{layer}.channel_mixer",
                         **kwargs)
        self.a_gate_in = InPort(shape=(d + 1,))
        self.down_out = OutPort(shape=(d + 1,))
        self.y = Var(shape=(n,), init=0)  # GLU output SiLU(u) * v, Q(y_frac)
        self.down_sum_sq = Var(shape=(1,), init=0)
        self.down_inv_rms = Var(shape=(1,), init=0)
