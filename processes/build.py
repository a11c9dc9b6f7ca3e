"""The model's leaf processes made from a compiled network (what the graph builder and the sub-process models
use; a user wiring by hand can call them too, or pass the values themselves)."""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes import connections


def residual(net, layer: int, float_model=None):
    from lava_matmulfree.processes.residual.process import Residual

    return Residual(shape=(net.cfg.hidden_size,), layer=layer, float_model=float_model, name=f"l{layer}.residual",
                    **bindings.residual(net, layer).process_kwargs())


def mlgru(net, layer: int, float_model=None):
    from lava_matmulfree.processes.mlgru.process import Mlgru

    return Mlgru(shape=(net.cfg.hidden_size,), layer=layer, float_model=float_model, name=f"l{layer}.mlgru",
                 **bindings.mlgru(net, layer).process_kwargs())


def glu(net, layer: int, float_model=None):
    from lava_matmulfree.processes.glu.process import Glu

    return Glu(shape=(net.cfg.intermediate_size,), layer=layer, float_model=float_model, name=f"l{layer}.glu",
               **bindings.glu(net, layer).process_kwargs())


def final_norm(net, float_model=None):
    from lava_matmulfree.processes.final_norm.process import FinalNorm

    return FinalNorm(shape=(net.cfg.hidden_size,), float_model=float_model, name="final_norm",
                     **bindings.final_norm(net).process_kwargs())


def norm(net, n: int, stage: str, eps_const: float = 0.0, floating: bool = False) -> tuple:
    """One norm's aggregator side: (fan-in connection, aggregator neuron, broadcast connection), unwired but for
    fan-in -> aggregator -> broadcast."""
    from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator

    agg = RmsAggregator(n=n, eps_const=eps_const, name=f"{stage}_aggregator",
                        **bindings.rms_aggregator(net).process_kwargs())
    fan = connections.fan_in(n, floating=floating, name=f"{stage}_fan_in")
    bc = connections.broadcast(n, floating=floating, name=f"{stage}_broadcast")
    fan.a_out.connect(agg.sq_in)
    agg.r_out.connect(bc.s_in)
    return fan, agg, bc


def projection(w, name: str, float_proj=None, act_bits: int = connections.SPIKE_MESSAGE_BITS):
    """A ternary projection as Lava's Dense (floating_pt: the float BitLinear's 1/s applied), its graded
    messages ``act_bits`` wide: pass the network's ``net.fp.act_bits`` (the activity counters count each spike's
    bits as the Dense's num_message_bits)."""
    return connections.ternary_connection(w, scale=None if float_proj is None else 1.0 / float_proj.s,
                                          message_bits=act_bits, name=name)
