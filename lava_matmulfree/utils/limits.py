"""Requests checked before any work: token ids, and sizes against the memory they need (docs/reliability.md).

A size that cannot fit (``--max-new-tokens 10**12``, ``eval --length 10**12``) fails at once with one line
naming the option and the memory it would need, instead of a MemoryError after minutes or a run that never
ends.
"""
from __future__ import annotations

import numbers
import os

from lava_matmulfree.errors import LmfError

# Every backend keeps each token's logits (one 8-byte value per vocabulary entry) and copies them about
# once more when they are gathered; the float model's sequence activations are a few rows of d per layer.
BYTES_PER_VALUE = 8
LOGIT_COPIES = 2
ACTIVATION_ROWS_PER_LAYER = 12  # x, r, pre-activations, h, gate, GLU halves... of one token, per layer
# A generation longer than this is a typo rather than a request: the fastest backend (reference) makes a few
# hundred tokens/s on the tiny model and the Lava ones about one, so a million tokens is hours to weeks.
MAX_NEW_TOKENS = 1 << 20
MEMINFO = "/proc/meminfo"


class SizeError(LmfError):
    """A requested size does not fit this machine or the model."""


def available_memory() -> int:
    """Bytes the kernel reports as available for new allocations (MemAvailable), else physical memory."""
    try:
        with open(MEMINFO, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def require_memory(nbytes: int, what: str) -> None:
    """Raise SizeError naming ``what`` when ``nbytes`` exceeds the memory available now."""
    have = available_memory()
    if nbytes > have:
        raise SizeError(f"{what} needs about {_gib(nbytes)} of memory, more than the {_gib(have)} available")


def bytes_per_token(cfg) -> int:
    """Memory one token of a generation or an evaluation keeps (logits and activations)."""
    return BYTES_PER_VALUE * (LOGIT_COPIES * cfg.vocab_size
                              + ACTIVATION_ROWS_PER_LAYER * cfg.num_layers * max(cfg.hidden_size,
                                                                                 cfg.intermediate_size))


def check_generation(cfg, prompt_len: int, max_new_tokens: int, option: str = "max_new_tokens") -> None:
    if max_new_tokens > MAX_NEW_TOKENS:
        raise SizeError(f"{option} {max_new_tokens} is more than the {MAX_NEW_TOKENS} tokens one generation "
                        "may ask for")
    require_memory((prompt_len + max_new_tokens) * bytes_per_token(cfg),
                   f"{option} {max_new_tokens} (after {prompt_len} prompt tokens)")


def check_tokens(cfg, num_tokens: int, what: str) -> None:
    """An evaluation or calibration over ``num_tokens`` tokens in all."""
    require_memory(num_tokens * bytes_per_token(cfg), what)


def token_ids(prompt, vocab_size: int) -> list[int]:
    """The prompt as a list of int token ids; floats, strings and booleans are refused, not converted."""
    try:
        items = list(prompt)
    except TypeError:
        raise ValueError(f"the prompt must be a sequence of token ids, got {type(prompt).__name__}") from None
    out = []
    for i, t in enumerate(items):
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise ValueError(f"prompt[{i}] is {t!r} ({type(t).__name__}), not an integer token id")
        t = int(t)
        if not 0 <= t < vocab_size:
            raise ValueError(f"prompt[{i}]: token id {t} is outside the model's vocabulary [0, {vocab_size})")
        out.append(t)
    return out
