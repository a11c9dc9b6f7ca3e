"""Next-token choice shared by every backend: greedy, or temperature / top-k sampling with a seed."""
from __future__ import annotations

import math

import numpy as np

from lava_matmulfree.utils.limits import whole_number


class Sampler:
    """``temperature == 0`` is greedy (argmax, lowest id on ties); otherwise softmax(logits / T) over the
    ``top_k`` largest logits (all when 0), drawn from a numpy Generator seeded once."""

    def __init__(self, temperature: float = 0.0, top_k: int = 0, seed: int = 0):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) \
                or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.top_k = whole_number(top_k, "top_k")
        self.rng = np.random.default_rng(whole_number(seed, "seed"))

    def __call__(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        if self.temperature == 0.0:
            return int(np.argmax(logits))
        z = logits / self.temperature
        if 0 < self.top_k < z.size:
            kth = np.partition(z, -self.top_k)[-self.top_k]
            z = np.where(z >= kth, z, -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        return int(self.rng.choice(p.size, p=p))


def generate(step, prefill, prompt: list[int], max_new_tokens: int, sampler: Sampler,
             eos_token_id: int = -1, on_token=None) -> list[int]:
    """Autoregressive loop over a backend's ``prefill(tokens) -> last logits`` and ``step(token) -> logits``.

    Returns the new tokens; ``on_token(id)`` is called as each one is chosen (for streaming)."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    logits = prefill(prompt)
    out: list[int] = []
    for _ in range(max_new_tokens):
        tok = sampler(logits)
        out.append(tok)
        if on_token is not None:
            on_token(tok)
        if tok == eos_token_id or len(out) == max_new_tokens:
            break
        logits = step(tok)
    return out
