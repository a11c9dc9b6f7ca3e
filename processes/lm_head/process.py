"""The model's head (final RMSNorm and ternary LM head) as a hierarchical Lava process."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree.processes.connections import CheckedInPort

#: Probe points of the head: name -> what it holds.
PROBE_VARS = {"x": "residual stream leaving the last block, Q(x_frac)",
              "sum_sq": "head aggregator's sum of squares",
              "inv_rms": "head aggregator's inverse RMS (Q22)"}


class LmHead(AbstractProcess):
    """The last block's x in (a neuron-to-neuron link, d channels and the token lane); the LM head's integer logits
    out (the LM head connection: V channels and the lane, one step later); the final norm's graded spikes out.

    Dynamics (golden.py, per token)::

        u_j = sat_u(w1_j x_j) ;  sum_sq = sat24(sum_j u_j^2) ;  inv_rms = invsqrt(sum_sq)   the head norm's round trip
        a_j = sat_act(G_j sat24(x_j inv_rms >> t_k))                                           spikes_out
        logits = W_lm a                                                                       logits_out (exact sums)

    Models (docs/graph.md, "Timing"): ``SubLmHeadModel`` (the chip's mapping: FinalNorm neurons, the head norm's
    fan-in Dense, RmsAggregator and broadcast Dense, the LM head Dense: 5 leaf processes, a token's logits leave 3
    steps after its x arrives) and the fused models ``PyLmHeadFixed`` / ``PyLmHeadFloat`` (one OS process; its
    output end is the LM head connection, so it sends the previous step's logits, then receives: 1 step). The fused
    fixed-point model holds the LM head only packed (2 bits per weight, the network's matrix).

    Parameters
    ----------
    net : QuantisedNetwork
        The compiled network (the head norm ``net.head`` and the LM head ``net.lm_head``).
    float_model : FloatModel, optional
        The folded float model (floating_pt models: its ``fold_head`` and ``lm_head``).
    """

    def __init__(self, *, net, float_model=None, name: str | None = None, **kwargs):
        d, V = net.cfg.hidden_size, net.cfg.vocab_size
        super().__init__(net=net, float_model=float_model, name=name or "head", **kwargs)
        self.x_in = CheckedInPort(shape=(d + 1,))  # warns of a Lava Dense whose weights Lava truncates
        self.logits_out = OutPort(shape=(V + 1,))
        self.spikes_out = OutPort(shape=(d + 1,))
        self.x = Var(shape=(d,), init=0)
        self.sum_sq = Var(shape=(1,), init=0)
        self.inv_rms = Var(shape=(1,), init=0)
