"""RMS aggregator: one neuron per norm that receives x^2 from every neuron of its layer.

Dynamics (per time step; sends the previous step's result first):

    sum_sq  = sat24( sum_j sq_in[j] )                  (the fan-in of all-ones synapses into one dendrite)
    inv_rms = invsqrt(sum_sq) ~ 2**22 / sqrt(sum_sq)   (LUT seed + integer Newton steps)
    r_out   = inv_rms                                  (broadcast back to the channel neurons)

floating_pt (the float reference's folded norms, exact eps): inv_rms = 1 / sqrt(sum_sq / n + eps_const).
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class RmsAggregator(AbstractProcess):
    def __init__(self, *, n: int, net, stage: str, eps_const: float = 0.0, name: str | None = None, **kwargs):
        super().__init__(n=n, net=net, stage=stage, eps_const=eps_const, name=name, **kwargs)
        self.sq_in = InPort(shape=(n,))
        self.r_out = OutPort(shape=(1,))
        self.sum_sq = Var(shape=(1,), init=0)
        self.inv_rms = Var(shape=(1,), init=0)
