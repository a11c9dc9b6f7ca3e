"""A conversation with one compiled graph and one Lava runtime (docs/graph.md, "Tokens are events").

    with Session("sim-fused", net, capacity=256) as chat:
        chat.ask(prompt_ids, 40, on_token=print)        # streamed as the sink chooses each token
        chat.ask(more_ids, 40)                           # continues: the MLGRU state h persists
        chat.ask(other_ids, 40, reset=True)              # a fresh conversation, same runtime

    with Session("sim-fused", net, capacity=256, activity=True) as chat:
        chat.ask(prompt_ids, 40).activity                # this request's counts (docs/graph.md, "Activity counters")

No recompile and no new runtime per prompt: a request only sets the source's and sink's Vars. Exit, Ctrl-C,
SIGTERM and an exception inside a model stop the runtime and every child process (runtime.py); the session is
then closed, and a further ``ask`` raises :class:`SessionClosedError`. An exception raised by ``on_token`` does
not close it: the request runs to its end, the exception is raised, and the next request works.
"""
from __future__ import annotations


from lava_matmulfree.config import LAVA_BACKEND_NAMES, RunConfig
from lava_matmulfree.errors import BackendError
from lava_matmulfree.graph.backends import (ACTIVITY_BACKENDS, FLOAT_LAVA_BACKENDS, GRAPH_KIND, Generation,
                                            lava_run_config, run_config_for)
from lava_matmulfree.graph.runner import SessionClosedError  # noqa: F401  (raised by ask after close)
from lava_matmulfree.graph.plan import check_run
from lava_matmulfree.model.quantise import QuantisedNetwork
from lava_matmulfree.utils.limits import check_generation, whole_number



class Session:
    """One graph for every request of a conversation (a context manager).

    Parameters
    ----------
    backend : str
        A Lava backend (sim-fused, sim, ...).
    net : QuantisedNetwork
    capacity : int
        Most tokens one request may hold (its prompt plus its new tokens).
    temperature, top_k, seed :
        Sampling; the sampler restarts from ``seed`` with every request.
    float_model : FloatModel, optional
        For the floating_pt backends.
    run : RunConfig, optional
        Timeout and Dense model of the run config (its backend must be ``backend``).
    activity : bool
        Count activity (backends sim, sim-fused, sim-mixers, sim-stack): each answer's ``Generation.activity``
        holds the counts of the tokens its request put into the graph (an ActivityRecorder); off by default.
    """

    def __init__(self, backend: str, net, *, capacity: int, temperature: float = 0.0, top_k: int = 0,
                 seed: int = 0, float_model=None, run: RunConfig | None = None, activity: bool = False):
        from lava_matmulfree.graph.builder import CAPACITY_WHY, MIN_CAPACITY, build_graph
        from lava_matmulfree.graph.runner import GraphRunner

        if backend not in LAVA_BACKEND_NAMES:
            raise BackendError(f"a session keeps a Lava runtime: use a Lava backend "
                               f"({', '.join(LAVA_BACKEND_NAMES)}), not {backend!r}")
        if not isinstance(net, QuantisedNetwork):
            raise BackendError(f"a Session needs the compiled network (a QuantisedNetwork) as net, got "
                               f"{type(net).__name__}")
        capacity = whole_number(capacity, "capacity", MIN_CAPACITY, CAPACITY_WHY)  # build_graph's, before check_run
        check_generation(net.cfg, 0, capacity, option="capacity")  # before any allocation
        run = run_config_for(backend, run)
        floating = backend in FLOAT_LAVA_BACKENDS
        if activity and backend not in ACTIVITY_BACKENDS:
            raise BackendError(f"activity is counted on {', '.join(ACTIVITY_BACKENDS[1:])}, not on {backend}")
        if floating and float_model is None:
            raise BackendError(f"the {backend} backend needs the float model")
        self.backend = backend
        cfg = lava_run_config(backend, run.dense_model)  # checks lava-loihi before anything is built
        if backend != "loihi2":  # processes and memory, before the runtime is created (graph/plan.py)
            check_run(backend, net.cfg, 1, int(capacity) - 1, run.record_logits, 0, True, run.timeout_s,
                      what=f"a session of capacity {capacity}")
        self.graph = build_graph(net, GRAPH_KIND[backend], capacity=capacity, temperature=temperature, top_k=top_k,
                                 seed=seed, record_logits=run.record_logits,
                                 float_model=float_model if floating else None, stream=True)
        if activity:
            from lava_matmulfree.graph.activity import count_activity
            count_activity(self.graph)
        self.runner = GraphRunner(self.graph, cfg, timeout=run.timeout_s)
        self.requests = 0
        self._counted = None  # the graph's counts after the previous request (the Vars add up over requests)

    @property
    def closed(self) -> bool:
        return self.runner.closed is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(failed=exc[0] is not None)
        return False

    def ask(self, prompt, max_new_tokens: int, on_token=None, reset: bool = False) -> Generation:
        """Send a prompt (token ids), stream the answer through ``on_token``; ``reset`` starts the recurrent
        state from zero (a new conversation), else it continues from the previous request."""
        res = self.runner.generate(prompt, max_new_tokens, reset_state=reset, on_token=on_token)
        self.requests += 1
        counts = None
        if res.activity is not None:
            from lava_matmulfree.graph.activity import difference
            counts, self._counted = difference(res.activity, self._counted), res.activity
        return Generation(self.backend, [int(t) for t in prompt], res.tokens, res.logits, {}, res.seconds, res.final_state,
                          res.steps, self.graph.block_hops, res.leaf_processes, res.first_token_seconds, counts)

    def close(self, failed: bool = False) -> None:
        self.runner.close(failed)
