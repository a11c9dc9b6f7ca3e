import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.model.float_model import act_quant_q8
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes import activity, build, float_model_of
from lava_matmulfree.processes.fused import AbstractFusedModel, float_bitlinear
from lava_matmulfree.processes.lm_head.process import PROBE_VARS, LmHead
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types


@implements(proc=LmHead, protocol=LoihiProtocol)
class SubLmHeadModel(AbstractSubProcessModel):
    """FinalNorm neurons <-> head-norm aggregator (fan-in Dense, RmsAggregator, broadcast Dense) -> Dense LM head."""

    def __init__(self, proc):
        p = proc.proc_params
        net, fm = p["net"], p.get("float_model")
        self.final_norm = build.final_norm(net, fm)
        self.fan_in, self.aggregator, self.broadcast = build.norm(
            net, net.cfg.hidden_size, "head", 0.0 if fm is None else fm.fold_head.eps_const, floating=fm is not None)
        self.lm_head = build.projection(net.lm_head, "lm_head", None if fm is None else fm.lm_head,
                                        net.fp.act_bits)
        fin = self.final_norm
        proc.in_ports.x_in.connect(fin.x_in)
        fin.sq_out.connect(self.fan_in.s_in)
        self.broadcast.a_out.connect(fin.r_in)
        fin.a_out.connect(self.lm_head.s_in)
        if proc.out_ports.spikes_out.out_connections:  # only where something receives them (a probe)
            fin.a_out.connect(proc.out_ports.spikes_out)
        self.lm_head.a_out.connect(proc.out_ports.logits_out)
        proc.vars.x.alias(fin.vars.x)
        proc.vars.sum_sq.alias(self.aggregator.vars.sum_sq)
        proc.vars.inv_rms.alias(self.aggregator.vars.inv_rms)
        activity.enable_if_asked(p, fin, self.fan_in, self.aggregator, self.broadcast, self.lm_head)


class AbstractFusedLmHead(AbstractFusedModel):
    """The head in one OS process. Its input end is the final norm's neurons (x arrives in the step the last block
    sends it), its output end the LM head connection: each step it first sends the logits of the token that arrived
    in the previous step, then receives (processes/fused.py), so a token's logits leave one step after its x
    arrived. The final norm's spikes leave in the step x arrives, and only where something receives them (a probe):
    no message is made for a port without a channel. Without a token nothing is computed and the Vars keep their
    values."""

    IN_PORTS, OUT_PORTS, VARS = ("x_in",), ("logits_out", "spikes_out"), tuple(PROBE_VARS)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        cfg = self.net.cfg
        # one silent message of each size, reused (Lava's send copies it into the channel)
        self.quiet_logits = events.silence(cfg.vocab_size, dtype=self.DTYPE)
        self.quiet_spikes = events.silence(cfg.hidden_size, dtype=self.DTYPE)
        self.buffer = self.quiet_logits
        self.spikes_wanted = None  # whether spikes_out has a receiver (known once Lava has built the ports)

    def head(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the final norm's spikes, the LM head's logits) of one token's x; sets the Vars."""
        raise NotImplementedError

    def run_spk(self):
        if self.spikes_wanted is None:
            self.spikes_wanted = bool(self.spikes_out.csp_ports)
        self.logits_out.send(self.buffer)
        x, present = events.split(self.x_in.recv())
        if not present:
            self.buffer = self.quiet_logits
            if self.spikes_wanted:
                self.spikes_out.send(self.quiet_spikes)
            return
        spikes, logits = self.head(x)
        if self.spikes_wanted:
            self.spikes_out.send(events.message(spikes, True, dtype=self.DTYPE))
        self.buffer = events.message(logits, True, dtype=self.DTYPE)


@implements(proc=LmHead, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyLmHeadFixed(AbstractFusedLmHead):
    """golden.py's head norm and the LM head's exact synaptic sums (what the LM head Dense sends; the sink's
    dendrite saturates them), through the network's packed matrix (ternary.py: 2 bits per weight, never an int
    matrix). The counting twin (processes/activity.py) counts the head as the golden model does (``head_layout``)."""

    COUNTS = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = FastGoldenModel(self.net)

    def head(self, x):
        g, net = self.arith, self.net
        self.count_start()
        x = x.astype(np.int64)[None]
        g.arrive("head.final_norm", x.shape[-1], 1)  # x arrives (activity only)
        self.x[:] = x[0]
        a = self.golden_norm(net.head, x, "head", "lm_head", var_prefix="")
        if g.activity is not None:
            g.activity.connection("head.lm_head", a, net.lm_head, g.fp.act_bits)
        logits = g.synapses(net.lm_head, a)[0]  # exact: int32 holds d x 2**(act_bits - 1)
        self.count_add(*activity.head_layout())
        return a[0], logits


@implements(proc=LmHead, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyLmHeadFloat(AbstractFusedLmHead):
    """The folded head norm and the LM head of the float reference (float_model.fold_head, lm_head)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "head")
        self.fold, self.lm_head = fm.fold_head, float_bitlinear(fm.lm_head)

    def head(self, x):
        s = float(np.sum(self.fold.squares(x)))
        r = 1.0 / np.sqrt(s / len(x) + self.fold.eps_const)
        a = act_quant_q8(self.fold.gain * x * r)
        self.x[:], self.sum_sq[:], self.inv_rms[:] = x, s, r
        return a, self.lm_head(a)
