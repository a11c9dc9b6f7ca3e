"""Residual-stream neurons of one block: hold x, run the two block norms' channel side, add the mixers' outputs."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.neuron import MicrocodedNeurons


class Residual(MicrocodedNeurons):
    """d neurons (microcode/residual.ucode). Each phase runs in a step whose input lane carries a token and sends
    in the same step; in a prefill stream one step may serve several phases of different tokens::

        on x_in:     x = x_in ;  sq_attn = (w_attn x)^2                      to the attn aggregator
        on r_attn:   a_p = sat8(G_p x' r_attn)        p in i, f, g           x' = x of 2 steps ago (round trip)
        on o_in:     r = sat24(x'' + M_o o) ;  sq_mlp = (w_mlp r)^2          x'' = the oldest x waiting for o
        on r_mlp:    a_gate = sat8(G_gate r' r_mlp)                          r' = r of 2 steps ago
        on down_in:  x_out = sat24(r'' + M_down down)                        r'' = the oldest r waiting for down

    x waits for o and r for down in first-in-first-out queues (events.MIXER_QUEUE_DEPTH deep), so a token mixer
    or channel mixer of any latency can be wired in.

    Parameters
    ----------
    shape : tuple
        (d,): a neuron per channel of the residual stream.
    consts : dict
        Config-bound constants of the program.
    w1a_m, gi_m, gf_m, gg_m, w1m_m, gate_m : array (d,)
        Norm inner gains and consumer gain mantissas (attn norm: i, f, g; mlp norm: gate).
    w1a_k, ta_k, gi_k, gf_k, gg_k, o_m, o_k, w1m_k, tm_k, gate_k, dn_m, dn_k : int
        Program immediates (microcode/bindings.py ``residual``).
    layer, float_model :
        floating_pt only: the layer of the folded float model it computes.
    """

    PROGRAM = bindings.RESIDUAL
    PROBES = {"x": ("x", "x_in"), "r": ("r", "o_in")}
    QUEUE_COUNTS = ("xn", "rn")  # x waiting for o, r waiting for down

    def __init__(self, *, shape, consts: dict, layer: int = 0, float_model=None, name: str | None = None,
                 **values):
        super().__init__(shape=shape, consts=consts, values=values, layer=layer, float_model=float_model, name=name)
        self.x_in = self.in_port()
        self.r_attn = self.in_port()  # the attn norm's inverse RMS
        self.o_in = self.in_port()  # the token mixer's o
        self.r_mlp = self.in_port()  # the mlp norm's inverse RMS
        self.down_in = self.in_port()  # the channel mixer's down
        self.sq_attn = self.out_port()
        self.a_i = self.out_port()  # graded spikes into i_proj, f_proj, g_proj (each its own gain)
        self.a_f = self.out_port()
        self.a_g = self.out_port()
        self.sq_mlp = self.out_port()
        self.a_gate = self.out_port()  # graded spikes into gate_proj
        self.x_out = self.out_port()  # the next block's x
