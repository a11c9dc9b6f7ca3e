"""GLU neurons: the channel mixer's y = SiLU(u) * v and the channel side of the down norm."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.neuron import MicrocodedNeurons


class Glu(MicrocodedNeurons):
    """I neurons (microcode/glu.ucode); u and v are the two halves of gate_proj, on two dendrites.

    Dynamics of channel j (sent in the same step)::

        on u_in, v_in (a token):  y = SiLU(u) v               SiLU by the sigmoid LUT
                                  sq_out = (w1 y)^2           to the down-norm aggregator
        on r_in (the answer):     a_out = sat8(G y' r_in)     graded spikes into down_proj
                                  (y' the y of events.AGGREGATOR_ROUND_TRIP steps ago)

    Parameters
    ----------
    shape : tuple
        (I,): a neuron per intermediate channel.
    consts : dict
        Config-bound constants of the program.
    w1_m, g_m : array (I,)
        Down-norm inner gain and down-spike gain mantissas.
    sigmoid : array
        Sigmoid look-up table.
    u_m, u_k, v_m, v_k, sig_k_u, sig_mid, gf, y_k, w1_k, t_k, g_k : int
        Program immediates (microcode/bindings.py ``glu``).
    layer, float_model :
        floating_pt only: the layer of the folded float model it computes.
    """

    PROGRAM = bindings.GLU
    PROBES = {"y": ("y", "u_in")}

    def __init__(self, *, shape, consts: dict, layer: int = 0, float_model=None, name: str | None = None,
                 **values):
        super().__init__(shape=shape, consts=consts, values=values, layer=layer, float_model=float_model, name=name)
        self.u_in = self.in_port()
        self.v_in = self.in_port()
        self.r_in = self.in_port()
        self.sq_out = self.out_port()
        self.a_out = self.out_port()
