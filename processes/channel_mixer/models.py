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
from lava_matmulfree.float_model import act_quant_q8, silu
from lava_matmulfree.golden import synapses
from lava_matmulfree.golden_fast import FastGoldenModel
from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
from lava_matmulfree.processes.glu.process import Glu
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator
from lava_matmulfree.processes.ternary_synapses.process import TernarySynapses

I32 = np.int32


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
class SubChannelMixerModel(AbstractSubProcessModel):
    """Two RMS aggregators, the gate and down ternary synapses and the GLU neurons."""

    def __init__(self, proc):
        p = proc.proc_params
        net, l = p["net"], p["layer"]
        q, d, n = net.layers[l], net.cfg.hidden_size, net.cfg.intermediate_size
        fm = p.get("float_model")  # floating_pt only: the aggregators' eps constants and the synapse scales
        lw = None if fm is None else fm.layers[l]
        # mlp: the folded mlp_norm + gate_proj norm; down: down_proj's own RMSNorm (its eps alone)
        mlp_eps = 0.0 if lw is None else lw.fold_gate.eps_const
        down_eps = 0.0 if lw is None else lw.down_proj.eps
        self.mlp_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.mlp", eps_const=mlp_eps,
                                            name=f"l{l}.mlp_aggregator")
        self.down_aggregator = RmsAggregator(n=n, net=net, stage=f"l{l}.down", eps_const=down_eps,
                                             name=f"l{l}.down_aggregator")
        self.glu = Glu(net=net, layer=l, float_model=fm, name=f"l{l}.glu")
        self.gate_proj = TernarySynapses(weights=q.gate_w, scale=1.0 if lw is None else 1.0 / lw.gate_proj.s,
                                         name=f"l{l}.gate_proj")
        self.down_proj = TernarySynapses(weights=q.down.w, scale=1.0 if lw is None else 1.0 / lw.down_proj.s,
                                         name=f"l{l}.down_proj")
        proc.in_ports.sq_in.connect(self.mlp_aggregator.in_ports.sq_in)
        self.mlp_aggregator.out_ports.r_out.connect(proc.out_ports.r_out)
        proc.in_ports.a_gate_in.connect(self.gate_proj.in_ports.a_in)
        self.gate_proj.out_ports.acc_out.connect(self.glu.in_ports.acc_uv)
        self.glu.out_ports.sq_out.connect(self.down_aggregator.in_ports.sq_in)
        self.down_aggregator.out_ports.r_out.connect(self.glu.in_ports.r_in)
        self.glu.out_ports.a_out.connect(self.down_proj.in_ports.a_in)
        self.down_proj.out_ports.acc_out.connect(proc.out_ports.down_out)
        proc.vars.y.alias(self.glu.vars.y)
        proc.vars.mlp_sum_sq.alias(self.mlp_aggregator.vars.sum_sq)
        proc.vars.down_sum_sq.alias(self.down_aggregator.vars.sum_sq)


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedChannelMixerFixed(PyLoihiProcessModel):
    """The channel mixer in one OS process, holding each token's output for CHANNEL_MIXER_HOPS steps."""

    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_gate_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=8)
    down_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    y: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    mlp_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], FastGoldenModel(net)
        d = net.cfg.hidden_size
        self.r = np.zeros(1, dtype=I32)
        self.down_hist = pl.History(pl.CHANNEL_MIXER_HOPS + 1, (d,))
        self.down_S_hist = pl.History(2, (1,))

    def run_spk(self):
        s, q, g, l = self.time_step, self.q, self.arith, self.l
        self.r_out.send(self.r)
        self.down_out.send(self.down_hist.get(s - pl.CHANNEL_MIXER_HOPS).astype(I32))
        S = g.aggregate(self.sq_in.recv().astype(np.int64), f"l{l}.mlp")
        self.mlp_sum_sq[:] = S
        self.r = g.inv_rms(S, f"l{l}.mlp").astype(I32)
        a = self.a_gate_in.recv().astype(np.int64)
        self.down_sum_sq[:] = self.down_S_hist.get(s - 1)
        y = g.glu(q, synapses(q.gate_w, a), l)  # stateless: no spikes in, zeros out
        self.y[:] = y
        S_down = g.aggregate(g.norm_squares(q.down_norm, y, f"l{l}.down"), f"l{l}.down")
        a_d = g.spikes_from_inv_rms(q.down_norm, y, g.inv_rms(S_down, f"l{l}.down"), f"l{l}.down")["down"]
        self.down_hist.put(s, synapses(q.down.w, a_d))
        self.down_S_hist.put(s, S_down)


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedChannelMixerFloat(PyLoihiProcessModel):
    """The channel mixer of the float reference (folded mlp norm, down_proj's own norm, exact eps) in one OS
    process, holding each token's output for CHANNEL_MIXER_HOPS steps (the timing of the decomposed leaves)."""

    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_gate_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    down_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y: np.ndarray = LavaPyType(np.ndarray, float)
    mlp_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "channel mixer")
        lw = fm.layers[proc_params["layer"]]
        d = self.d = fm.cfg.hidden_size
        self.n = fm.cfg.intermediate_size
        self.eps_mlp = lw.fold_gate.eps_const
        self.down = lw.down_proj
        self.w_gate, self.scale_gate = lw.gate_proj.wt.astype(float), 1.0 / lw.gate_proj.s
        self.w_down, self.scale_down = lw.down_proj.wt.astype(float), 1.0 / lw.down_proj.s
        self.r = np.zeros(1)
        self.down_hist = pl.History(pl.CHANNEL_MIXER_HOPS + 1, (d,), dtype=float)
        self.down_S_hist = pl.History(2, (1,), dtype=float)

    def run_spk(self):
        s, n = self.time_step, self.n
        self.r_out.send(self.r)
        self.down_out.send(self.down_hist.get(s - pl.CHANNEL_MIXER_HOPS))
        S = np.sum(self.sq_in.recv())
        self.mlp_sum_sq[:] = S
        self.r = np.array([1.0 / np.sqrt(S / self.d + self.eps_mlp)])
        self.down_sum_sq[:] = self.down_S_hist.get(s - 1)
        uv = self.scale_gate * (self.w_gate @ self.a_gate_in.recv())  # stateless: no spikes in, zeros out
        y = silu(uv[:n]) * uv[n:]
        self.y[:] = y
        S_down = np.sum(y * y)
        a_d = act_quant_q8(self.down.norm_w * y * (1.0 / np.sqrt(S_down / n + self.down.eps)))
        self.down_hist.put(s, self.scale_down * (self.w_down @ a_d))
        self.down_S_hist.put(s, S_down)
