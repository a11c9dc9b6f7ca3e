import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.processes import float_model_of
from lava_matmulfree.float_model import act_quant_q8, sigmoid, silu
from lava_matmulfree.golden import synapses
from lava_matmulfree.golden_fast import FastGoldenModel
from lava_matmulfree.processes.mlgru.process import Mlgru
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator
from lava_matmulfree.processes.ternary_synapses.process import TernarySynapses
from lava_matmulfree.processes.token_mixer.process import TokenMixer

I32 = np.int32


@implements(proc=TokenMixer, protocol=LoihiProtocol)
class SubTokenMixerModel(AbstractSubProcessModel):
    """Two RMS aggregators, the i, f, g, o ternary synapses and the MLGRU neurons."""

    def __init__(self, proc):
        p = proc.proc_params
        net, l, sched = p["net"], p["layer"], p["schedule"]
        q, d = net.layers[l], net.cfg.hidden_size
        fm = p.get("float_model")  # floating_pt only: the aggregators' eps constants and the synapse scales
        lw = None if fm is None else fm.layers[l]
        self.attn_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.attn", name=f"l{l}.attn_aggregator",
                                             eps_const=0.0 if lw is None else lw.fold_i.eps_const)
        self.gate_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.gate", name=f"l{l}.gate_aggregator",
                                             eps_const=0.0 if lw is None else lw.fold_o.eps_const)
        self.mlgru = Mlgru(net=net, layer=l, schedule=sched, offset=sched.block_offset(l) + pl.MLGRU_IN,
                           float_model=fm, name=f"l{l}.mlgru")
        # lava finds the children among the model's attributes
        for k, w in (("i", q.i.w), ("f", q.f.w), ("g", q.g.w), ("o", q.o.w)):
            scale = 1.0 if lw is None else 1.0 / getattr(lw, f"{k}_proj").s
            setattr(self, f"{k}_proj", TernarySynapses(weights=w, scale=scale, name=f"l{l}.{k}_proj"))
        proc.in_ports.sq_in.connect(self.attn_aggregator.in_ports.sq_in)
        self.attn_aggregator.out_ports.r_out.connect(proc.out_ports.r_out)
        for k in ("i", "f", "g"):
            getattr(proc.in_ports, f"a_{k}_in").connect(getattr(self, f"{k}_proj").in_ports.a_in)
            getattr(self, f"{k}_proj").out_ports.acc_out.connect(getattr(self.mlgru.in_ports, f"acc_{k}"))
        self.mlgru.out_ports.sq_out.connect(self.gate_aggregator.in_ports.sq_in)
        self.gate_aggregator.out_ports.r_out.connect(self.mlgru.in_ports.r_in)
        self.mlgru.out_ports.a_out.connect(self.o_proj.in_ports.a_in)
        self.o_proj.out_ports.acc_out.connect(proc.out_ports.o_out)
        proc.vars.h.alias(self.mlgru.vars.h)
        proc.vars.attn_sum_sq.alias(self.attn_aggregator.vars.sum_sq)
        proc.vars.gate_sum_sq.alias(self.gate_aggregator.vars.sum_sq)


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedTokenMixerFixed(PyLoihiProcessModel):
    """The token mixer in one OS process. It computes a token's o in the step its spikes arrive and
    holds it for TOKEN_MIXER_HOPS steps, so the block's timing (and every probe) is that of the chip."""

    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_i_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=8)
    a_f_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=8)
    a_g_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=8)
    o_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    attn_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], FastGoldenModel(net)
        self.schedule = proc_params["schedule"]
        self.offset = self.schedule.block_offset(self.l) + pl.MLGRU_IN
        d = net.cfg.hidden_size
        self.r = np.zeros(1, dtype=I32)
        self.o_hist = pl.History(pl.TOKEN_MIXER_HOPS + 1, (d,))
        self.gate_S_hist = pl.History(2, (1,))  # the gate aggregator's sum shows one step after the MLGRU

    def run_spk(self):
        s, q, g, l = self.time_step, self.q, self.arith, self.l
        self.r_out.send(self.r)
        self.o_out.send(self.o_hist.get(s - pl.TOKEN_MIXER_HOPS).astype(I32))
        S = g.aggregate(self.sq_in.recv().astype(np.int64), f"l{l}.attn")
        self.attn_sum_sq[:] = S
        self.r = g.inv_rms(S, f"l{l}.attn").astype(I32)
        a = [p.recv().astype(np.int64)[None] for p in (self.a_i_in, self.a_f_in, self.a_g_in)]
        self.gate_sum_sq[:] = self.gate_S_hist.get(s - 1)
        if self.schedule.token_at(s, self.offset) < 0:  # no spikes: h keeps its value, nothing goes out
            self.o_hist.put(s, 0)
            self.gate_S_hist.put(s, 0)
            return
        acc = [synapses(w, x) for w, x in zip((q.i.w, q.f.w, q.g.w), a)]
        gz, h = g.mlgru(q, *acc, self.h.astype(np.int64), l)
        self.h[:] = h
        sq = g.norm_squares(q.gate, gz, f"l{l}.gate")
        S_gate = g.aggregate(sq, f"l{l}.gate")
        a_o = g.spikes_from_inv_rms(q.gate, gz, g.inv_rms(S_gate, f"l{l}.gate"), f"l{l}.gate")["o"]
        self.o_hist.put(s, synapses(q.o.w, a_o)[0])
        self.gate_S_hist.put(s, S_gate[0])


