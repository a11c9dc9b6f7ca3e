"""RMS aggregator: the one neuron of a norm that turns the sum of its layer's squares into an inverse RMS."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.neuron import MicrocodedNeurons


class RmsAggregator(MicrocodedNeurons):
    """One neuron per norm (microcode/rms_aggregator.ucode). Its input is the sum of the channel neurons' u_j^2
    through a fan-in connection (weights all one, connections.fan_in); its output goes back to every channel
    neuron through a broadcast connection (connections.broadcast).

    Dynamics, in a step whose input lane carries a token (nothing happens otherwise)::

        sum_sq  = sat24(sq_in)                             the dendrite's sum of squares
        inv_rms = invsqrt(sum_sq) ~ 2**22 / sqrt(sum_sq)   LUT seed + integer Newton steps
        r_out   = inv_rms                                  sent in the same step

    floating_pt (the float reference's folded norms, exact eps): inv_rms = 1 / sqrt(sum_sq / n + eps_const).

    Parameters
    ----------
    consts : dict
        Config-bound constants of the program (``bindings.config_constants``).
    seed : array
        Inverse-sqrt seed table (``.lut seed``).
    seed_shift, seed_base, do_newton1 .. do_newton6 : int
        Program immediates (microcode/bindings.py ``rms_aggregator``).
    n : int
        Channels of the norm (floating_pt: the mean's divisor).
    eps_const : float
        floating_pt only: the folded norm's eps term.
    """

    PROGRAM = bindings.RMS_AGGREGATOR
    PROBES = {"sum_sq": ("s", "sq_in"), "inv_rms": ("r", "sq_in")}

    def __init__(self, *, consts: dict, n: int, eps_const: float = 0.0, name: str | None = None, **values):
        super().__init__(shape=(1,), consts=consts, values=values, n=n, eps_const=eps_const, name=name)
        self.sq_in = self.in_port()
        self.r_out = self.out_port()
