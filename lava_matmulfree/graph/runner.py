"""Run a built or hand-wired graph (graph/builder.py): ``GraphRunner`` keeps its Lava runtime alive between
requests, each run until the sink has chosen its last token; the runtime is always stopped, also on errors and
Ctrl-C (graph/runtime.py; docs/graph.md, "Streaming, sessions and probes").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lava_matmulfree import events
from lava_matmulfree.errors import BackendError
from lava_matmulfree.graph.builder import LavaGraph, probe_names
from lava_matmulfree.graph.runtime import LavaRunError, check_timeout, run_steps, stop  # noqa: F401  (LavaRunError)
from lava_matmulfree.utils.limits import token_ids, whole_number


#: A request that has not finished after this many times its expected steps lost a token.
STEP_BUDGET_FACTOR = 20


class SessionClosedError(BackendError):
    """A request to a runner or Session whose runtime was closed, or torn down after a failure."""


@dataclass
class RunResult:
    tokens: list
    logits: np.ndarray | None  # int [num_tokens, V] when recorded
    probes: dict = field(default_factory=dict)  # name -> int array [num_tokens, ...]
    final_state: dict = field(default_factory=dict)  # l<layer>.h -> the MLGRU state after the run
    steps: int = 0
    seconds: float = 0.0
    leaf_processes: int = 0
    first_token_seconds: float | None = None  # from the request to the first streamed token (stream=True)
    activity: object = None  # ActivityRecorder: the counts of every run so far (graph/activity.py), if counted


class GraphRunner:
    """Runs requests on one graph and keeps its Lava runtime alive between them (a context manager; the runtime
    is stopped on exit, errors and Ctrl-C, and no child survives). Call it from the main thread (the watchdog
    signals it).

    Each request runs until the sink has chosen its last token: the expected number of steps
    (prompt + new tokens x loop depth of the graph's block models) first, then one loop depth at a time while the
    sink is not done (the run config may have chosen slower models than the graph was built for), up to
    ``STEP_BUDGET_FACTOR`` times the expected steps."""

    def __init__(self, graph: LavaGraph, run_cfg, timeout: float | None = 600.0, probes=()):
        check_timeout(timeout)
        if getattr(graph, "counts_activity", False):  # count_activity(graph): the counting models (graph/activity.py)
            from lava_matmulfree.processes.activity import counting_run_config
            run_cfg = counting_run_config(run_cfg)
        graph.follow(run_cfg)  # a mixed selection: one line naming the config; else its models' timing
        self.graph, self.run_cfg, self.timeout = graph, run_cfg, timeout
        self.probes: dict = {}
        self._add_probes(probe_names(probes))
        self.started = False
        self.closed: str | None = None  # why no request can run any more (close(), or a runtime torn down)
        self.steps = 0
        self.first_token_s: float | None = None  # perf_counter() when a streamed request's first token arrived
        self._callback_error: Exception | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(failed=exc[0] is not None)
        return False

    def close(self, failed: bool = False) -> None:
        """Stop the runtime; the runner takes no more requests."""
        self.closed = self.closed or "close() was called"
        if self.started:
            self.started = False
            stop(self.graph.source, failed)

    def _fail(self, e: BaseException) -> None:
        """A request failed: the runtime is (or is now) torn down, and Lava cannot start it again."""
        why = str(e) or type(e).__name__
        self.closed = self.closed or f"its Lava runtime was stopped after {type(e).__name__}: {why}"
        self.close(failed=True)

    def _deliver(self, on_token, token: int) -> None:
        """Hand a token to the caller; an exception of the callback is kept for the end of the request (the graph
        cannot drop the tokens already in flight, so the request runs to its end and the runtime survives)."""
        if on_token is None or self._callback_error is not None:
            return
        try:
            on_token(token)
        except Exception as e:  # Ctrl-C, SIGTERM (BaseException) still stop everything at once
            self._callback_error = e

    def _generated(self, streamed: list) -> int:
        if self.graph.token_tap is not None:
            return len(streamed)
        return int(np.asarray(self.graph.sink.generated.get()).reshape(-1)[0])

    def _run(self, steps: int, streamed: list | None = None, on_token=None, on_prompt=None,
             prompt_len: int = 0) -> None:
        """``steps`` more steps; ``on_prompt(entered)`` (streamed graphs, the request's first run) is called as the
        ``prompt_len`` tokens of the prompt enter the graph, one a step (about every percent of them, and after the
        last)."""
        tap = self.graph.token_tap
        prompt_len = prompt_len if on_prompt is not None else 0
        every = max(1, prompt_len // 100)

        def consume():  # one message per step from the tap: [token, lane]
            for i in range(steps):
                if i < prompt_len and ((i + 1) % every == 0 or i + 1 == prompt_len):
                    on_prompt(i + 1)
                token, present = events.split(tap.receive())
                if present:
                    streamed.append(int(round(float(token[0]))))
                    self.first_token_s = self.first_token_s or time.perf_counter()
                    self._deliver(on_token, streamed[-1])

        try:
            run_steps(self.graph.source, self.run_cfg, steps, self.timeout, consume if tap is not None else None)
        except BaseException:
            self.started = False  # run_steps has torn the runtime down
            raise
        first, self.started = not self.started, True
        self.steps += steps
        if first:  # what Lava compiled: the timing the steps and probes were planned with
            from lava_matmulfree.graph.wiring import selected_head_kind, selected_kind

            kind = selected_kind(self.graph.blocks, self.graph.stack)
            if kind != self.graph.kind:
                raise BackendError(f"Lava selected {kind} block models, the run was planned for {self.graph.kind}")
            head = selected_head_kind(self.graph.head)
            if head is not None and head != self.graph.head_kind:
                raise BackendError(f"Lava selected a {head} head, the run was planned for a {self.graph.head_kind} one")

    def generate(self, prompt, max_new_tokens: int, probes=None, reset_state: bool = False,
                 on_token=None, on_prompt=None) -> RunResult:
        """One request on the running graph: the recurrent state persists from the previous request unless
        ``reset_state``. ``probes`` (names as ``LavaGraph.probe_target``) are recorded once per token and returned;
        None (the default): every probe the runner has (those it was made with, and any a request added).
        ``on_token(t)`` is called with each new token as the sink chooses it, while the graph runs (a graph built with
        ``stream=True``; otherwise after the run). If ``on_token`` raises, the request still runs to its end, then
        its exception is raised; the runtime stays up for the next request. ``on_prompt(entered)`` is called as the
        prompt enters the graph, one token a step (streamed graphs; for a progress bar: a long prompt is a long
        silence before the first token).

        After :meth:`close`, or a run that failed (its runtime is torn down), every request raises
        :class:`SessionClosedError`."""
        g = self.graph
        if self.closed is not None:
            raise SessionClosedError(f"the session is closed ({self.closed}): it runs no more requests; make a new "
                                     "one")
        prompt = token_ids(prompt, g.sink.proc_params["vocab_size"])  # refuses floats and strings
        if not prompt:
            raise ValueError("the prompt must hold at least one token")
        max_new_tokens = whole_number(max_new_tokens, "max_new_tokens", 1)
        probes = tuple(self.probes) if probes is None else probe_names(probes)
        if set(probes) - set(self.probes) and self.started:
            raise ValueError("probes join a graph before its runtime starts: name them in its first request or "
                             "when the runner is made")
        self._add_probes(probes)
        g.set_request(prompt, max_new_tokens, self.started)
        if reset_state and self.started:
            self._reset_state()
        if self.started:
            for proc, _ in self.probes.values():
                proc.count.set(np.zeros(1))
        expected = g.steps_needed(len(prompt), max_new_tokens)
        first_step = self.steps
        t0 = time.perf_counter()
        self.first_token_s = None
        streamed: list = []
        self._callback_error = None
        try:
            self._run(expected, streamed, on_token, on_prompt if g.token_tap is not None else None, len(prompt))
            extra = 0
            while self._generated(streamed) < max_new_tokens:
                if extra >= STEP_BUDGET_FACTOR * expected:
                    raise LavaRunError(f"the sink chose fewer than {max_new_tokens} tokens in "
                                       f"{self.steps - first_step} steps: a token was lost in the graph")
                self._run(g.loop_depth, streamed, on_token)
                extra += g.loop_depth
            seconds = time.perf_counter() - t0
            result = self._collect(prompt, max_new_tokens, probes, first_step, seconds)
            if self.first_token_s is not None:
                result.first_token_seconds = self.first_token_s - t0
        except BaseException as e:
            self._fail(e)
            raise
        if g.token_tap is None:
            for t in result.tokens:
                self._deliver(on_token, t)
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error
        return result

    def _reset_state(self) -> None:
        L = self.graph.num_layers
        d = self.graph.source.x_out.shape[0] - 1  # the embedding rows' channels (the lane last)
        if self.graph.stack is not None:
            self.graph.stack.h.set(np.zeros((L, d)))
        for b in self.graph.blocks:
            b.h.set(np.zeros(d))

    def _add_probes(self, names) -> None:
        """One probe process per name (processes/token_probe), recording once per token."""
        from lava_matmulfree.processes.token_probe.process import PortProbe, VarProbe

        g = self.graph
        for name in names:
            if name in self.probes:
                continue
            target = g.probe_target(name)
            if target[0] == "port":
                self.probes[name] = (PortProbe(port=target[1], capacity=g.capacity, name=f"probe {name}"), None)
            else:
                _, var, latency, row = target
                self.probes[name] = (VarProbe(var=var, lane_port=g.source.x_out, latency=latency,
                                              capacity=g.capacity, name=f"probe {name}"), row)

    def _collect(self, prompt, max_new_tokens, probes, first_step, seconds) -> RunResult:
        g = self.graph
        n_in = len(prompt) + max_new_tokens - 1
        tokens = g.tokens()
        logits = None
        if g.sink.proc_params["record_logits"]:
            logits = np.asarray(g.sink.logits.get())[:n_in]
            if not g.floating:
                logits = np.rint(logits).astype(np.int64)
        out = {}
        for name in probes:
            proc, row = self.probes[name]
            n = int(np.asarray(proc.count.get()).reshape(-1)[0])
            if n != n_in:
                raise LavaRunError(f"probe {name} recorded {n} tokens of {n_in}")
            rows = np.asarray(proc.records.get())[:n]  # Var.get moves one element per message
            if row is not None:
                rows = rows[:, row]
            out[name] = rows if g.floating else np.rint(rows).astype(np.int64)
        final = {}
        hs = [np.asarray(b.h.get()) for b in g.blocks]  # Var.get moves one element per message
        if g.stack is not None:
            hs = list(np.asarray(g.stack.h.get()).reshape(g.stack.h.shape))
        for l, h in enumerate(hs):
            final[f"l{l}.h"] = h if g.floating else np.rint(h).astype(np.int64)
        from lava_matmulfree.graph.wiring import built_leaves

        leaves = built_leaves(g.source)  # what Lava really built: sub-model selection and probes included
        result = RunResult(tokens, logits, out, final, self.steps - first_step, seconds,
                           g.leaf_process_count() if leaves is None else len(leaves))
        if getattr(g, "counts_activity", False):
            from lava_matmulfree.graph.activity import read_activity
            result.activity = read_activity(g)
        return result


def run_graph(graph: LavaGraph, run_cfg, prompt, max_new_tokens: int, probes=(),
              timeout: float | None = 600.0, on_token=None, on_prompt=None) -> RunResult:
    """One request on a fresh runtime, stopped afterwards."""
    with GraphRunner(graph, run_cfg, timeout) as runner:
        return runner.generate(prompt, max_new_tokens, probes, on_token=on_token, on_prompt=on_prompt)