@implements(proc=TokenMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedTokenMixerFloat(PyLoihiProcessModel):
    """The token mixer of the float reference (folded norms, exact eps) in one OS process, with the timing
    of ``SubTokenMixerModel``'s floating_pt leaves: a token's o is computed in the step its spikes arrive and
    held for TOKEN_MIXER_HOPS steps."""

    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_i_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_f_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_g_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    o_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)
    attn_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "token mixer")
        self.l = proc_params["layer"]
        self.lw = lw = fm.layers[self.l]
        self.d = d = fm.cfg.hidden_size
        self.eps_attn, self.eps_gate = lw.fold_i.eps_const, lw.fold_o.eps_const
        self.w = {k: getattr(lw, f"{k}_proj").wt.astype(float) for k in ("i", "f", "g", "o")}
        self.scale = {k: 1.0 / getattr(lw, f"{k}_proj").s for k in ("i", "f", "g", "o")}
        self.schedule = proc_params["schedule"]
        self.offset = self.schedule.block_offset(self.l) + pl.MLGRU_IN
        self.r = np.zeros(1)
        self.o_hist = pl.History(pl.TOKEN_MIXER_HOPS + 1, (d,), dtype=float)
        self.gate_S_hist = pl.History(2, (1,), dtype=float)  # the gate aggregator's sum shows one step later

    def _bitlinear(self, k, a):
        return self.scale[k] * (self.w[k] @ a)

    def run_spk(self):
        s, lw = self.time_step, self.lw
        self.r_out.send(self.r)
        self.o_out.send(self.o_hist.get(s - pl.TOKEN_MIXER_HOPS))
        S = np.sum(self.sq_in.recv())
        self.attn_sum_sq[:] = S
        self.r = np.array([1.0 / np.sqrt(S / self.d + self.eps_attn)])
        a = {k: p.recv() for k, p in (("i", self.a_i_in), ("f", self.a_f_in), ("g", self.a_g_in))}
        self.gate_sum_sq[:] = self.gate_S_hist.get(s - 1)
        if self.schedule.token_at(s, self.offset) < 0:  # no spikes: h keeps its value, nothing goes out
            self.o_hist.put(s, 0.0)
            self.gate_S_hist.put(s, 0.0)
            return
        acc = {k: self._bitlinear(k, v) for k, v in a.items()}
        f = lw.lower_bound + (1.0 - lw.lower_bound) * sigmoid(acc["f"])
        i = silu(acc["i"]) * (1.0 - f)
        self.h[:] = f * self.h + i
        g = acc["g"]
        gz = g * silu(self.h)
        fold = lw.fold_o
        S_gate = np.sum(fold.squares(g, gz))
        a_o = act_quant_q8(fold.gain * gz * (1.0 / np.sqrt(S_gate / self.d + self.eps_gate)))
        self.o_hist.put(s, self._bitlinear("o", a_o))
        self.gate_S_hist.put(s, S_gate)
