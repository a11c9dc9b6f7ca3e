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
from lava_matmulfree.errors import BackendError
from lava_matmulfree.golden_fast import FastGoldenModel
from lava_matmulfree.processes.block.process import MMFreeBlock
from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
from lava_matmulfree.processes.residual.process import Residual
from lava_matmulfree.processes.token_mixer.process import TokenMixer

I32 = np.int32


def _check_timing(proc_params, fused: bool):
    hops = proc_params["schedule"].block_hops
    want = pl.FUSED_BLOCK_HOPS if fused else pl.BLOCK_HOPS
    if hops != want:
        raise BackendError(f"block {proc_params['layer']} was built for {hops} steps per layer but the run "
                           f"config selected the {'fused' if fused else 'decomposed'} model ({want}); "
                           "build the graph for the backend you run")


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
class SubBlockModel(AbstractSubProcessModel):
    """The block as it maps onto the chip: residual neurons, a token mixer and a channel mixer (each
    hierarchical in turn: 13 leaf processes when every level is decomposed)."""

    def __init__(self, proc):
        p = proc.proc_params
        _check_timing(p, fused=False)
        net, l, sched = p["net"], p["layer"], p["schedule"]
        fm = p.get("float_model")  # the folded float model, for the floating_pt leaves (fixed_pt ignores it)
        self.residual = Residual(net=net, layer=l, float_model=fm, name=f"l{l}.residual")
        self.token_mixer = TokenMixer(net=net, layer=l, schedule=sched, float_model=fm)
        self.channel_mixer = ChannelMixer(net=net, layer=l, schedule=sched, float_model=fm)
        res, tm, cm = self.residual, self.token_mixer, self.channel_mixer
        proc.in_ports.x_in.connect(res.in_ports.x_in)
        res.out_ports.sq_attn.connect(tm.in_ports.sq_in)
        tm.out_ports.r_out.connect(res.in_ports.r_attn)
        for k in ("i", "f", "g"):
            getattr(res.out_ports, f"a_{k}").connect(getattr(tm.in_ports, f"a_{k}_in"))
        tm.out_ports.o_out.connect(res.in_ports.o_in)
        res.out_ports.sq_mlp.connect(cm.in_ports.sq_in)
        cm.out_ports.r_out.connect(res.in_ports.r_mlp)
        res.out_ports.a_gate.connect(cm.in_ports.a_gate_in)
        cm.out_ports.down_out.connect(res.in_ports.down_in)
        res.out_ports.x_out.connect(proc.out_ports.x_out)
        # probe points
        proc.vars.x.alias(res.vars.x)
        proc.vars.r.alias(res.vars.r)
        proc.vars.h.alias(tm.vars.h)
        proc.vars.attn_sum_sq.alias(tm.vars.attn_sum_sq)
        proc.vars.gate_sum_sq.alias(tm.vars.gate_sum_sq)
        proc.vars.y.alias(cm.vars.y)
        proc.vars.mlp_sum_sq.alias(cm.vars.mlp_sum_sq)
        proc.vars.down_sum_sq.alias(cm.vars.down_sum_sq)


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedBlockFixed(PyLoihiProcessModel):
    """The whole block in one OS process and one step: the golden layer on the token present."""

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    x: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    r: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    y: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    attn_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    mlp_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        _check_timing(proc_params, fused=True)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], FastGoldenModel(net)
        self.schedule = proc_params["schedule"]
        self.offset = self.schedule.block_offset(self.l)
        self.out = np.zeros(net.cfg.hidden_size, dtype=I32)

    def run_spk(self):
        self.x_out.send(self.out)
        x = self.x_in.recv().astype(np.int64)
        if self.schedule.token_at(self.time_step, self.offset) < 0:
            self.out = np.zeros_like(self.out)
            return
        g, l = self.arith, self.l
        g.probes = {}
        x_new, h = g.layer(self.q, x[None], self.h.astype(np.int64), l)
        self.x[:], self.h[:], self.out = x, h, x_new[0].astype(I32)
        self.r[:] = g.probes[f"l{l}.r"][0][0]
        self.y[:] = g.probes[f"l{l}.y"][0][0]
        for st in ("attn", "gate", "mlp", "down"):
            getattr(self, f"{st}_sum_sq")[:] = g.probes[f"l{l}.{st}.sum_sq"][0][0]


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedBlockFloat(PyLoihiProcessModel):
    """The block of the float reference (float_model.py, folded norms) on one token per step: the
    accuracy yardstick inside the same graph. Probe Vars x, r, h, y hold float values."""

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    x: np.ndarray = LavaPyType(np.ndarray, float)
    r: np.ndarray = LavaPyType(np.ndarray, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)
    y: np.ndarray = LavaPyType(np.ndarray, float)
    attn_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    gate_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    mlp_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    down_sum_sq: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        _check_timing(proc_params, fused=True)
        fm = float_model_of(proc_params, "block")
        self.fm, self.l = fm, proc_params["layer"]
        self.lw = fm.layers[self.l]
        self.schedule = proc_params["schedule"]
        self.offset = self.schedule.block_offset(self.l)
        self.out = np.zeros(fm.cfg.hidden_size)

    def run_spk(self):
        from lava_matmulfree.float_model import channel_mixer, silu, token_mixer

        self.x_out.send(self.out)
        x = self.x_in.recv()
        if self.schedule.token_at(self.time_step, self.offset) < 0:
            self.out = np.zeros_like(self.out)
            return
        cfg, rec = self.fm.cfg, {}
        o, h = token_mixer(self.lw, x[None], self.h.copy(), cfg.rms_norm_eps)
        r = x + o[0]
        self.out = r + channel_mixer(self.lw, r[None], cfg.rms_norm_eps, cfg.intermediate_size, rec)[0]
        self.x[:], self.r[:], self.h[:] = x, r, h
        self.y[:] = silu(rec["u"][0]) * rec["v"][0]
