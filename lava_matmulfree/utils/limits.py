"""Requests checked before any work: token ids, and sizes against the memory they need (docs/reliability.md).

A size that cannot fit (``--max-new-tokens 10**12``, ``eval --length 10**12``) fails at once with one line
naming the option and the memory it would need, instead of a MemoryError after minutes or a run that never
ends.
"""
from __future__ import annotations

import numbers
import os
import resource

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
SELF_STATUS = "/proc/self/status"
CGROUP_OF_SELF = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"


class SizeError(LmfError):
    """A requested size does not fit this machine or the model."""


def available_memory() -> int:
    """Bytes this process may still allocate: what the kernel reports as available (MemAvailable, else physical
    memory), less where the process's control group (cgroup v2 memory.max) or its address-space limit
    (RLIMIT_AS, e.g. ``ulimit -v``) end sooner."""
    have = _meminfo_available()
    cgroup = _cgroup_room()
    if cgroup is not None:
        have = min(have, cgroup)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        have = min(have, max(0, soft - _address_space()))
    return have


def _proc_kib_field(path: str, key: str) -> int | None:
    """Bytes of a ``key: N kB`` line of a /proc file (meminfo, status), or None where there is none."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo_available() -> int:
    have = _proc_kib_field(MEMINFO, "MemAvailable")
    return have if have is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cgroup_room() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), or None without a limit."""
    try:
        with open(CGROUP_OF_SELF, encoding="ascii") as f:
            path = next((line.strip().split("::", 1)[1] for line in f if line.startswith("0::")), None)
        if path is None:
            return None
        folder = os.path.join(CGROUP_ROOT, path.lstrip("/"))
        with open(os.path.join(folder, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current"), encoding="ascii") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError, IndexError):
        return None


def _address_space() -> int:
    """This process's virtual memory size (what RLIMIT_AS limits)."""
    return _proc_kib_field(SELF_STATUS, "VmSize") or 0


def describe_bytes(n: int) -> str:
    """A size for a message: MiB below a GiB, GiB below a TiB, else TiB with 3 significant digits."""
    for unit, shift in (("TiB", 40), ("GiB", 30)):
        if n >= 1 << shift:
            return f"{n / 2 ** shift:.3g} {unit}"
    return f"{n / 2 ** 20:.3g} MiB"


_gib = describe_bytes


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


def new_token_bytes(cfg) -> int:
    """Memory one new token of a generation keeps: its logits (and their gathered copy) and a probe row of d per
    layer (``probe``'s default, every layer's h); decoding keeps no sequence activations. (The demo model's
    reference backend's whole process peaked at 390 MB resident for 50,000 new tokens, this bound is 437.6 MB:
    ``/usr/bin/time -v lava-matmulfree generate --backend reference --max-new-tokens 50000``, 380,652 kB.)"""
    return BYTES_PER_VALUE * (LOGIT_COPIES * cfg.vocab_size + cfg.num_layers * cfg.hidden_size)


def check_generation(cfg, prompt_len: int, max_new_tokens: int, option: str = "max_new_tokens") -> None:
    if max_new_tokens > MAX_NEW_TOKENS:
        raise SizeError(f"{option} {max_new_tokens} is more than the {MAX_NEW_TOKENS} tokens one generation "
                        "may ask for")
    require_memory(prompt_len * bytes_per_token(cfg) + max_new_tokens * new_token_bytes(cfg),
                   f"{option} {max_new_tokens} (after {prompt_len} prompt tokens)")


def check_tokens(cfg, num_tokens: int, what: str) -> None:
    """An evaluation or calibration over ``num_tokens`` tokens in all."""
    require_memory(num_tokens * bytes_per_token(cfg), what)


def whole_number(value, name: str, least: int = 0, why: str = "") -> int:
    """``value`` as an int when it is an integer >= ``least`` (not a bool, a float or a string), else one
    ValueError naming ``name`` (and ``why``, in parentheses after the bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}{f' ({why})' if why else ''}, got {value!r}")
    return int(value)


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
