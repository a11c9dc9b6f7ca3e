"""What a Lava user wiring or running the graph by hand needs besides Lava (docs/graph.md, "Wiring and running
by hand"): the graph's parts found from any of its processes, the check that a run config selects one consistent
set of models, the block models and leaf processes Lava really built, and per-token rows of a Monitor.

Model selection is Lava's own: each process's models are found as Lava's compiler finds them and the run
config's ``select`` chooses, so a check here sees what the compiler will select for the processes that exist
before compilation (the graph's top level; the mixers inside a block through one stand-in each).
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.errors import BackendError

#: The project's configs: named in every refusal.
HW_CONFIG = "lava_matmulfree.graph.backends.loihi2_run_config()"
SIM_CONFIG = "lava_matmulfree.graph.backends.lava_run_config(backend) or Loihi2SimCfg(select_tag=\"fixed_pt\")"
LISTED = 3  # names listed per kind of problem in a refusal


# ------------------------------------------------------------------------------------ model selection
UNTAGGED_HOST_IO = ("lava.proc.io.extractor.Extractor", "lava.proc.io.injector.Injector")  # their models: no tag


class Selection:
    """The models a run config selects, process by process, as Lava's compiler selects them: a process named in
    the config's ``exception_proc_model_map`` (an instance key) gets its model, every other the one its class
    selects (cached per class)."""

    def __init__(self, run_cfg):
        self.run_cfg = run_cfg
        self._models: dict = {}
        self._chosen: dict = {}

    def models(self, proc) -> list:
        """Every model Lava finds for ``proc`` (the modules next to its process.py)."""
        from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs

        cls = type(proc)
        if cls not in self._models:
            self._models[cls] = ProcGroupDiGraphs._find_proc_models(proc)
        return self._models[cls]

    def model(self, proc):
        """The model the run config selects for ``proc``; Lava's refusal as one BackendError line."""
        exceptions = exception_map(self.run_cfg)
        if proc in exceptions:  # Lava's compiler looks up the instance first (ProcGroupDiGraphs._map_proc_to_model)
            return exceptions[proc]
        cls = type(proc)
        if cls not in self._chosen:
            try:
                self._chosen[cls] = self.run_cfg.select(proc, self.models(proc))
            except NameError:  # Lava's hardware configs name lava-loihi's classes
                raise BackendError(f"{config_name(self.run_cfg)} cannot select models here: a hardware run config "
                                   "needs Intel's lava-loihi, which is not installed; on the CPU simulator run it "
                                   f"with {SIM_CONFIG}") from None
            except (AssertionError, NotImplementedError) as e:
                hint = ""
                if f"{cls.__module__}.{cls.__name__}" in UNTAGGED_HOST_IO:  # a stream's tap (graph.builder)
                    hint = (f"; Lava's host I/O models carry no tag: name one in exception_proc_model_map (e.g. "
                            f"{{{cls.__name__}: PyLoihi{cls.__name__}Model}}, as graph.backends.lava_run_config "
                            "does), or build the graph with stream=False")
                raise BackendError(f"{config_name(self.run_cfg)} selects no model for {proc.name} "
                                   f"({cls.__name__}): {' '.join(str(e).split())}{hint}") from None
        return self._chosen[cls]


def config_name(run_cfg) -> str:
    """The run config as a user would write it, its exception map included (process classes or instances)."""
    tag = getattr(run_cfg, "select_tag", None)
    sub = getattr(run_cfg, "select_sub_proc_model", False)
    exceptions = exception_map(run_cfg)
    mapped = ", ".join(f"{_key_name(k)}: {getattr(m, '__name__', m)}" for k, m in exceptions.items())
    return (f"{type(run_cfg).__name__}(select_tag={tag!r}, select_sub_proc_model={sub}"
            + (f", exception_proc_model_map={{{mapped}}}" if mapped else "") + ")")


def exception_map(run_cfg) -> dict:
    """A run config's exception_proc_model_map ({} where it has none)."""
    return getattr(run_cfg, "exception_proc_model_map", None) or {}


def _key_name(key) -> str:
    """An exception map's key: a process class by its name, one process by its name and class."""
    return key.__name__ if isinstance(key, type) else f"{key.name} ({type(key).__name__})"


def is_sub_model(model) -> bool:
    from lava.magma.core.model.sub.model import AbstractSubProcessModel

    return isinstance(model, type) and issubclass(model, AbstractSubProcessModel)


def is_nc_model(model) -> bool:
    from lava.magma.core import run_configs  # its AbstractNcProcessModel is lava-loihi's, or a stand-in without it

    return isinstance(model, type) and issubclass(model, run_configs.AbstractNcProcessModel)


