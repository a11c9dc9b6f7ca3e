import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.model.activity import layer_connections, layer_groups
from lava_matmulfree.processes import activity, build, float_model_of
from lava_matmulfree.processes.block.process import BLOCK_VARS, MMFreeBlock
from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
from lava_matmulfree.processes.fused import AbstractFusedLayers
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types
from lava_matmulfree.processes.token_mixer.process import TokenMixer


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
class SubBlockModel(AbstractSubProcessModel):
    """The block as it maps onto the chip: residual neurons; the attn and mlp norms (fan-in connection, aggregator,
    broadcast connection each); a token mixer and a channel mixer (hierarchical in turn)."""

    def __init__(self, proc):
        p = proc.proc_params
        net, l, fm = p["net"], p["layer"], p.get("float_model")
        d = net.cfg.hidden_size
        lw = None if fm is None else fm.layers[l]
        floating = fm is not None
        self.residual = build.residual(net, l, fm)
        self.attn_fan_in, self.attn_aggregator, self.attn_broadcast = build.norm(
            net, d, f"l{l}.attn", 0.0 if lw is None else lw.fold_i.eps_const, floating)
        self.mlp_fan_in, self.mlp_aggregator, self.mlp_broadcast = build.norm(
            net, d, f"l{l}.mlp", 0.0 if lw is None else lw.fold_gate.eps_const, floating)
        self.token_mixer = TokenMixer(net=net, layer=l, float_model=fm)
        self.channel_mixer = ChannelMixer(net=net, layer=l, float_model=fm)
        res, tm, cm = self.residual, self.token_mixer, self.channel_mixer
        proc.in_ports.x_in.connect(res.x_in)
        res.sq_attn.connect(self.attn_fan_in.s_in)
        self.attn_broadcast.a_out.connect(res.r_attn)
        for k in ("i", "f", "g"):
            getattr(res, f"a_{k}").connect(getattr(tm, f"a_{k}_in"))
        tm.o_out.connect(res.o_in)
        res.sq_mlp.connect(self.mlp_fan_in.s_in)
        self.mlp_broadcast.a_out.connect(res.r_mlp)
        res.a_gate.connect(cm.a_gate_in)
        cm.down_out.connect(res.down_in)
        res.x_out.connect(proc.out_ports.x_out)
        proc.vars.x.alias(res.vars.x)
        proc.vars.r.alias(res.vars.r)
        proc.vars.h.alias(tm.vars.h)
        proc.vars.y.alias(cm.vars.y)
        proc.vars.attn_sum_sq.alias(self.attn_aggregator.vars.sum_sq)
        proc.vars.gate_sum_sq.alias(tm.vars.gate_sum_sq)
        proc.vars.mlp_sum_sq.alias(self.mlp_aggregator.vars.sum_sq)
        proc.vars.down_sum_sq.alias(cm.vars.down_sum_sq)
        proc.vars.attn_inv_rms.alias(self.attn_aggregator.vars.inv_rms)
        proc.vars.gate_inv_rms.alias(tm.vars.gate_inv_rms)
        proc.vars.mlp_inv_rms.alias(self.mlp_aggregator.vars.inv_rms)
        proc.vars.down_inv_rms.alias(cm.vars.down_inv_rms)
        activity.enable_if_asked(p, res, self.attn_fan_in, self.attn_aggregator, self.attn_broadcast,
                                 self.mlp_fan_in, self.mlp_aggregator, self.mlp_broadcast, tm, cm)


class AbstractFusedBlock(AbstractFusedLayers):
    """The whole block in one OS process, on the token that arrives, sent in the same step; every probe Var of the
    block (BLOCK_VARS)."""

    VARS = tuple(BLOCK_VARS)


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyFusedBlockFixed(AbstractFusedBlock):
    """golden.py's layer; the counting twin (processes/activity.py) adds the golden model's activity counts of
    each token to its ``activity`` Var."""

    COUNTS = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = FastGoldenModel(self.net)

    def layers(self, x):
        g, l = self.arith, self.l
        g.probes = {}
        self.count_start()
        x_new, h = g.layer(self.q, x.astype(np.int64)[None], self.h.astype(np.int64), l)
        self.count_add(layer_connections(l), layer_groups(l))
        self.x[:], self.h[:] = x, h
        self.r[:] = g.probes[f"l{l}.r"][0][0]
        self.y[:] = g.probes[f"l{l}.y"][0][0]
        for st in ("attn", "gate", "mlp", "down"):
            getattr(self, f"{st}_sum_sq")[:] = g.probes[f"l{l}.{st}.sum_sq"][0][0]
            getattr(self, f"{st}_inv_rms")[:] = g.probes[f"l{l}.{st}.inv_rms"][0][0]
        return x_new[0]


@implements(proc=MMFreeBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyFusedBlockFloat(AbstractFusedBlock):
    """The block of the float reference (float_model.py, folded norms): the accuracy yardstick inside the same
    graph. Probe Vars x, r, h, y hold float values."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.fm = float_model_of(proc_params, "block")
        self.lw = self.fm.layers[self.l]

    def layers(self, x):
        from lava_matmulfree.model.float_model import channel_mixer, silu, token_mixer

        cfg, rec = self.fm.cfg, {}
        o, h = token_mixer(self.lw, x[None], self.h.copy(), cfg.rms_norm_eps)
        r = x + o[0]
        out = r + channel_mixer(self.lw, r[None], cfg.rms_norm_eps, cfg.intermediate_size, rec)[0]
        self.x[:], self.r[:], self.h[:] = x, r, h
        self.y[:] = silu(rec["u"][0]) * rec["v"][0]
        return out
