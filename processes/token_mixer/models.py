import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.golden import GoldenModel, synapses
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
        self.attn_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.attn", name=f"l{l}.attn_aggregator")
        self.gate_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.gate", name=f"l{l}.gate_aggregator")
        self.mlgru = Mlgru(net=net, layer=l, schedule=sched, offset=sched.block_offset(l) + pl.MLGRU_IN,
                           name=f"l{l}.mlgru")
        # lava finds the children among the model's attributes
        self.i_proj = TernarySynapses(weights=q.i.w, name=f"l{l}.i_proj")
        self.f_proj = TernarySynapses(weights=q.f.w, name=f"l{l}.f_proj")
        self.g_proj = TernarySynapses(weights=q.g.w, name=f"l{l}.g_proj")
        self.o_proj = TernarySynapses(weights=q.o.w, name=f"l{l}.o_proj")
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
        self.q, self.arith = net.layers[self.l], GoldenModel(net)
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