def precision(model) -> str | None:
    """'float' (floating_pt), 'fixed' (fixed_pt or bit_accurate_loihi) or None (untagged: host I/O, a Monitor,
    a SubProcessModel)."""
    tags = set(getattr(model, "tags", ()) or ())
    if "floating_pt" in tags:
        return "float"
    return "fixed" if tags & {"fixed_pt", "bit_accurate_loihi"} else None


def _names(procs) -> str:
    names = [p.name for p in procs]
    return ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


def _neuron_classes():
    from lava_matmulfree.processes.block.process import MMFreeBlock
    from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
    from lava_matmulfree.processes.layer_stack.process import MMFreeStack
    from lava_matmulfree.processes.lm_head.process import LmHead
    from lava_matmulfree.processes.neuron import MicrocodedNeurons
    from lava_matmulfree.processes.token_mixer.process import TokenMixer

    return (MicrocodedNeurons, MMFreeBlock, MMFreeStack, TokenMixer, ChannelMixer, LmHead)


def check_run_config(process, run_cfg) -> Selection:
    """Refuse, with one line naming the project's config, a run config that would select a mixed graph for the
    graph ``process`` belongs to; returns the selection otherwise.

    Mixed: floating_pt models next to fixed-point ones (e.g. Lava's float Dense between integer neurons); and on a
    hardware config (Loihi2HwCfg), a hierarchical process given a fused Python model instead of its decomposition,
    a process given a Python model where its NC model exists, the layer stack (no chip mapping), or an exception
    map that puts a chip process on a Python model. Processes are compiled once, so nothing here compiles: the
    graph stays usable."""
    from lava.magma.compiler.compiler_graphs import find_processes
    from lava.magma.core.model.py.model import AbstractPyProcessModel
    from lava.magma.core.run_configs import AbstractLoihiHWRunCfg

    from lava_matmulfree.processes.layer_stack.process import MMFreeStack

    sel = Selection(run_cfg)
    procs = sorted(find_processes(process), key=lambda p: p.name)
    chosen = {p: sel.model(p) for p in procs}
    # the leaves of a decomposed head (its neurons and norm connections) are checked through stand-ins
    chosen.update({leaf: sel.model(leaf) for p, m in list(chosen.items()) if is_sub_model(m)
                   for leaf in _head_stand_ins(p)})
    chosen = dict(sorted(chosen.items(), key=lambda pm: pm[0].name))
    by_precision: dict = {}
    for p, m in chosen.items():
        by_precision.setdefault(precision(m), []).append(p)
    problems = []
    if by_precision.get("float") and by_precision.get("fixed"):
        problems.append(f"floating_pt models for {_names(by_precision['float'])} next to fixed-point models for "
                        f"{_names(by_precision['fixed'])}")
    hw = isinstance(run_cfg, AbstractLoihiHWRunCfg)
    if hw:
        fused = [p for p, m in chosen.items() if not is_sub_model(m) and any(map(is_sub_model, sel.models(p)))]
        if fused:
            problems.append(f"fused Python models for {_names(fused)} (not decomposed: select_sub_proc_model=True)")
        python = [p for p, m in chosen.items() if not is_nc_model(m) and any(map(is_nc_model, sel.models(p)))]
        if python:
            problems.append(f"Python models for {_names(python)} where their NC models exist")
        stack = [p for p in chosen if isinstance(p, MMFreeStack)]
        if stack:
            problems.append(f"the layer stack {_names(stack)} (it has no chip mapping: build MMFreeBlock layers)")
        mapped = [_key_name(c) for c, m in exception_map(run_cfg).items()
                  if issubclass(c if isinstance(c, type) else type(c), _neuron_classes()) and isinstance(m, type)
                  and issubclass(m, AbstractPyProcessModel)]
        if mapped:
            problems.append(f"an exception map that puts {', '.join(mapped)} on Python models")
    if problems:
        raise BackendError(f"{config_name(run_cfg)} selects a mixed graph: {'; '.join(problems)}; run it with "
                           f"{HW_CONFIG if hw else SIM_CONFIG}")
    return sel


def _head_stand_ins(proc) -> list:
    """For an LmHead: stand-ins of the neurons and norm connections its SubProcessModel will build (never wired to
    the graph; not the LM head's V x d matrix), so that a run config's choice for them is seen before compilation."""
    from lava_matmulfree.processes import build
    from lava_matmulfree.processes.lm_head.process import LmHead

    if not isinstance(proc, LmHead):
        return []
    net = proc.proc_params["net"]
    return [build.final_norm(net), *build.norm(net, net.cfg.hidden_size, "head")]


# ------------------------------------------------------------------------------------ block models and leaves
def kind_from_models(block_model, mixer_models) -> str:
    """The graph.builder.BLOCK_TIMING key of a block's model and its two mixers' models."""
    if not is_sub_model(block_model):
        return "fused"
    subs = [is_sub_model(m) for m in mixer_models]
    if all(subs):
        return "decomposed"
    if not any(subs):
        return "mixers"
    raise BackendError("the run config decomposes one mixer of a block and fuses the other: no timing of "
                       "graph.builder.BLOCK_TIMING describes that graph")


