import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import sigmoid, silu
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes import activity, build, float_model_of
from lava_matmulfree.processes.fused import AbstractFusedMixer, float_bitlinear
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types
from lava_matmulfree.processes.token_mixer.process import TokenMixer


@implements(proc=TokenMixer, protocol=LoihiProtocol)
class SubTokenMixerModel(AbstractSubProcessModel):
    """Dense i, f, g -> MLGRU neurons <-> gate-norm aggregator (fan-in, broadcast) -> Dense o."""

    def __init__(self, proc):
        p = proc.proc_params
        net, l, fm = p["net"], p["layer"], p.get("float_model")
        q, d = net.layers[l], net.cfg.hidden_size
        lw = None if fm is None else fm.layers[l]
        self.mlgru = build.mlgru(net, l, fm)
        self.gate_fan_in, self.gate_aggregator, self.gate_broadcast = build.norm(
            net, d, f"l{l}.gate", 0.0 if lw is None else lw.fold_o.eps_const, floating=fm is not None)
        for k in ("i", "f", "g", "o"):  # lava finds the children among the model's attributes
            setattr(self, f"{k}_proj", build.projection(getattr(q, k).w, f"l{l}.{k}_proj",
                                                        None if lw is None else getattr(lw, f"{k}_proj"),
                                                        net.fp.act_bits))
        for k in ("i", "f", "g"):
            getattr(proc.in_ports, f"a_{k}_in").connect(getattr(self, f"{k}_proj").s_in)
            getattr(self, f"{k}_proj").a_out.connect(getattr(self.mlgru, f"acc_{k}"))
        self.mlgru.sq_out.connect(self.gate_fan_in.s_in)
        self.gate_broadcast.a_out.connect(self.mlgru.r_in)
        self.mlgru.a_out.connect(self.o_proj.s_in)
        self.o_proj.a_out.connect(proc.out_ports.o_out)
        proc.vars.h.alias(self.mlgru.vars.h)
        proc.vars.gate_sum_sq.alias(self.gate_aggregator.vars.sum_sq)
        proc.vars.gate_inv_rms.alias(self.gate_aggregator.vars.inv_rms)
        activity.enable_if_asked(p, self.mlgru, self.gate_fan_in, self.gate_aggregator, self.gate_broadcast,
                                 self.i_proj, self.f_proj, self.g_proj, self.o_proj)


class AbstractFusedTokenMixer(AbstractFusedMixer):
    """The token mixer in one OS process, one step of latency: its boundary is the i, f, g synapses (a connection),
    so a token's o leaves one step after its spikes arrive (processes/fused.py)."""

    IN_PORTS, OUT_PORTS = ("a_i_in", "a_f_in", "a_g_in"), ("o_out",)
    TOKEN_PORT = "a_f_in"  # i, f and g spikes of a token arrive together
    VARS = ("h", "gate_sum_sq", "gate_inv_rms")


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyFusedTokenMixerFixed(AbstractFusedTokenMixer):
    """golden.py's arithmetic; the dendrites saturate as golden's. The counting twin (processes/activity.py)
    counts i, f, g, o, the gate norm and the MLGRU's updates as the golden model does."""

    COUNTS = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = FastGoldenModel(self.net)

    def mix(self, spikes):
        q, g, l = self.q, self.arith, self.l
        self.count_start()
        acc = [g.project(getattr(q, p).w, spikes[f"a_{p}_in"].astype(np.int64)[None], f"l{l}.{p}") for p in "ifg"]
        g.arrive(f"l{l}.mlgru", len(self.h), 1)  # the i, f, g sums arrive together (activity only)
        gz, h = g.mlgru(q, *acc, self.h.astype(np.int64), l)
        self.h[:] = h
        a_o = self.golden_norm(q.gate, gz, "gate", "o")
        o = g.project(q.o.w, a_o, f"l{l}.o")[0]
        self.count_add(*activity.mixer_layout("TokenMixer", l))
        return o


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyFusedTokenMixerFloat(AbstractFusedTokenMixer):
    """The token mixer of the float reference (folded norms, exact eps)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.lw = lw = float_model_of(proc_params, "token mixer").layers[self.l]
        self.bitlinear = {k: float_bitlinear(getattr(lw, f"{k}_proj")) for k in ("i", "f", "g", "o")}

    def mix(self, spikes):
        lw = self.lw
        acc = {k: self.bitlinear[k](spikes[f"a_{k}_in"]) for k in ("i", "f", "g")}
        f = lw.lower_bound + (1.0 - lw.lower_bound) * sigmoid(acc["f"])
        self.h[:] = f * self.h + silu(acc["i"]) * (1.0 - f)
        g = acc["g"]
        gz = g * silu(self.h)
        fold = lw.fold_o
        a_o = self.float_norm(fold.squares(g, gz), gz, fold.gain, fold.eps_const, "gate")
        return self.bitlinear["o"](a_o)
