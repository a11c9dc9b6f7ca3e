"""What the fused models share: a mixer, a block or the whole stack computed in one OS process instead of its
leaf processes (Lava's CPU runtime pays a per-step cost for every leaf process; docs/graph.md).

Where a fused model's boundary is a connection (a mixer's input synapses) it keeps the connection convention, so
it can stand in for its decomposition: what a token yields leaves one step after its spikes arrive
(``AbstractFusedMixer``). A block or the stack is bounded by neurons and sends in the step its x arrives
(``AbstractFusedLayers``). Both are undecorated bases; each precision of each process is a decorated subclass
(processes/precision.py). The fixed-point ones carry Lava's ``bit_accurate_loihi`` tag: their integers are bit for
bit those of the decomposed graph (tests/test_lava_graph.py), though they answer in fewer steps (docs/graph.md,
"Tags").

Activity (docs/graph.md, "Activity counters"): a fixed-point fused model with ``COUNTS = False`` has a counting
twin (processes/activity.py) whose golden arithmetic counts each token (``count_start``) into its ``activity``
Var (``count_add``); the integers do not change.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel

from lava_matmulfree import events
from lava_matmulfree.model.activity import ActivityRecorder
from lava_matmulfree.model.float_model import act_quant_q8


class AbstractFusedModel(PyLoihiProcessModel):
    """``net`` (the compiled network) and, for one block's models, ``layer`` with its quantised weights ``q``."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.net = proc_params["net"]
        self.l = proc_params.get("layer")
        self.q = None if self.l is None else self.net.layers[self.l]
        # the counting twin's recorder (one per model: its weight columns are counted once)
        self._rec = ActivityRecorder() if getattr(self, "COUNTS", False) else None

    def count_start(self) -> None:
        """Before a token: the golden arithmetic ``arith`` counts into a cleared recorder (twin) or not at all."""
        rec = self._rec
        if rec is not None:
            rec.connections.clear()
            rec.neurons.clear()
        self.arith.activity = rec

    def golden_norm(self, norm, v, stage: str, consumer: str, var_prefix: str | None = None) -> np.ndarray:
        """The round trip of the norm ``stage`` (a layer's, or the head's) in golden.py's arithmetic: the
        aggregator's sum of squares and inverse RMS of ``v`` into the Vars <var_prefix>sum_sq and
        <var_prefix>inv_rms (prefix ``<stage>_`` unless given); the spikes into ``consumer``."""
        g = self.arith
        name = stage if self.l is None else f"l{self.l}.{stage}"
        prefix = f"{stage}_" if var_prefix is None else var_prefix
        sq = g.norm_squares(norm, v, name)
        sum_sq = g.aggregate(sq, name)
        getattr(self, f"{prefix}sum_sq")[:] = sum_sq
        r = g.inv_rms(sum_sq, name)
        getattr(self, f"{prefix}inv_rms")[:] = r
        if g.activity is not None:
            g.count_norm(sq, r, name)
        return g.spikes_from_inv_rms(norm, v, r, name)[consumer]

    def count_add(self, connections, groups) -> None:
        """After a token: the twin adds what it counted to its ``activity`` Var, laid out as these names."""
        if self._rec is not None:
            self.activity[:] = self.activity + self._rec.vector(connections, groups)


class AbstractFusedMixer(AbstractFusedModel):
    """A mixer as a connection: spikes on ``IN_PORTS`` in (a token when ``TOKEN_PORT``'s lane is set), ``mix``'s
    result out on its one out port one step later; without a token its state keeps its value, nothing goes out."""

    TOKEN_PORT = ""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.buffer = self.silence()

    def silence(self):
        return events.silence(self.net.cfg.hidden_size, dtype=self.DTYPE)

    def mix(self, spikes: dict) -> np.ndarray:
        """The output of one token from its spikes (port -> data)."""
        raise NotImplementedError

    def float_norm(self, squares, v, gain, eps: float, stage: str) -> np.ndarray:
        """The same round trip in the float reference (folded norm: ``gain``, exact ``eps``), over len(v) channels."""
        sum_sq = np.sum(squares)
        getattr(self, f"{stage}_sum_sq")[:] = sum_sq
        inv_rms = getattr(self, f"{stage}_inv_rms")
        inv_rms[:] = 1.0 / np.sqrt(sum_sq / len(v) + eps)
        return act_quant_q8(gain * v * inv_rms[0])

    def run_spk(self):
        getattr(self, self.OUT_PORTS[0]).send(self.buffer)
        received = {p: events.split(getattr(self, p).recv()) for p in self.IN_PORTS}
        if not received[self.TOKEN_PORT][1]:
            self.buffer = self.silence()
            return
        out = self.mix({p: data for p, (data, _) in received.items()})
        self.buffer = events.message(out, True, dtype=self.DTYPE)


class AbstractFusedLayers(AbstractFusedModel):
    """Layers from ``x_in`` to ``x_out`` on the token that arrives, sent in the same step (``layers``)."""

    IN_PORTS, OUT_PORTS = ("x_in",), ("x_out",)

    def layers(self, x: np.ndarray) -> np.ndarray:
        """x after the layers, for one token's x; sets the probe Vars."""
        raise NotImplementedError

    def run_spk(self):
        x, present = events.split(self.x_in.recv())
        if not present:
            self.x_out.send(events.silence(len(x), dtype=self.DTYPE))
            return
        self.x_out.send(events.message(self.layers(x), True, dtype=self.DTYPE))


def float_bitlinear(proj):
    """A BitLinear of the float reference as its connection computes it: (W a) / s (the norm is folded into the
    spikes upstream)."""
    w, scale = proj.wt.astype(float), 1.0 / proj.s
    return lambda a: scale * (w @ a)
