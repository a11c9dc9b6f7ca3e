"""What a Lava run will take, known before its runtime is created (docs/reliability.md, "Sizes").

Lava forks one OS process per leaf model; at 370M the decomposed graphs have hundreds (sim-mixers 224, sim 535)
and a run that the machine cannot hold used to be started anyway, until the kernel's OOM killer or hours of
waiting ended it. :func:`plan_run` estimates a run's leaf processes, memory and time from the graph's shape
(builder.LEAVES_PER_BLOCK, loop_depth) and the machine (available memory, CPUs, process and file limits);
:func:`check_run` refuses a run that cannot fit, naming a backend that does, and logs what a slow one will
cost before it starts.

The constants are measurements on the project's 2-core machine (tests/test_reliability_plan.py, and
docs/performance.md's tables), rounded up: the estimate is meant to be right within a few times, and on the
safe side for memory.
"""
from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

from lava_matmulfree.utils.limits import SizeError, available_memory, describe_bytes

log = logging.getLogger(__name__)

#: Memory of one leaf process beyond what it shares with its parent (Lava's state, its heap's copied pages,
#: its channels): 9.5-13.9 MiB measured per child on the tiny and a d = 512 model, all backends
PROCESS_BYTES = 14 << 20
#: Runtime services and the shared-memory manager: processes besides the leaves
SERVICE_PROCESSES = 3
#: Bytes per parameter of the layers held by the workers, by block models: fused blocks read the packed weights
#: the parent holds (copy-on-write); fused mixers build their own arithmetic's tables; decomposed connections
#: hold 2W as int8 and as int16 (Lava's Dense); the floating_pt models float64 copies
LAYER_BYTES_PER_PARAM = {"fused": 0.5, "stack": 0.5, "mixers": 10.0, "decomposed": 3.0}
FLOAT_LAYER_BYTES_PER_PARAM = {"fused": 2.0, "decomposed": 16.0}
#: The embedding source's own int32 table and the LM head's int16 weights (V x d each)
HEAD_BYTES_PER_PARAM = 6.0
FLOAT_HEAD_BYTES_PER_PARAM = 16.0
#: The sink's records: a float64 logit per vocabulary entry and token when recorded, and the token ids
LOGIT_BYTES = 8

#: Time, measured on 2 cores: forking and starting one leaf (0.085-0.13 s per leaf, tiny to d = 512)
START_S_PER_LEAF = 0.12
#: One time step: a fixed cost and one per leaf taking part in its barrier. Refit 2026-12-06 after the workers'
#: channel ports (graph/channels.py) made steps cheaper (the old 3 ms + 0.35 ms per leaf predicted 28.9 ms at 74
#: leaves): tiny sim 15.6 ms at 74 leaves, sim-mixers 9.8 ms at 35 (load 4.4; seconds over time steps of
#: `generate --config tiny --backend B --prompt ab --max-new-tokens 40`); the demo model's sim 14.4 ms at 74
#: (load 2.9; `generate --backend sim --max-new-tokens 60`)
STEP_S = 4.6e-3
STEP_S_PER_LEAF = 0.15e-3
#: The arithmetic of one token per layer parameter: the packed kernel of fused blocks (370M sim-fused: ~60 ms per
#: token) against the stage-by-stage models of the decomposed graphs (2-2.3e-8 s measured at d = 512)
COMPUTE_S_PER_PARAM = {"fused": 2e-10, "stack": 2e-10, "mixers": 2.5e-8, "decomposed": 2.5e-8}
# PREFILL_FIT: a prompt token's step and compute shared by the cores, against the steady prefill measured on 2
# cores (`benchmarks/plan_fit.py`: the demo model, a 1500-token prompt; ms per prompt token, estimate / measured).
# 2026-12-07 at load 0.1-0.4: sim-fused 2.97 / 3.56, sim-stack 2.82 / 3.02, sim-mixers 22.8 / 18.6, sim 25.7 /
# 25.9 (load 0.8, 13 at its end); the same day at load 5-17: 5.46, 4.38, 25.9, 38.6 measured (0.54-0.88x). The
# step and compute in full per prompt token had estimated 1.7-2.5x the quiet measurements
#: Reading a Var back from a running graph moves one element per message (~15 us): the recorded logits
VAR_GET_S_PER_ELEMENT = 15e-6
REFERENCE_CPUS = 2  # the machine the times above were measured on
#: A run estimated to take longer than this is announced (a warning with its cost) before it starts
SLOW_RUN_S = 60.0
READ_BACK_SHOWN_S = 1.0  # a logits read-back this long is named in the announcement
FDS_PER_LEAF = 10  # descriptors each leaf process holds in the parent (runtime.raise_fd_limit)
#: The backends suggested instead of one that does not fit, fastest and smallest first
ALTERNATIVES = ("sim-stack", "sim-fused", "sim-mixers", "sim")


