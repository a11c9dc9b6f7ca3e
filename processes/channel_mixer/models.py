import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.model.float_model import act_quant_q8, silu
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes import build, float_model_of
from lava_matmulfree.processes.channel_mixer.process import ChannelMixer

I32 = np.int32


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
class SubChannelMixerModel(AbstractSubProcessModel):
    """Dense gate_u, gate_v -> GLU neurons <-> down-norm aggregator (fan-in, broadcast) -> Dense down."""

    def __init__(self, proc):
        p = proc.proc_params
        net, l, fm = p["net"], p["layer"], p.get("float_model")
        q, n = net.layers[l], net.cfg.intermediate_size
        lw = None if fm is None else fm.layers[l]
        self.glu = build.glu(net, l, fm)
        # down: down_proj's own RMSNorm (its eps alone; no block norm to fold)
        self.down_fan_in, self.down_aggregator, self.down_broadcast = build.norm(
            net, n, f"l{l}.down", 0.0 if lw is None else lw.down_proj.eps, floating=fm is not None)
        gate = None if lw is None else lw.gate_proj
        self.gate_u = build.projection(q.gate_w[:n], f"l{l}.gate_proj.u", gate)  # u and v on two dendrites
        self.gate_v = build.projection(q.gate_w[n:], f"l{l}.gate_proj.v", gate)
        self.down_proj = build.projection(q.down.w, f"l{l}.down_proj", None if lw is None else lw.down_proj)
        proc.in_ports.a_gate_in.connect(self.gate_u.s_in)
        proc.in_ports.a_gate_in.connect(self.gate_v.s_in)
        self.gate_u.a_out.connect(self.glu.u_in)
        self.gate_v.a_out.connect(self.glu.v_in)
        self.glu.sq_out.connect(self.down_fan_in.s_in)
        self.down_broadcast.a_out.connect(self.glu.r_in)
        self.glu.a_out.connect(self.down_proj.s_in)
        self.down_proj.a_out.connect(proc.out_ports.down_out)
        proc.vars.y.alias(self.glu.vars.y)
        proc.vars.down_sum_sq.alias(self.down_aggregator.vars.sum_sq)
        proc.vars.down_inv_rms.alias(self.down_aggregator.vars.inv_rms)


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedChannelMixerFixed(PyLoihiProcessModel):
    """The channel mixer in one OS process (golden.py's arithmetic), one step of latency (its boundary is the
    gate_proj connection)."""

    a_gate_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    down_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    y: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    down_inv_rms: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], FastGoldenModel(net)
        self.buffer = events.silence(net.cfg.hidden_size)

    def run_spk(self):
        q, g, l = self.q, self.arith, self.l
        self.down_out.send(self.buffer)
        a, present = events.split(self.a_gate_in.recv())
        if not present:
            self.buffer = events.silence(len(a))
            return
        y = g.glu(q, g.project(q.gate_w, a.astype(np.int64)[None], f"l{l}.gate"), l)
        self.y[:] = y[0]
        S_down = g.aggregate(g.norm_squares(q.down_norm, y, f"l{l}.down"), f"l{l}.down")
        self.down_sum_sq[:] = S_down
        r = g.inv_rms(S_down, f"l{l}.down")
        self.down_inv_rms[:] = r
        a_d = g.spikes_from_inv_rms(q.down_norm, y, r, f"l{l}.down")["down"]
        self.buffer = events.message(g.project(q.down.w, a_d, f"l{l}.down")[0], True)


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedChannelMixerFloat(PyLoihiProcessModel):
    """The channel mixer of the float reference in one OS process, one step of latency."""

    a_gate_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    down_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y: np.ndarray = LavaPyType(np.ndarray, float)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    down_inv_rms: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "channel mixer")
        lw = fm.layers[proc_params["layer"]]
        self.d, self.n = fm.cfg.hidden_size, fm.cfg.intermediate_size
        self.down = lw.down_proj
        self.w_gate, self.scale_gate = lw.gate_proj.wt.astype(float), 1.0 / lw.gate_proj.s
        self.w_down, self.scale_down = lw.down_proj.wt.astype(float), 1.0 / lw.down_proj.s
        self.buffer = events.silence(self.d, dtype=float)

    def run_spk(self):
        n = self.n
        self.down_out.send(self.buffer)
        a, present = events.split(self.a_gate_in.recv())
        if not present:
            self.buffer = events.silence(self.d, dtype=float)
            return
        uv = self.scale_gate * (self.w_gate @ a)
        y = silu(uv[:n]) * uv[n:]
        self.y[:] = y
        S_down = np.sum(y * y)
        self.down_sum_sq[:] = S_down
        self.down_inv_rms[:] = 1.0 / np.sqrt(S_down / n + self.down.eps)
        a_d = act_quant_q8(self.down.norm_w * y * self.down_inv_rms[0])
        self.buffer = events.message(self.scale_down * (self.w_down @ a_d), True, dtype=float)
