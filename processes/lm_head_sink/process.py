"""LM-head sink: the host-side exit of the graph; chooses the next token and feeds it back to the source."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree.processes.connections import CheckedInPort
from lava_matmulfree.processes.embedding.process import request_values


def head_scales(net, vocab_size, logit_scale, accumulator_bits, who: str) -> tuple[int, float, int]:
    """(vocab_size, logit_scale, accumulator_bits) of a sink: read from the compiled network ``net`` (a value also
    given must equal the network's), or all given (float logits: 1.0 and 0). One clear error otherwise."""
    if net is not None:
        own = {"vocab_size": net.cfg.vocab_size, "logit_scale": float(net.logit_scale),
               "accumulator_bits": int(net.fp.state_bits)}
        given = {"vocab_size": vocab_size, "logit_scale": logit_scale, "accumulator_bits": accumulator_bits}
        for key, value in given.items():
            if value is not None and value != own[key]:
                raise ValueError(f"{who}: {key}={value!r} differs from the network's {own[key]!r} (its LM head's "
                                 f"integer logits are in those units): leave {key} out, the sink reads it from net")
        return own["vocab_size"], own["logit_scale"], own["accumulator_bits"]
    missing = [k for k, v in (("vocab_size", vocab_size), ("logit_scale", logit_scale),
                              ("accumulator_bits", accumulator_bits)) if v is None]
    if missing:
        raise ValueError(f"{who}: pass net= (the compiled network whose LM head feeds the sink), or "
                         f"{', '.join(missing)} (float logits: logit_scale=1.0, accumulator_bits=0)")
    return int(vocab_size), float(logit_scale), int(accumulator_bits)


class LmHeadSink(AbstractProcess):
    """Receives the ternary LM head's logits (through its connection) and chooses tokens. Host/chip boundary: on
    Loihi 2 this runs on the host (docs/graph.md).

    Dynamics, in a step whose logits carry a token (sent in the same step)::

        logits = sat(logits_in)     the LM head neurons' dendrites: accumulator_bits wide, saturating (golden.dendrite)
        k = seen ; logits[k] = logits (when recorded) ; seen += 1
        if k == 0: tokens = -1         a new request: the sampler restarts from its seed, the last tokens go
        if k >= prompt_len - 1 and generated < max_new_tokens:
            token = argmax(logits_in)  or a seeded sample of softmax(logit_scale * logits_in / temperature)
            tokens[generated] = token ; generated += 1 ; token_out = [token, lane 1]

    The request (``prompt``, ``max_new_tokens``, sampling) is the constructor's, as the source's;
    ``graph.builder.LavaGraph.set_request`` sets a new one on both at once. The scales come from the network the
    LM head belongs to (``net``), so they cannot disagree with it.

    Parameters
    ----------
    capacity : int
        Most tokens one request may hold.
    net : QuantisedNetwork, optional
        The compiled network: vocab_size, logit_scale (its LM head's logit unit) and accumulator_bits (its
        state_bits) are read from it; a value also given must equal the network's.
    vocab_size : int, optional
        Without ``net``.
    logit_scale : float, optional
        Without ``net``: the real value of one unit of the integer logits (1.0 for float logits).
    accumulator_bits : int, optional
        Without ``net``: width of the LM head neurons' dendritic accumulators (0: none, float logits).
    prompt : sequence of int, optional
        The request's prompt (only its length matters here: sampling starts at its last token).
    max_new_tokens : int, optional
    temperature, top_k, seed : optional
        Sampling (temperature 0: greedy). The sampler restarts from ``seed`` with every request.
    record_logits : bool
        Keep every token's logits in the Var ``logits``.
    """

    def __init__(self, *, capacity: int, net=None, vocab_size: int | None = None, logit_scale: float | None = None,
                 accumulator_bits: int | None = None, prompt=(), max_new_tokens: int = 0, temperature: float = 0.0,
                 top_k: int = 0, seed: int = 0, record_logits: bool = True, name: str | None = None, **kwargs):
        super().__init__(capacity=capacity, record_logits=record_logits, name=name, **kwargs)  # first: a refused
        who = name or "LmHeadSink"  # process is then whole for Lava's __del__
        V, scale, bits = head_scales(net, vocab_size, logit_scale, accumulator_bits, who)
        ids = request_values(prompt, max_new_tokens, capacity, V, who)
        check_sampling(temperature, top_k, who)
        self.proc_params["vocab_size"] = V
        self.logits_in = CheckedInPort(shape=(V + 1,))  # warns of a Lava Dense whose weights Lava truncates
        self.token_out = OutPort(shape=(2,))  # [token, lane]
        self.logit_scale = Var(shape=(1,), init=scale)
        self.accumulator_bits = Var(shape=(1,), init=bits)
        self.temperature = Var(shape=(1,), init=float(temperature))
        self.top_k = Var(shape=(1,), init=int(top_k))
        self.seed = Var(shape=(1,), init=int(seed))
        self.prompt_len = Var(shape=(1,), init=len(ids))
        self.max_new_tokens = Var(shape=(1,), init=int(max_new_tokens))
        self.seen = Var(shape=(1,), init=0)
        self.generated = Var(shape=(1,), init=0)
        self.tokens = Var(shape=(capacity,), init=-1)  # the generated tokens
        self.logits = Var(shape=(capacity if record_logits else 1, V), init=0)


def check_sampling(temperature, top_k, who: str) -> None:
    if not temperature >= 0:
        raise ValueError(f"{who}: temperature must be >= 0, got {temperature!r}")
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0:
        raise ValueError(f"{who}: top_k must be a whole number >= 0, got {top_k!r}")
