import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.model.float_model import act_quant_q8, sigmoid, silu
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes import build, float_model_of
from lava_matmulfree.processes.token_mixer.process import TokenMixer

I32 = np.int32


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
                                                        None if lw is None else getattr(lw, f"{k}_proj")))
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


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedTokenMixerFixed(PyLoihiProcessModel):
    """The token mixer in one OS process (golden.py's arithmetic). Its boundary is a connection (the i, f, g
    synapses), so it follows the connection convention: a token's o leaves one step after its spikes arrive."""

    a_i_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    a_f_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    a_g_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    o_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    gate_inv_rms: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], FastGoldenModel(net)
        self.buffer = events.silence(net.cfg.hidden_size)

    def run_spk(self):
        q, g, l = self.q, self.arith, self.l
        self.o_out.send(self.buffer)
        (a_i, _), (a_f, present), (a_g, _) = (events.split(p.recv()) for p in (self.a_i_in, self.a_f_in, self.a_g_in))
        if not present:  # no spikes: h keeps its value, nothing goes out
            self.buffer = events.silence(len(a_f))
            return
        acc = [g.project(getattr(q, p).w, a.astype(np.int64)[None], f"l{l}.{p}")  # dendrites: saturated as golden
               for p, a in zip("ifg", (a_i, a_f, a_g))]
        gz, h = g.mlgru(q, *acc, self.h.astype(np.int64), l)
        self.h[:] = h
        S_gate = g.aggregate(g.norm_squares(q.gate, gz, f"l{l}.gate"), f"l{l}.gate")
        self.gate_sum_sq[:] = S_gate
        r = g.inv_rms(S_gate, f"l{l}.gate")
        self.gate_inv_rms[:] = r
        a_o = g.spikes_from_inv_rms(q.gate, gz, r, f"l{l}.gate")["o"]
        self.buffer = events.message(g.project(q.o.w, a_o, f"l{l}.o")[0], True)


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedTokenMixerFloat(PyLoihiProcessModel):
    """The token mixer of the float reference (folded norms, exact eps) in one OS process, one step of latency."""

    a_i_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_f_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_g_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    o_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    gate_inv_rms: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "token mixer")
        self.lw = lw = fm.layers[proc_params["layer"]]
        self.d = fm.cfg.hidden_size
        self.eps_gate = lw.fold_o.eps_const
        self.w = {k: getattr(lw, f"{k}_proj").wt.astype(float) for k in ("i", "f", "g", "o")}
        self.scale = {k: 1.0 / getattr(lw, f"{k}_proj").s for k in ("i", "f", "g", "o")}
        self.buffer = events.silence(self.d, dtype=float)

    def _bitlinear(self, k, a):
        return self.scale[k] * (self.w[k] @ a)

    def run_spk(self):
        lw = self.lw
        self.o_out.send(self.buffer)
        a = {k: events.split(p.recv()) for k, p in (("i", self.a_i_in), ("f", self.a_f_in), ("g", self.a_g_in))}
        if not a["f"][1]:
            self.buffer = events.silence(self.d, dtype=float)
            return
        acc = {k: self._bitlinear(k, v[0]) for k, v in a.items()}
        f = lw.lower_bound + (1.0 - lw.lower_bound) * sigmoid(acc["f"])
        self.h[:] = f * self.h + silu(acc["i"]) * (1.0 - f)
        g = acc["g"]
        gz = g * silu(self.h)
        fold = lw.fold_o
        S_gate = np.sum(fold.squares(g, gz))
        self.gate_sum_sq[:] = S_gate
        self.gate_inv_rms[:] = 1.0 / np.sqrt(S_gate / self.d + self.eps_gate)
        a_o = act_quant_q8(fold.gain * gz * self.gate_inv_rms[0])
        self.buffer = events.message(self._bitlinear("o", a_o), True, dtype=float)