def predicted_kind(blocks, stack, selection: Selection) -> str:
    """The block models ``selection`` will give (before compilation; a stand-in mixer each, never connected)."""
    if stack is not None:
        return "stack"
    from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
    from lava_matmulfree.processes.token_mixer.process import TokenMixer

    mixer_models = None

    def kind(b):
        nonlocal mixer_models
        block_model = selection.model(b)
        if not is_sub_model(block_model):
            return "fused"
        if mixer_models is None:  # selected by their class (a stand-in is no map's key): one pair serves every block
            p = b.proc_params
            mixer_models = [selection.model(cls(net=p["net"], layer=p["layer"], float_model=p.get("float_model"),
                                                 name=f"{b.name}.{what}"))
                            for cls, what in ((TokenMixer, "token_mixer"), (ChannelMixer, "channel_mixer"))]
        return kind_from_models(block_model, mixer_models)

    return _one_kind(blocks, [kind(b) for b in blocks], "will select")


def selected_kind(blocks, stack) -> str | None:
    """The block models Lava selected when it compiled the graph (None before)."""
    from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
    from lava_matmulfree.processes.token_mixer.process import TokenMixer

    if stack is not None:
        return "stack"
    if any(b.model_class is None for b in blocks):
        return None
    return _one_kind(blocks, [kind_from_models(b.model_class, [p.model_class for p in b.procs
                                                              if isinstance(p, (TokenMixer, ChannelMixer))])
                              for b in blocks], "selected")


def _one_kind(blocks, kinds: list, verb: str) -> str:
    """The block models' kind, which must be every block's: the graph's step schedule (how long a token takes to
    cross a block, hence when the sink and every probe reads it) is one kind's."""
    if len(set(kinds)) > 1:
        named = ", ".join(f"{b.name}: {k}" for b, k in zip(blocks, kinds))
        raise BackendError(f"the run config {verb} different models for the blocks ({named}); a graph's timing is "
                           "one kind's: map every block alike (exception_proc_model_map keyed by the MMFreeBlock "
                           "class, not by one block)")
    return kinds[0]


def predicted_head_kind(head, selection: Selection) -> str:
    """The head models (graph.builder.HEAD_TIMING key) ``selection`` will give an LmHead (``head``; None: a head
    wired from its leaves, decomposed)."""
    if head is None:
        return "decomposed"
    return "decomposed" if is_sub_model(selection.model(head)) else "fused"


def selected_head_kind(head) -> str | None:
    """The head models Lava selected for an LmHead when it compiled the graph (None before, or without one)."""
    if head is None or head.model_class is None:
        return None
    return "decomposed" if is_sub_model(head.model_class) else "fused"


def built_leaves(process) -> list | None:
    """The leaf processes Lava built for the runtime ``process`` runs in (after sub-model selection; probes and
    host I/O included), or None before it has one."""
    runtime = getattr(process, "runtime", None)
    executable = getattr(runtime, "_executable", None)
    return None if executable is None else list(executable.process_list)


# ------------------------------------------------------------------------------------ a Monitor's rows per token
def token_rows(rows, lane, latency: int = 0) -> np.ndarray:
    """The rows of a Monitor's recording that belong to tokens: ``rows`` [steps, ...] (a Var, one row per step);
    ``lane`` the token lane of a reference port in the same steps (a Monitor's recording of an OutPort, [steps,
    n + 1], whose last column is the lane; or the lane itself, [steps]); ``latency`` the steps from that port to
    the Var (graph.builder.BLOCK_TIMING; ``LavaGraph.probe_target`` gives it). Row k is the k-th token's;
    tokens whose value lies beyond the recording are left out. The one-liner:
    ``rows[np.flatnonzero(lane[:, -1]) + latency]``."""
    rows, lane = np.asarray(rows), np.asarray(lane)
    if lane.ndim == 2:
        lane = lane[:, -1]
    if lane.shape[0] != rows.shape[0]:
        raise ValueError(f"the lane has {lane.shape[0]} steps, the rows {rows.shape[0]}: record both for the same "
                         "steps")
    steps = np.flatnonzero(lane) + int(latency)
    return rows[steps[steps < rows.shape[0]]]


# ------------------------------------------------------------------------------------ a graph wired by hand
def _only(procs, cls, what: str):
    found = [p for p in procs if isinstance(p, cls)]
    if len(found) != 1:
        raise ValueError(f"a graph holds one {what} ({cls.__name__}); found {len(found)}")
    return found[0]


def _receivers(out_port) -> list:
    return [p.process for p in out_port.out_connections]


