"""Build the model as a Lava process graph and run it (DESIGN.md section 4).

    embedding source -> block_0 -> ... -> block_{L-1} -> final norm <-> aggregator -> ternary LM head -> sink
            ^                                                                                          |
            +---------------------------------- sampled token (decode) --------------------------------+

Each block is a hierarchical process (processes/block): decomposed into 13 leaf processes on ``sim``,
fused into one on ``sim-fused``. The graph is built for one generation (prompt length and number of
new tokens fix the schedule) and the runtime is always stopped, also on errors and Ctrl-C.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import pipeline as pl
from .quantise import QuantisedNetwork
from .runtime import LavaRunError, lava_run  # noqa: F401  (LavaRunError: part of this module's API)

BLOCK_VARS = ("x", "r", "h", "y", "attn_sum_sq", "gate_sum_sq", "mlp_sum_sq", "down_sum_sq")
HEAD_VARS = ("x",)  # the final norm's input: head.x
LEAVES_PER_BLOCK = 13  # residual; attn + gate aggregators, i/f/g/o synapses, MLGRU; mlp + down aggregators,
#                        gate/down synapses, GLU
LEAVES_PER_BLOCK_FUSED_MIXERS = 3  # residual, token mixer, channel mixer


@dataclass
class LavaGraph:
    source: object
    blocks: list
    final_norm: object
    head_aggregator: object
    lm_head: object
    sink: object
    schedule: pl.Schedule
    fused_mixers: bool = False  # decomposed blocks whose token and channel mixers run fused (sim-mixers)
    stack: object = None  # the MMFreeStack holding every layer (sim-stack), instead of blocks
    floating: bool = False  # built for the floating_pt models (sim-float)

    @property
    def fused(self) -> bool:
        return self.schedule.block_hops == pl.FUSED_BLOCK_HOPS

    def leaf_process_count(self) -> int:
        """OS processes the CPU runtime starts: source, sink, final norm + aggregator + LM head, and the
        blocks' leaves (1 fused; residual + 2 fused mixers; or 13 decomposed)."""
        if self.stack is not None:
            return 2 + 1 + 3
        per_block = 1 if self.fused else LEAVES_PER_BLOCK_FUSED_MIXERS if self.fused_mixers else LEAVES_PER_BLOCK
        return 2 + len(self.blocks) * per_block + 3

    def probe_var(self, name: str):
        """The Var behind a probe name (``l3.h``, ``l0.attn_sum_sq``, ``head.x``), its schedule offset and
        its row (the layer, for the stack's [L, n] Vars; else None)."""
        where, _, var = name.partition(".")
        if where == "head" and var in HEAD_VARS:
            return self.final_norm.vars.x, self.schedule.sink_offset - pl.HEAD_HOPS, None
        if self.stack is not None:
            from .processes.layer_stack.process import STACK_VARS

            L = self.stack.proc_params["net"].cfg.num_layers
            if where.startswith("l") and where[1:].isdigit() and int(where[1:]) < L and var in STACK_VARS:
                return getattr(self.stack.vars, var), self.schedule.block_offset(0), int(where[1:])
            raise ValueError(f"unknown probe {name!r} on the layer stack (known: l<layer>.{{{','.join(STACK_VARS)}}}, "
                             f"head.x; layers 0..{L - 1})")
        if where.startswith("l") and where[1:].isdigit() and var in BLOCK_VARS:
            l = int(where[1:])
            if l < len(self.blocks):
                return getattr(self.blocks[l].vars, var), self.blocks[l].probe_offset(var), None
        known = [f"l<layer>.{v}" for v in BLOCK_VARS] + [f"head.{v}" for v in HEAD_VARS]
        raise ValueError(f"unknown probe {name!r} (known: {', '.join(known)}; layers 0..{len(self.blocks) - 1})")


