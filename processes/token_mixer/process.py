"""The token mixer (MLGRU) of one block as a hierarchical Lava process."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class TokenMixer(AbstractProcess):
    """Graded spikes of the normalised residual stream in (one port per projection, since each BitLinear folds its
    own norm gain), the o_proj synaptic sums out. Every port carries the token lane (docs/graph.md).

    Dynamics (golden.py, per token)::

        acc_p = W_p a_p  (p in i, f, g) ;  f = lb + (1-lb) sigma(acc_f) ;  i = SiLU(acc_i)(1-f)
        h = f h + i      (persists between tokens)
        gz = acc_g SiLU(h) ;  gate norm (aggregator round trip) ;  o = W_o a_o

    Models: ``SubTokenMixerModel`` (the chip's mapping: Dense i, f, g, o; MLGRU neurons; the gate-norm fan-in,
    aggregator and broadcast: 8 leaf processes, 4 steps from spikes in to o out) and ``PyFusedTokenMixerFixed`` /
    ``PyFusedTokenMixerFloat`` (one OS process, 1 step, as a connection: its boundary is the i/f/g synapses).

    Parameters
    ----------
    net : QuantisedNetwork
        The compiled network the builder takes this layer's weights and bindings from.
    layer : int
    float_model : FloatModel, optional
        The folded float model (floating_pt models).
    """

    def __init__(self, *, net, layer: int, float_model=None, name: str | None = None, **kwargs):
        d = net.cfg.hidden_size
        super().__init__(net=net, layer=layer, float_model=float_model, name=name or f"l{layer}.token_mixer",
                         **kwargs)
        self.a_i_in = InPort(shape=(d + 1,))
        self.a_f_in = InPort(shape=(d + 1,))
        self.a_g_in = InPort(shape=(d + 1,))
        self.o_out = OutPort(shape=(d + 1,))
        self.h = Var(shape=(d,), init=0)  # MLGRU hidden state, Q(h_frac)
        self.gate_sum_sq = Var(shape=(1,), init=0)
        self.gate_inv_rms = Var(shape=(1,), init=0)
