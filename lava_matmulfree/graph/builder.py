"""Build the model as an event-driven Lava process graph (docs/graph.md); graph/runner.py runs it.

    embedding source -> block_0 -> ... -> block_{L-1} -> head (final norm <-> head aggregator -> LM head) -> sink
            ^                                                                                                |
            +------------------------------ sampled token (decode) ------------------------------------------+

Tokens carry their own presence (the token lane, events.py); connections are Lava's Dense (processes/
connections.py). The prompt enters through the source's Vars, so one graph (and one runtime) serves many
requests (graph/runner.py keeps the runtime alive between them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lava_matmulfree.config import FLOAT_LAVA_BACKENDS  # noqa: F401  (re-exported: the floating_pt models' backends)
from lava_matmulfree.errors import BackendError
from lava_matmulfree.graph import runtime  # noqa: F401  (its fork hooks: Lava's workers of any graph built here,
#                                           run by hand too, share the parent's pages; docs/graph.md, "Memory")
from lava_matmulfree.model.quantise import QuantisedNetwork

HEAD_VARS = ("x",)  # the final norm's input: head.x
HEAD_AGGREGATOR_VARS = ("sum_sq", "inv_rms")  # the head aggregator's: head.sum_sq, head.inv_rms
HEAD_PORTS = ("spikes", "logits")  # the final norm's graded spikes and the LM head's output
#: Block models: name -> (connection hops a token spends in a block, probe point -> hops after it enters).
#: A probe of a Var reads it these structural latencies after a token entered the graph (processes/token_probe).
BLOCK_TIMING = {
    "decomposed": (12, {"x": 0, "attn_sum_sq": 1, "attn_inv_rms": 1, "h": 3, "gate_sum_sq": 4, "gate_inv_rms": 4,
                        "r": 6, "mlp_sum_sq": 7, "mlp_inv_rms": 7, "y": 9, "down_sum_sq": 10, "down_inv_rms": 10}),
    "mixers": (6, {"x": 0, "attn_sum_sq": 1, "attn_inv_rms": 1, "h": 2, "gate_sum_sq": 2, "gate_inv_rms": 2, "r": 3,
                   "mlp_sum_sq": 4, "mlp_inv_rms": 4, "y": 5, "down_sum_sq": 5, "down_inv_rms": 5}),
    "fused": (0, {v: 0 for v in ("x", "r", "h", "y", "attn_sum_sq", "gate_sum_sq", "mlp_sum_sq", "down_sum_sq",
                                 "attn_inv_rms", "gate_inv_rms", "mlp_inv_rms", "down_inv_rms")}),
    "stack": (0, {"x": 0, "r": 0, "h": 0}),
}
#: The block models each Lava backend selects (BLOCK_TIMING keys).
GRAPH_KIND = {"sim": "decomposed", "sim-mixers": "mixers", "sim-fused": "fused", "sim-stack": "stack",
              "sim-float": "fused", "sim-float-decomposed": "decomposed", "loihi2": "decomposed"}
#: Head models (processes/lm_head): name -> (steps from x entering the head to its logits reaching the sink,
#: probe point -> steps after x enters the head). Decomposed: final norm -> fan-in -> aggregator -> broadcast ->
#: final norm -> LM head connection -> sink (3 connection hops); fused: one process whose output end is the LM head
#: connection (1 hop).
HEAD_TIMING = {"decomposed": (3, {"x": 0, "sum_sq": 1, "inv_rms": 1}),
               "fused": (1, {"x": 0, "sum_sq": 0, "inv_rms": 0})}
#: The head models the backends of each block kind select (select_sub_proc_model decides both).
HEAD_KIND = {"decomposed": "decomposed", "mixers": "decomposed", "fused": "fused", "stack": "fused"}
#: Leaf processes of a block: residual, 2 x (fan-in, aggregator, broadcast); token mixer: i, f, g, o, MLGRU,
#: gate fan-in, aggregator, broadcast; channel mixer: gate_u, gate_v, GLU, down fan-in, aggregator, broadcast, down.
LEAVES_PER_BLOCK = {"decomposed": 1 + 6 + 8 + 7, "mixers": 1 + 6 + 2, "fused": 1}
HOST_LEAVES = 2  # source, sink
MIN_CAPACITY, CAPACITY_WHY = 2, "a prompt token and a new one"  # the tokens a graph's buffers hold at least
#: Leaf processes of the head: final norm, fan-in, aggregator, broadcast, LM head; or the fused head.
HEAD_LEAVES = {"decomposed": 5, "fused": 1}
#: Messages the token tap (Lava's Extractor, one per step) holds before the graph waits for the host to read.
TAP_BUFFER = 64


STREAM_TAPS = 1  # the leaves a stream graph adds: Lava's Extractor of the sampled tokens (LavaGraph.token_tap)


def leaf_processes(kind: str, num_layers: int, extra: int = 0, head: str | None = None) -> int:
    """Leaf processes (OS processes on the CPU backends) of a graph of block models ``kind`` with ``num_layers``
    layers and head models ``head`` (None: those of ``HEAD_KIND``), plus ``extra`` (a token tap, probes); known
    without building the graph."""
    blocks = 1 if kind == "stack" else num_layers * LEAVES_PER_BLOCK[kind]
    return blocks + HOST_LEAVES + HEAD_LEAVES[head or HEAD_KIND[kind]] + extra


def loop_depth(kind: str, num_layers: int, head: str | None = None) -> int:
    """Steps from the source sending a token to it sending the next generated one (LavaGraph.loop_depth): the
    blocks' hops and the head's (``head`` None: the head models of ``HEAD_KIND``)."""
    return num_layers * BLOCK_TIMING[kind][0] + HEAD_TIMING[head or HEAD_KIND[kind]][0]


def _steps(n: int) -> str:
    return f"{n} step" + ("" if n == 1 else "s")


def probe_names(probes) -> tuple:
    """``probes`` as a tuple of names (one name alone is one probe); anything but strings is refused."""
    if isinstance(probes, str):
        return (probes,)
    try:
        names = tuple(probes)
    except TypeError:
        raise ValueError(f"probes must be a sequence of probe names, got {type(probes).__name__}") from None
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise ValueError(f"probes[{i}] is {n!r} ({type(n).__name__}), not a probe name (e.g. 'l0.h')")
    return names



def check_probe_names(names, num_layers: int, stack: bool = False) -> None:
    """A ValueError naming the first of ``names`` that no graph of this kind records (every kind's but the
    stack's, which keeps no per-block ports and fewer Vars: ``stack``), with the names it knows; checked before a
    run (the reference backend, the probe command) as a built graph checks them."""
    from lava_matmulfree.processes.block.process import BLOCK_VARS
    from lava_matmulfree.processes.layer_stack.process import STACK_VARS

    layer_vars = STACK_VARS if stack else (*BLOCK_VARS, "x_out")
    head = HEAD_VARS + HEAD_AGGREGATOR_VARS + HEAD_PORTS
    for name in names:
        where, _, var = name.partition(".")
        layer = int(where[1:]) if where.startswith("l") and where[1:].isdigit() else -1
        if (where == "head" and var in head) or name == "embedding.x_out" or (
                0 <= layer < num_layers and var in layer_vars):
            continue
        known = [f"l<layer>.{v}" for v in layer_vars] + [f"head.{v}" for v in head] + ["embedding.x_out"]
        raise ValueError(f"unknown probe {name!r} (known: {', '.join(known)}; layers 0..{num_layers - 1})")


@dataclass
class LavaGraph:
    source: object
    blocks: list
    sink: object
    kind: str  # a BLOCK_TIMING key
    num_layers: int
    capacity: int
    head: object = None  # the LmHead (processes/lm_head), or None where the head is wired from its leaves:
    final_norm: object = None  # the FinalNorm,
    head_norm: tuple = None  # (fan-in, aggregator, broadcast),
    lm_head: object = None  # the LM head Dense
    head_kind: str = "decomposed"  # a HEAD_TIMING key: the head models the run config selects
    stack: object = None  # the MMFreeStack holding every layer (sim-stack), instead of blocks
    floating: bool = False  # built for the floating_pt models (sim-float)
    token_tap: object = None  # Lava's Extractor on the sink's tokens: they reach the host while the graph runs

    @property
    def block_hops(self) -> int:
        return BLOCK_TIMING[self.kind][0]

    @property
    def loop_depth(self) -> int:
        """Steps from the source sending a token to it sending the next generated one."""
        return loop_depth(self.kind, self.num_layers, self.head_kind)

    def leaf_process_count(self) -> int:
        return leaf_processes("stack" if self.stack is not None else self.kind, self.num_layers,
                              STREAM_TAPS * (self.token_tap is not None), self.head_kind)

    def probe_target(self, name: str):
        """What a probe name records (docs/graph.md, "Streaming, sessions and probes"): ``("var", Var, latency,
        row)``, the Var read ``latency`` steps after a token enters the graph (``row``: the layer of the stack's
        [L, n] Vars, else None), or ``("port", OutPort)``, the port's messages that carry a token."""
        where, _, var = name.partition(".")
        B, offsets = BLOCK_TIMING[self.kind]
        L = self.num_layers
        head_in = L * B  # steps from the source to the head
        h = self.head
        if where == "head" and var in HEAD_VARS + HEAD_AGGREGATOR_VARS:
            owner = h if h is not None else self.final_norm if var in HEAD_VARS else self.head_norm[1]
            return "var", getattr(owner.vars, var), head_in + HEAD_TIMING[self.head_kind][1][var], None
        if where == "head" and var in HEAD_PORTS:
            if h is not None:
                return "port", {"spikes": h.spikes_out, "logits": h.logits_out}[var]
            return "port", {"spikes": self.final_norm.a_out, "logits": self.lm_head.a_out}[var]
        if name == "embedding.x_out":
            return "port", self.source.x_out
        check_probe_names([name], L, stack=self.stack is not None)
        layer = int(where[1:])
        if var == "x_out":
            return "port", self.blocks[layer].x_out
        if self.stack is not None:
            return "var", getattr(self.stack.vars, var), 0, layer
        return "var", getattr(self.blocks[layer].vars, var), layer * B + offsets[var], None

    @classmethod
    def of(cls, process, kind: str = "decomposed") -> "LavaGraph":
        """The graph a hand-wired process belongs to (source, MMFreeBlock layers or an MMFreeStack, an LmHead or the
        head's leaves: final norm, head norm, LM head; sink; graph.wiring.parts), for the calls a built graph takes.
        ``kind``: the block models expected (a GraphRunner takes them, and the head's, from its run config)."""
        from lava_matmulfree.graph.wiring import parts

        found = parts(process)
        kind = "stack" if found["stack"] is not None else kind
        return cls(kind=kind, head_kind=HEAD_KIND[kind] if found.get("head") is not None else "decomposed", **found)

    def follow(self, run_cfg):
        """Check ``run_cfg`` (graph.wiring.check_run_config: a mixed selection is refused with one line) and take
        the block and head models it selects as the graph's kinds, so that steps and probe read-out follow the
        models Lava will build, whatever the graph was built for. Returns the selection."""
        from lava_matmulfree.graph import wiring

        selection = wiring.check_run_config(self.source, run_cfg)
        wiring.check_precision(self, selection)
        kind = wiring.predicted_kind(self.blocks, self.stack, selection)
        compiled = wiring.selected_kind(self.blocks, self.stack) if self.stack is None else None
        if compiled is not None and compiled != kind:  # Lava compiles a process once
            raise BackendError(f"{wiring.config_name(run_cfg)} selects {kind} block models, but Lava already "
                               f"compiled this graph with {compiled} ones; build a new graph for it")
        self.kind, self.head_kind = kind, wiring.predicted_head_kind(self.head, selection)
        return selection

    def steps_needed(self, prompt_len: int, max_new_tokens: int, run_cfg=None) -> int:
        """Steps a request needs until the sink chose its last token: the prompt back to back, then a loop depth per
        new token (``sink.generated`` then equals ``max_new_tokens``). The loop depth is that of the block models
        ``run_cfg`` selects (:meth:`follow`); without one, that of the graph's kind (as built or last followed)."""
        from lava_matmulfree.utils.limits import whole_number

        prompt_len = whole_number(prompt_len, "prompt_len", 1)
        max_new_tokens = whole_number(max_new_tokens, "max_new_tokens", 0)
        if run_cfg is not None:
            self.follow(run_cfg)
        return prompt_len + max_new_tokens * self.loop_depth

    def tokens(self) -> list:
        """The tokens the sink chose for the current request, as ints (a running or just-run graph); one clear
        error where it has not chosen all of them yet (the run ended too early: fewer steps than
        ``steps_needed(..., run_cfg=...)``), instead of the -1 of the places still empty."""
        sink = self.sink
        if sink.runtime is None:
            raise BackendError("the graph has not run yet: run it for graph.steps_needed(prompt_len, max_new_tokens, "
                               "run_cfg=<the run config>) steps first, or with GraphRunner")
        wanted = int(np.asarray(sink.max_new_tokens.get()).reshape(-1)[0])
        chosen = int(np.asarray(sink.generated.get()).reshape(-1)[0])
        if chosen < wanted:
            from lava_matmulfree.graph.wiring import selected_head_kind, selected_kind

            compiled = (selected_kind(self.blocks, self.stack) or self.kind,
                        selected_head_kind(self.head) or self.head_kind)
            why = "the run stopped before the sink was done"
            if compiled != (self.kind, self.head_kind):
                why = (f"the steps were counted for {self.kind} block models ({_steps(self.loop_depth)} a token), "
                       f"but Lava selected {compiled[0]} ones "
                       f"({_steps(loop_depth(compiled[0], self.num_layers, compiled[1]))} a token)")
            raise BackendError(f"the sink has chosen {chosen} of the request's {wanted} tokens: {why}; count the "
                               "steps with graph.steps_needed(prompt_len, max_new_tokens, run_cfg=<the run config>), "
                               "or run the graph with GraphRunner, which runs until the sink is done")
        return [int(round(float(t))) for t in np.asarray(sink.tokens.get()).reshape(-1)[:wanted]]

    def token_rows(self, name: str, rows, lane) -> np.ndarray:
        """A Monitor's per-step ``rows`` of the Var a probe ``name`` records, as one row per token: ``lane`` is a
        Monitor's recording of ``source.x_out`` over the same steps (graph.wiring.token_rows)."""
        from lava_matmulfree.graph.wiring import token_rows

        target = self.probe_target(name)
        if target[0] != "var":
            raise ValueError(f"{name} is a port: a Monitor of a port already holds one row per step it sent")
        out = token_rows(rows, lane, target[2])
        return out if target[3] is None else out[:, target[3]]

    def set_request(self, prompt, max_new_tokens: int, started: bool | None = None, *, temperature=None,
                    top_k=None, seed=None) -> None:
        """Put a request into the source's and the sink's Vars at once (``Var.set`` once the runtime runs, else
        the initial values; ``started`` None: whether the source has a runtime); sampling left None stays."""
        from lava_matmulfree.processes.embedding.process import request_values
        from lava_matmulfree.processes.lm_head_sink.process import check_sampling

        started = self.source.runtime is not None if started is None else started
        prompt = request_values(prompt, max_new_tokens, self.capacity, self.sink.proc_params["vocab_size"], "request")
        P = len(prompt)
        padded = np.zeros(self.capacity, dtype=np.int64)
        padded[:P] = prompt
        values = [(self.source.prompt, padded), (self.source.prompt_len, [P]), (self.source.max_new_tokens,
                  [max_new_tokens]), (self.source.count, [0]), (self.sink.prompt_len, [P]),
                  (self.sink.max_new_tokens, [max_new_tokens]), (self.sink.seen, [0]), (self.sink.generated, [0])]
        if not started:  # on a running graph the sink empties its tokens itself when the request's first logits come
            values.append((self.sink.tokens, np.full(self.capacity, -1)))
        sampling = {"temperature": temperature, "top_k": top_k, "seed": seed}
        check_sampling(0.0 if temperature is None else temperature, 0 if top_k is None else top_k, "request")
        values += [(getattr(self.sink, k), [v]) for k, v in sampling.items() if v is not None]
        for var, value in values:
            value = np.asarray(value)
            if started:
                var.set(value)
            else:
                var.init = value


def build_graph(net: QuantisedNetwork, kind: str, capacity: int, temperature: float = 0.0, top_k: int = 0,
                seed: int = 0, record_logits: bool = True, float_model=None, stream: bool = False,
                head_kind: str | None = None) -> LavaGraph:
    """The process graph; ``kind`` says which block models the run config will select (``decomposed``,
    ``mixers``, ``fused`` or ``stack``: it fixes only the probe read-back and the step estimate; a GraphRunner
    takes them, and the head's, from its run config). ``float_model`` (a FloatModel) is carried along for the
    floating_pt models (the ``sim-float`` backends); its head is folded. ``stream``: tap the sink's tokens with
    Lava's Extractor (host I/O), so a runner hands each token to the caller in the step it is chosen.
    ``head_kind``: the head models expected (None: ``HEAD_KIND[kind]``)."""
    from lava_matmulfree.processes import build
    from lava_matmulfree.processes.block.process import MMFreeBlock
    from lava_matmulfree.processes.embedding.process import EmbeddingSource
    from lava_matmulfree.processes.lm_head.process import LmHead
    from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink

    from lava_matmulfree.utils.limits import check_generation, whole_number

    if not isinstance(net, QuantisedNetwork):
        raise BackendError(f"build_graph needs the compiled network (a QuantisedNetwork), got {type(net).__name__}")
    if kind not in BLOCK_TIMING:
        raise ValueError(f"unknown graph kind {kind!r} (known: {', '.join(BLOCK_TIMING)})")
    capacity = whole_number(capacity, "capacity", MIN_CAPACITY, CAPACITY_WHY)
    check_generation(net.cfg, 0, capacity, "capacity")  # before its buffers are allocated
    if head_kind is not None and head_kind not in HEAD_TIMING:
        raise ValueError(f"unknown head kind {head_kind!r} (known: {', '.join(HEAD_TIMING)})")
    fm = None if float_model is None else (float_model if float_model.folded else float_model.fold_dual_rmsnorm())
    if fm is None:
        from lava_matmulfree.model.golden_fast import warm_kernels

        warm_kernels(net)  # before Lava forks its workers: they share the compiled kernels (docs/graph.md, "Memory")
    cfg = net.cfg
    src = EmbeddingSource(embed=net.embed if fm is None else fm.embeddings, capacity=capacity, name="embedding")
    if kind == "stack":
        from lava_matmulfree.processes.layer_stack.process import MMFreeStack

        blocks, layers = [], [MMFreeStack(net=net)]
    else:
        blocks = [MMFreeBlock(net=net, layer=l, float_model=fm) for l in range(cfg.num_layers)]
        layers = blocks
    head = LmHead(net=net, float_model=fm, name="head")
    # the sink reads its scales from the network; float logits have none
    scales = dict(vocab_size=cfg.vocab_size, logit_scale=1.0, accumulator_bits=0) if fm else dict(net=net)
    sink = LmHeadSink(capacity=capacity, temperature=temperature, top_k=top_k, seed=seed, record_logits=record_logits,
                      name="sink", **scales)
    prev = src.x_out
    for b in layers:
        prev.connect(b.x_in)
        prev = b.x_out
    prev.connect(head.x_in)
    head.logits_out.connect(sink.logits_in)
    sink.token_out.connect(src.token_in)
    tap = None
    if stream:
        from lava.proc.io.extractor import Extractor

        tap = Extractor(shape=(2,), buffer_size=TAP_BUFFER)
        sink.token_out.connect(tap.in_port)
    return LavaGraph(src, blocks, sink, kind, cfg.num_layers, capacity, head=head,
                     head_kind=head_kind or HEAD_KIND[kind], stack=layers[0] if kind == "stack" else None,
                     floating=fm is not None, token_tap=tap)