def build_graph(net: QuantisedNetwork, prompt, max_new_tokens: int, fused: bool, temperature: float = 0.0,
                top_k: int = 0, seed: int = 0, record_logits: bool = True, fused_mixers: bool = False,
                float_model=None, stack: bool = False) -> LavaGraph:
    """The process graph for one generation. ``float_model`` (a FloatModel) is carried along for the
    floating_pt models (the ``sim-float`` backend); its head is folded here."""
    from .processes.block.process import MMFreeBlock
    from .processes.embedding.process import EmbeddingSource
    from .processes.final_norm.process import FinalNorm
    from .processes.lm_head_sink.process import LmHeadSink
    from .processes.rms_aggregator.process import RmsAggregator
    from .processes.ternary_synapses.process import TernarySynapses

    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1 on the Lava backends")
    V = net.cfg.vocab_size
    if not all(0 <= t < V for t in prompt):
        raise ValueError(f"prompt token ids must lie in [0, {V})")
    if stack:  # every layer in one process and one step: the schedule of a one-"layer" pipeline
        sched = pl.Schedule(len(prompt), max_new_tokens, 1, pl.STACK_HOPS)
    else:
        sched = pl.Schedule(len(prompt), max_new_tokens, net.cfg.num_layers,
                            pl.FUSED_BLOCK_HOPS if fused else pl.BLOCK_HOPS)
    fm = None if float_model is None else (float_model if float_model.folded else float_model.fold_dual_rmsnorm())
    src = EmbeddingSource(net=net, prompt=prompt, schedule=sched, float_model=fm, name="embedding")
    if stack:
        from .processes.layer_stack.process import MMFreeStack

        blocks, layers = [], [MMFreeStack(net=net, schedule=sched)]
    else:
        blocks = [MMFreeBlock(net=net, layer=l, schedule=sched, float_model=fm) for l in range(net.cfg.num_layers)]
        layers = blocks
    fin = FinalNorm(net=net, float_model=fm, name="final_norm")
    eps_const = 0.0 if fm is None else fm.fold_head.eps_const
    agg = RmsAggregator(n=net.cfg.hidden_size, net=net, stage="head", eps_const=eps_const, name="head_aggregator")
    head = TernarySynapses(weights=net.lm_head, scale=1.0 if fm is None else 1.0 / fm.lm_head.s, name="lm_head")
    sink = LmHeadSink(net=net, schedule=sched, temperature=temperature, top_k=top_k, seed=seed,
                      record_logits=record_logits, name="sink")
    prev = src.out_ports.x_out
    for b in layers:
        prev.connect(b.in_ports.x_in)
        prev = b.out_ports.x_out
    prev.connect(fin.in_ports.x_in)
    fin.out_ports.sq_out.connect(agg.in_ports.sq_in)
    agg.out_ports.r_out.connect(fin.in_ports.r_in)
    fin.out_ports.a_out.connect(head.in_ports.a_in)
    head.out_ports.acc_out.connect(sink.in_ports.logits_in)
    sink.out_ports.token_out.connect(src.in_ports.token_in)
    return LavaGraph(src, blocks, fin, agg, head, sink, sched, fused_mixers=fused_mixers and not fused,
                     stack=layers[0] if stack else None, floating=fm is not None)


# --------------------------------------------------------------------------------------- running
@dataclass
class RunResult:
    tokens: list
    logits: np.ndarray | None  # int [num_tokens, V] when recorded
    probes: dict = field(default_factory=dict)  # name -> int array [num_tokens, ...]
    final_state: dict = field(default_factory=dict)  # l<layer>.h -> the MLGRU state after the run
    steps: int = 0
    seconds: float = 0.0
    leaf_processes: int = 0


def run_graph(graph: LavaGraph, run_cfg, probes=(), timeout: float | None = 600.0) -> RunResult:
    """Run the graph for exactly the schedule's steps; return tokens, logits and probes (labelled per token).

    The runtime is stopped on success, on model errors (which would otherwise deadlock lava), on timeouts
    and on Ctrl-C; no child process survives. Call it from the main thread (the watchdog signals it)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.monitor.process import Monitor

    sched = graph.schedule
    monitors = []
    for name in probes:
        var, offset, row = graph.probe_var(name)
        m = Monitor()
        m.probe(var, sched.total_steps)
        monitors.append((name, m, var, offset, row))
    proc = graph.source
    with lava_run(proc, timeout) as session:
        t0 = time.perf_counter()
        proc.run(condition=RunSteps(num_steps=sched.total_steps), run_cfg=run_cfg)
        seconds = time.perf_counter() - t0
        tokens = [int(round(t)) for t in np.asarray(graph.sink.tokens.get()).reshape(-1)]
        logits = None
        if graph.sink.proc_params["record_logits"]:
            logits = np.asarray(graph.sink.logits.get())
            if not graph.floating:
                logits = np.rint(logits).astype(np.int64)
        steps = np.asarray(sched.entries())
        out = {}
        for name, m, var, offset, row in monitors:
            data = m.get_data()[var.process.name][var.name]  # [steps, ...]; row i = after step i+1
            rows = np.asarray(data)[steps + offset - 1]
            if row is not None:
                rows = rows.reshape((len(steps),) + tuple(var.shape))[:, row]
            out[name] = rows if graph.floating else np.rint(rows).astype(np.int64)
        final = {}
        hs = [np.asarray(b.h.get()) for b in graph.blocks]  # Var.get moves one element per message
        if graph.stack is not None:
            hs = list(np.asarray(graph.stack.h.get()).reshape(graph.stack.h.shape))
        for l, h in enumerate(hs):
            final[f"l{l}.h"] = h if graph.floating else np.rint(h).astype(np.int64)
        session.ok()
    return RunResult(tokens, logits, out, final, sched.total_steps, seconds, graph.leaf_process_count())
