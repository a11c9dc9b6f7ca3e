"""Final-norm neurons: the channel side of the model's last RMSNorm, feeding the ternary LM head."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.neuron import MicrocodedNeurons


class FinalNorm(MicrocodedNeurons):
    """d neurons (microcode/final_norm.ucode), wired to the head aggregator through a fan-in and a broadcast
    connection.

    Dynamics of channel j (each line in a step whose input lane carries a token; sent in the same step)::

        on x_in:  x_j = x_in_j ;  sq_out_j = (w1_j x_j)^2                 to the head aggregator
        on r_in:  a_out_j = sat8(G_j x'_j r_in_j)                          graded spikes into the LM head
                  (x' the x of events.AGGREGATOR_ROUND_TRIP steps ago)

    Parameters
    ----------
    shape : tuple
        (d,): a neuron per channel of the last block's output.
    consts : dict
        Config-bound constants of the program.
    w1_m, g_m : array (d,)
        Inner gain and LM-head gain mantissas; w1_k, t_k, g_k: their shifts (microcode/bindings.py
        ``final_norm``).
    float_model :
        floating_pt only: the folded float model whose head norm it computes.
    """

    PROGRAM = bindings.FINAL_NORM
    PROBES = {"x": ("x", "x_in")}

    def __init__(self, *, shape, consts: dict, float_model=None, name: str | None = None, **values):
        super().__init__(shape=shape, consts=consts, values=values, float_model=float_model, name=name)
        self.x_in = self.in_port()
        self.r_in = self.in_port()
        self.sq_out = self.out_port()
        self.a_out = self.out_port()