def parts(process) -> dict:
    """The parts of a model graph wired by hand from the project's processes (source, MMFreeBlock layers or an
    MMFreeStack, an LmHead or the head's leaves: final norm, head norm, LM head connection; sink), found from any
    process of it: the fields of graph.builder.LavaGraph but its kinds. One clear error for a graph that lacks a
    part."""
    from lava.magma.compiler.compiler_graphs import find_processes
    from lava.proc.io.extractor import Extractor

    from lava_matmulfree.processes.block.process import MMFreeBlock
    from lava_matmulfree.processes.embedding.process import EmbeddingSource
    from lava_matmulfree.processes.layer_stack.process import MMFreeStack
    from lava_matmulfree.processes.lm_head.process import LmHead
    from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink

    procs = find_processes(process)
    source = _only(procs, EmbeddingSource, "embedding source")
    sink = _only(procs, LmHeadSink, "LM-head sink")
    heads = [p for p in procs if isinstance(p, LmHead)]
    blocks = sorted((p for p in procs if isinstance(p, MMFreeBlock)), key=lambda b: b.proc_params["layer"])
    stacks = [p for p in procs if isinstance(p, MMFreeStack)]
    if bool(blocks) == bool(stacks) or len(stacks) > 1:
        raise ValueError("a graph's layers are MMFreeBlock processes (one per layer) or one MMFreeStack")
    head_parts = dict(head=_only(procs, LmHead, "head")) if heads else _head_leaves(procs, sink)
    capacity = source.proc_params["capacity"]
    if sink.proc_params["capacity"] != capacity:
        raise ValueError(f"the source holds {capacity} tokens a request, the sink {sink.proc_params['capacity']}")
    layers = blocks or stacks
    net = layers[0].proc_params["net"]
    floating = layers[0].proc_params.get("float_model") is not None
    check_sink(sink, net, floating)
    taps = [p for p in _receivers(sink.token_out) if isinstance(p, Extractor)]
    return dict(source=source, blocks=blocks, sink=sink, num_layers=net.cfg.num_layers if stacks else len(blocks),
                capacity=capacity, stack=stacks[0] if stacks else None, floating=floating,
                token_tap=taps[0] if taps else None, **head_parts)


def _head_leaves(procs, sink) -> dict:
    """A head wired from its leaves: final norm <-> fan-in Dense, aggregator, broadcast Dense; LM head Dense."""
    from lava_matmulfree.processes.final_norm.process import FinalNorm

    final_norm = _only(procs, FinalNorm, "final norm")
    try:
        (fan,) = _receivers(final_norm.sq_out)
        (agg,) = _receivers(fan.a_out)
        (bc,) = _receivers(agg.r_out)
        (lm_head,) = [p.process for p in sink.logits_in.in_connections]
    except ValueError:
        raise ValueError("the head is an LmHead, or final norm -> fan-in Dense -> aggregator -> broadcast Dense -> "
                         "final norm, and final norm -> LM head Dense -> sink") from None
    return dict(final_norm=final_norm, head_norm=(fan, agg, bc), lm_head=lm_head)


def check_sink(sink, net, floating: bool) -> None:
    """The sink's scales are the network's (float graphs: 1.0 and no accumulator), else one clear error."""
    want = {"logit_scale": 1.0 if floating else float(net.logit_scale),
            "accumulator_bits": 0 if floating else int(net.fp.state_bits)}
    for name, value in want.items():
        have = np.asarray(getattr(sink, name).init).reshape(-1)[0]
        if have != value:
            fix = ("LmHeadSink(vocab_size=net.cfg.vocab_size, logit_scale=1.0, accumulator_bits=0, ...) for the float "
                   "blocks' logits" if floating else "LmHeadSink(net=net, ...)")
            raise BackendError(f"sink {sink.name}: {name} {have:g} differs from the "
                               f"{'float graph' if floating else 'network'}'s {value:g}: the tokens would be others; "
                               f"build it with {fix}")


def check_precision(graph, selection: Selection) -> None:
    """A run config that selects the floating_pt models for a graph built without the float model (or the
    fixed-point ones for a float graph) is refused before compilation: else each block's model fails in its
    worker."""
    procs = [*graph.blocks, graph.stack, graph.head, graph.sink]
    chosen = {precision(selection.model(p)) for p in procs if p is not None} - {None}
    if "float" in chosen and not graph.floating:
        raise BackendError(f"{config_name(selection.run_cfg)} selects the floating_pt models, but the graph was built "
                           "without the float model; build it with build_graph(..., float_model=fm) (the sim-float "
                           "backends), or run it with a fixed_pt config")
    if "fixed" in chosen and graph.floating:
        raise BackendError(f"{config_name(selection.run_cfg)} selects the fixed-point models, but the graph was "
                           "built for the float model; run it with lava_run_config('sim-float')")
