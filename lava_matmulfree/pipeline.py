"""Timing of the process graph: one hop per Lava time step (DESIGN.md section 4).

Every neuron process sends what it computed in the previous step before it receives (as lava's Dense
does), so each neuron-to-neuron hop takes one step and loops cannot deadlock. Ternary synapse processes
forward in the same step they receive: on Loihi 2 the synaptic accumulation belongs to the receiving
neuron's step, so a spike costs one step from neuron to neuron through its synapses.

Offsets below count steps from the step at which a block's residual neurons receive a token's x.
"""
from __future__ import annotations

from dataclasses import dataclass

# decomposed block: residual -> aggregator -> residual -> (i,f,g) -> MLGRU -> aggregator -> MLGRU -> (o)
# -> residual -> aggregator -> residual -> (gate) -> GLU -> aggregator -> GLU -> (down) -> residual -> next
RESIDUAL_ATTN_R = 2  # the attn aggregator's inverse RMS reaches the residual neurons
MLGRU_IN = 3  # spikes through the i, f, g synapses reach the MLGRU neurons
MLGRU_R = 5  # the gate-norm aggregator answers the MLGRU neurons
RESIDUAL_O = 6  # o_proj output reaches the residual neurons
RESIDUAL_MLP_R = 8  # the mlp-norm aggregator answers
GLU_IN = 9  # gate_proj output reaches the GLU neurons
GLU_R = 11  # the down-norm aggregator answers
RESIDUAL_DOWN = 12  # down_proj output reaches the residual neurons
BLOCK_HOPS = 13  # ... which send x to the next block one step later
TOKEN_MIXER_HOPS = RESIDUAL_O - MLGRU_IN  # spikes into the token mixer -> its o_proj output at the residual
CHANNEL_MIXER_HOPS = RESIDUAL_DOWN - GLU_IN  # spikes into the channel mixer -> its down_proj output
AGGREGATOR_ROUND_TRIP = 2  # channel neurons -> aggregator -> channel neurons
FUSED_BLOCK_HOPS = 1  # a fused block computes the whole layer in one step
STACK_HOPS = 1  # the layer stack (sim-stack) computes every layer in one step: a schedule of one "layer"
HEAD_HOPS = 3  # final norm neurons -> aggregator -> final norm neurons -> (lm_head) -> sink
SOURCE_HOPS = 1  # embedding source -> first block
FEEDBACK_HOPS = 1  # sink -> embedding source


@dataclass(frozen=True)
class Schedule:
    """When each token enters: prompt tokens stream one per step (prefill); each generated token is fed
    back by the sink and enters once the previous one has left the head (decode).

    ``entry(k)`` is the step at which the embedding source computes token k's x."""

    prompt_len: int
    max_new_tokens: int
    num_layers: int
    block_hops: int

    @property
    def loop_depth(self) -> int:
        """Steps from the source computing a token to the source computing the next generated one."""
        return SOURCE_HOPS + self.num_layers * self.block_hops + HEAD_HOPS + FEEDBACK_HOPS

    @property
    def sink_offset(self) -> int:
        return SOURCE_HOPS + self.num_layers * self.block_hops + HEAD_HOPS

    def block_offset(self, layer: int) -> int:
        """Steps from the source computing a token to block ``layer``'s residual neurons receiving it."""
        return SOURCE_HOPS + layer * self.block_hops

    @property
    def num_tokens(self) -> int:
        """Tokens that enter the graph: the prompt and every generated token but the last."""
        return self.prompt_len + self.max_new_tokens - 1

    def entry(self, k: int) -> int:
        P = self.prompt_len
        return k + 1 if k < P else P + (k - P + 1) * self.loop_depth

    def entries(self) -> list[int]:
        return [self.entry(k) for k in range(self.num_tokens)]

    @property
    def total_steps(self) -> int:
        """Steps until the sink has chosen the last new token."""
        return self.entry(self.num_tokens - 1) + self.sink_offset

    def token_at(self, step: int, offset: int) -> int:
        """Index of the token a process ``offset`` steps behind the source handles at ``step``, or -1."""
        s = step - offset
        P, D = self.prompt_len, self.loop_depth
        if 1 <= s <= P:
            k = s - 1
        elif s > P and (s - P) % D == 0:
            k = P - 1 + (s - P) // D
        else:
            return -1
        return k if k < self.num_tokens else -1


class History:
    """Values a neuron keeps for the tokens in flight, by the step they were computed (a ring of ``depth``).

    On the chip these are extra state registers per neuron; their count is the loop latency they bridge."""

    def __init__(self, depth: int, shape: tuple[int, ...], dtype=None):
        import numpy as np

        self.depth = depth
        self.ring = np.zeros((depth,) + tuple(shape), dtype=dtype or np.int64)

    def put(self, step: int, value) -> None:
        self.ring[step % self.depth] = value

    def get(self, step: int):
        return self.ring[step % self.depth]