@dataclass
class RunPlan:
    backend: str
    leaf_processes: int
    memory_bytes: int
    start_seconds: float
    seconds_per_token: float
    seconds: float  # the whole run, start-up included
    new_tokens: int
    read_back_seconds: float = 0.0  # of ``seconds``: the recorded logits read back after the run, per request

    def describe(self) -> str:
        read_back = ""
        if self.read_back_seconds >= READ_BACK_SHOWN_S:
            read_back = (f", {_duration(self.read_back_seconds)} of it reading the recorded logits back after "
                         f"each request (RunConfig(backend={self.backend!r}, record_logits=False) keeps none)")
        return (f"{self.leaf_processes} leaf processes, about {describe_bytes(self.memory_bytes)} of memory, about "
                f"{_duration(self.seconds_per_token)} per new token and {_duration(self.seconds)} for the "
                f"{self.new_tokens} new tokens, start-up included{read_back}")


def _duration(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def plan_run(backend: str, cfg, prompt_len: int, new_tokens: int, record_logits: bool = True, probes: int = 0,
             stream: bool = False, cpus: int | None = None) -> RunPlan:
    """The estimate of one request on a fresh runtime of ``backend`` for a model of ``cfg``."""
    from lava_matmulfree.graph.builder import FLOAT_LAVA_BACKENDS, GRAPH_KIND, STREAM_TAPS, leaf_processes, loop_depth

    kind = GRAPH_KIND[backend]
    floating = backend in FLOAT_LAVA_BACKENDS
    L, d, I, V = cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    extra = STREAM_TAPS * stream + probes
    leaves = leaf_processes(kind, L, extra)
    layer_params = L * (4 * d * d + 3 * d * I)
    capacity = prompt_len + new_tokens
    per_param = (FLOAT_LAYER_BYTES_PER_PARAM.get(kind, 16.0) if floating else LAYER_BYTES_PER_PARAM[kind])
    memory = int((leaves + SERVICE_PROCESSES) * PROCESS_BYTES + layer_params * per_param
                 + V * d * (FLOAT_HEAD_BYTES_PER_PARAM if floating else HEAD_BYTES_PER_PARAM)
                 + (capacity * V * LOGIT_BYTES if record_logits else 0))
    cpus = cpus or os.cpu_count() or 1
    slower = REFERENCE_CPUS / max(1, min(cpus, leaves))  # more cores run more leaves of a step at once
    step = (STEP_S + STEP_S_PER_LEAF * leaves) * slower
    compute = COMPUTE_S_PER_PARAM[kind] * (layer_params + 2 * V * d) * slower
    per_token = loop_depth(kind, L) * step + compute
    # a steady prompt keeps every leaf busy in every step (a token per block), so the machine's cores share the
    # step's work, as a generated token crossing the blocks one after another does not (PREFILL_FIT)
    prompt_token = (step + compute) / REFERENCE_CPUS  # step and compute are scaled to this machine's cores already
    start = START_S_PER_LEAF * leaves * slower
    read_back = (capacity * V * VAR_GET_S_PER_ELEMENT) if record_logits else 0.0
    seconds = start + prompt_len * prompt_token + new_tokens * per_token + read_back
    return RunPlan(backend, leaves, memory, start, per_token, seconds, new_tokens, read_back)


def process_limit_problem(leaves: int) -> str | None:
    """Why this process cannot fork ``leaves`` workers (open-file or process limits), or None."""
    _, fd_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if fd_hard != resource.RLIM_INFINITY and leaves * FDS_PER_LEAF > fd_hard:
        return f"its {leaves} leaf processes need about {leaves * FDS_PER_LEAF} open files, more than this " \
               f"process's limit of {fd_hard} (ulimit -n)"
    nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if nproc != resource.RLIM_INFINITY and leaves + SERVICE_PROCESSES > nproc:
        return f"its {leaves + SERVICE_PROCESSES} processes exceed this user's limit of {nproc} (ulimit -u)"
    return None


def check_run(backend: str, cfg, prompt_len: int, new_tokens: int, record_logits: bool = True, probes: int = 0,
              stream: bool = False, timeout: float | None = None, what: str = "the run", warn: bool = True,
              reference: bool = True) -> RunPlan:
    """Refuse (SizeError) a Lava run this machine cannot hold, naming a backend that fits (``reference``: the
    caller can run the reference backend too); with ``warn``, log a warning with the cost of a slow one (and
    whether ``timeout`` would stop it) before it starts. Returns the plan."""
    plan = plan_run(backend, cfg, prompt_len, new_tokens, record_logits, probes, stream)
    have = available_memory()
    problem = process_limit_problem(plan.leaf_processes)
    if plan.memory_bytes > have:
        problem = (f"it needs about {describe_bytes(plan.memory_bytes)} of memory for its "
                   f"{plan.leaf_processes} leaf processes, more than the {describe_bytes(have)} available")
    if problem is not None:
        raise SizeError(f"backend {backend}: {what} cannot fit this machine: {problem}; "
                        + _fitting(cfg, prompt_len, new_tokens, record_logits, probes, stream, have, backend,
                                   reference))
    if warn and plan.seconds > SLOW_RUN_S:
        over = ""
        if timeout is not None and plan.seconds > timeout:
            over = (f"; more than its time limit of {timeout:g} s (timeout_s; --timeout on the command line), which "
                    "would stop it if the estimate holds")
        faster = _faster(cfg, prompt_len, new_tokens, record_logits, probes, stream, have, plan)
        log.warning("backend %s: %s will take long: %s%s%s", backend, what, plan.describe(), over, faster)
    return plan


def _alternatives(cfg, prompt_len, new_tokens, record_logits, probes, stream, have):
    for b in ALTERNATIVES:
        p = plan_run(b, cfg, prompt_len, new_tokens, record_logits, probes if b != "sim-stack" else 0, stream)
        if p.memory_bytes <= have and process_limit_problem(p.leaf_processes) is None:
            yield p


def _fitting(cfg, prompt_len, new_tokens, record_logits, probes, stream, have, backend, reference=True) -> str:
    for p in _alternatives(cfg, prompt_len, new_tokens, record_logits, probes, stream, have):
        if p.backend != backend:
            return f"backend {p.backend} fits ({p.describe()})" + (", and so does reference (no Lava processes)"
                                                                    if reference else "")
    if not reference:
        return "no Lava backend fits: ask for fewer tokens"
    return "backend reference (the golden model, no Lava processes) is the one that fits"


def _faster(cfg, prompt_len, new_tokens, record_logits, probes, stream, have, plan) -> str:
    for p in _alternatives(cfg, prompt_len, new_tokens, record_logits, probes, stream, have):
        if p.seconds < plan.seconds / 2:
            return f"; backend {p.backend} would take about {_duration(p.seconds)}"
    return ""
