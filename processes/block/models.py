import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.errors import BackendError
from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.block.process import MMFreeBlock
from lava_matmulfree.processes.glu.process import Glu
from lava_matmulfree.processes.mlgru.process import Mlgru
from lava_matmulfree.processes.residual.process import Residual
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator
from lava_matmulfree.processes.ternary_synapses.process import TernarySynapses

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
    """The block as 13 leaf processes wired the way it maps onto neuro cores."""

    def __init__(self, proc):
        p = proc.proc_params
        _check_timing(p, fused=False)
        net, l, sched = p["net"], p["layer"], p["schedule"]
        q, d, n = net.layers[l], net.cfg.hidden_size, net.cfg.intermediate_size
        self.residual = Residual(net=net, layer=l, name=f"l{l}.residual")
        self.mlgru = Mlgru(net=net, layer=l, schedule=sched, offset=sched.block_offset(l) + pl.MLGRU_IN,
                           name=f"l{l}.mlgru")
        self.glu = Glu(net=net, layer=l, name=f"l{l}.glu")
        agg = {st: RmsAggregator(n=size, net=net, stage=f"l{l}.{st}", name=f"l{l}.{st}_aggregator")
               for st, size in (("attn", d), ("gate", d), ("mlp", d), ("down", n))}
        syn = {k: TernarySynapses(weights=w, name=f"l{l}.{k}_proj")
               for k, w in (("i", q.i.w), ("f", q.f.w), ("g", q.g.w), ("o", q.o.w), ("gate", q.gate_w),
                            ("down", q.down.w))}
        for k, p_ in agg.items():  # lava finds the children among the model's attributes
            setattr(self, f"{k}_aggregator", p_)
        for k, p_ in syn.items():
            setattr(self, f"{k}_proj", p_)
        res, mlgru, glu = self.residual, self.mlgru, self.glu
        proc.in_ports.x_in.connect(res.in_ports.x_in)
        # token mixer
        res.out_ports.sq_attn.connect(agg["attn"].in_ports.sq_in)
        agg["attn"].out_ports.r_out.connect(res.in_ports.r_attn)
        for k in ("i", "f", "g"):
            getattr(res.out_ports, f"a_{k}").connect(syn[k].in_ports.a_in)
            syn[k].out_ports.acc_out.connect(getattr(mlgru.in_ports, f"acc_{k}"))
        mlgru.out_ports.sq_out.connect(agg["gate"].in_ports.sq_in)
        agg["gate"].out_ports.r_out.connect(mlgru.in_ports.r_in)
        mlgru.out_ports.a_out.connect(syn["o"].in_ports.a_in)
        syn["o"].out_ports.acc_out.connect(res.in_ports.o_in)
        # channel mixer
        res.out_ports.sq_mlp.connect(agg["mlp"].in_ports.sq_in)
        agg["mlp"].out_ports.r_out.connect(res.in_ports.r_mlp)
        res.out_ports.a_gate.connect(syn["gate"].in_ports.a_in)
        syn["gate"].out_ports.acc_out.connect(glu.in_ports.acc_uv)
        glu.out_ports.sq_out.connect(agg["down"].in_ports.sq_in)
        agg["down"].out_ports.r_out.connect(glu.in_ports.r_in)
        glu.out_ports.a_out.connect(syn["down"].in_ports.a_in)
        syn["down"].out_ports.acc_out.connect(res.in_ports.down_in)
        res.out_ports.x_out.connect(proc.out_ports.x_out)
        # probe points
        proc.vars.x.alias(res.vars.x)
        proc.vars.r.alias(res.vars.r)
        proc.vars.h.alias(mlgru.vars.h)
        proc.vars.y.alias(glu.vars.y)
        for st in agg:
            getattr(proc.vars, f"{st}_sum_sq").alias(agg[st].vars.sum_sq)


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
        self.q, self.arith = net.layers[self.l], GoldenModel(net)
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
