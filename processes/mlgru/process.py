"""MLGRU neurons: the token mixer's stateful neurons; h persists between tokens."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.neuron import MicrocodedNeurons


class Mlgru(MicrocodedNeurons):
    """d neurons (microcode/mlgru.ucode): the recurrent state h of the language model lives here.

    Dynamics of channel j (integers; formats in quantise.py; sent in the same step)::

        on acc_i, acc_f, acc_g (a token):  f = lb + (1 - lb) sigma(acc_f)          sigma by LUT
                                           i = SiLU(acc_i) (1 - f)                  SiLU(v) = v sigma(v)
                                           h = sat24(f h + i)
                                           gz = acc_g SiLU(h) ;  sq_out = (w_gn gz)^2   to the gate-norm aggregator
        on r_in (the aggregator's answer): a_out = sat8(G_o gz' r_in)               graded spikes into o_proj
                                           (gz' the gz of events.AGGREGATOR_ROUND_TRIP steps ago)

    Without a token h keeps its value and nothing is sent.

    Parameters
    ----------
    shape : tuple
        (d,): a neuron per channel of h.
    consts : dict
        Config-bound constants of the program.
    lb : array (d,)
        Forget-gate lower bounds, Q(gate_frac_bits).
    w1_m, g_m : array (d,)
        Gate-norm inner gain and o-spike gain mantissas.
    sigmoid : array
        Sigmoid look-up table.
    h : array (d,), optional
        Initial recurrent state (default 0).
    m_i, k_i, m_f, k_f, m_g, k_g, sig_k_i, sig_k_f, sig_k_h, sig_mid, gf, one, i_k, gz_k, w1_k, t_k, g_k : int
        Program immediates (microcode/bindings.py ``mlgru``).
    layer, float_model :
        floating_pt only: the layer of the folded float model it computes.
    """

    PROGRAM = bindings.MLGRU
    PROBES = {}

    def __init__(self, *, shape, consts: dict, layer: int = 0, float_model=None, name: str | None = None,
                 **values):
        super().__init__(shape=shape, consts=consts, values=values, layer=layer, float_model=float_model, name=name)
        self.acc_i = self.in_port()  # i_proj, f_proj, g_proj sums: one token's three arrive in the same step
        self.acc_f = self.in_port()
        self.acc_g = self.in_port()
        self.r_in = self.in_port()
        self.sq_out = self.out_port()
        self.a_out = self.out_port()
