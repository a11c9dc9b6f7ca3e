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
        self.mlp_aggregator = RmsAggregator(n=d, net=net, stage=f"l{l}.mlp", name=f"l{l}.mlp_aggregator")
        self.down_aggregator = RmsAggregator(n=n, net=net, stage=f"l{l}.down", name=f"l{l}.down_aggregator")
        self.glu = Glu(net=net, layer=l, name=f"l{l}.glu")
        self.gate_proj = TernarySynapses(weights=q.gate_w, name=f"l{l}.gate_proj")
        self.down_proj = TernarySynapses(weights=q.down.w, name=f"l{l}.down_proj")
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
        self.q, self.arith = net.layers[self.l], GoldenModel(net)
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
