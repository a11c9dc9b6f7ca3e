import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import silu
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes import activity, build, float_model_of
from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
from lava_matmulfree.processes.fused import AbstractFusedMixer, float_bitlinear
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types


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
        bits = net.fp.act_bits
        self.gate_u = build.projection(q.gate_w[:n], f"l{l}.gate_proj.u", gate, bits)  # u and v on two dendrites
        self.gate_v = build.projection(q.gate_w[n:], f"l{l}.gate_proj.v", gate, bits)
        self.down_proj = build.projection(q.down.w, f"l{l}.down_proj", None if lw is None else lw.down_proj, bits)
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
        activity.enable_if_asked(p, self.glu, self.down_fan_in, self.down_aggregator, self.down_broadcast,
                                 self.gate_u, self.gate_v, self.down_proj)


class AbstractFusedChannelMixer(AbstractFusedMixer):
    """The channel mixer in one OS process, one step of latency: its boundary is the gate_proj connection
    (processes/fused.py)."""

    IN_PORTS, OUT_PORTS, TOKEN_PORT = ("a_gate_in",), ("down_out",), "a_gate_in"
    VARS = ("y", "down_sum_sq", "down_inv_rms")


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyFusedChannelMixerFixed(AbstractFusedChannelMixer):
    """golden.py's arithmetic. The counting twin (processes/activity.py) counts gate, the down norm, down and
    the GLU's updates as the golden model does."""

    COUNTS = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = FastGoldenModel(self.net)

    def mix(self, spikes):
        q, g, l = self.q, self.arith, self.l
        self.count_start()
        acc_uv = g.project(q.gate_w, spikes["a_gate_in"].astype(np.int64)[None], f"l{l}.gate")
        g.arrive(f"l{l}.glu", len(self.y), 1)  # u and v arrive together (activity only)
        y = g.glu(q, acc_uv, l)
        self.y[:] = y[0]
        a_d = self.golden_norm(q.down_norm, y, "down", "down")
        down = g.project(q.down.w, a_d, f"l{l}.down")[0]
        self.count_add(*activity.mixer_layout("ChannelMixer", l))
        return down


@implements(proc=ChannelMixer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyFusedChannelMixerFloat(AbstractFusedChannelMixer):
    """The channel mixer of the float reference; down_proj's own RMSNorm (its eps alone)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "channel mixer")
        lw = fm.layers[self.l]
        self.n, self.down = fm.cfg.intermediate_size, lw.down_proj
        self.gate_proj, self.down_proj = float_bitlinear(lw.gate_proj), float_bitlinear(lw.down_proj)

    def mix(self, spikes):
        n = self.n
        uv = self.gate_proj(spikes["a_gate_in"])
        y = silu(uv[:n]) * uv[n:]
        self.y[:] = y
        a_d = self.float_norm(y * y, y, self.down.norm_w, self.down.eps, "down")
        return self.down_proj(a_d)
