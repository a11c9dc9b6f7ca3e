"""The models bench_decode.py times against each other, and how one repeat of one is timed and its memory counted.

Not a benchmark itself. ``Row``: a model under test and its figures; ``time_row``: one repeat (prefill, then
decode steps after a prefix; the transient peak memory above what it held before); ``resident_bytes``: the bytes
a model holds; ``GoldenBefore``: the golden model as it ran before (the reference of the speed-ups);
``golden_stage_timing``: the golden model's time by stage.
"""
from __future__ import annotations

import gc
import time
import types

import numpy as np

from _harness import MS, peak_rss_bytes, reset_peak_rss, rss_bytes


def resident_bytes(*roots) -> int:
    """Bytes of every numpy array / torch tensor reachable from ``roots`` (objects, dataclasses, dicts, lists),
    each buffer counted once, plus the packed ternary kernels (float_model.ternary_matrix) of the int8 arrays."""
    from lava_matmulfree.model import float_model as fm_mod

    seen, buffers = set(), {}

    def visit(o, depth):
        if (id(o) in seen or depth > 8 or o is None
                or isinstance(o, (int, float, str, bool, type, types.ModuleType, types.FunctionType))):
            return
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            root = o
            while isinstance(root.base, np.ndarray):  # a view counts as the array it views (e.g. the weight stacks)
                root = root.base
            key = root.__array_interface__["data"][0]
            buffers[key] = max(buffers.get(key, 0), root.nbytes)
            tm = fm_mod.ternary_matrix(o, build=False)
            if tm is not None:
                visit(tm.codes, depth + 1)
            return
        if type(o).__module__.startswith("torch") and hasattr(o, "untyped_storage"):
            st = o.untyped_storage()
            buffers[st.data_ptr()] = max(buffers.get(st.data_ptr(), 0), st.nbytes())
            return
        if isinstance(o, dict):
            for v in o.values():
                visit(v, depth + 1)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v, depth + 1)
        elif hasattr(o, "__dict__"):
            for v in vars(o).values():
                visit(v, depth + 1)

    for r in roots:
        visit(r, 0)
    return int(sum(buffers.values()))


class Row:
    """One model under test: prefill(tokens, state) -> (logits, state); step(token, state)."""

    def __init__(self, name: str, model, note: str):
        self.name, self.model, self.note = name, model, note
        self.prefill_s, self.decode_s_per_token, self.transient = [], [], []
        self.ramp_ms = []                  # per repeat: ms of each untimed decode step before the timed ones
        self.resident = 0

    def prefill(self, tokens, state=None):
        return self.model.prefill(tokens, state)

    def step(self, token, state):
        return self.model.step(token, state)


def time_row(row: Row, prompt, prefix, decode_tokens, ramp_tokens=()) -> None:
    """One repeat of one row: prefill of the prompt, then after the prefix the untimed ``ramp_tokens`` decode
    steps (each one's time kept in ``row.ramp_ms``: the cache's ramp back to a steady decode) and the timed
    ``decode_tokens`` steps."""
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    t0 = time.perf_counter()
    row.prefill(prompt)
    row.prefill_s.append(time.perf_counter() - t0)
    _, st = row.prefill(prefix)
    ramp = []
    for tok in ramp_tokens:
        t0 = time.perf_counter()
        _, st = row.step(tok, st)
        ramp.append((time.perf_counter() - t0) * MS)
    row.ramp_ms.append(ramp)
    t0 = time.perf_counter()
    for tok in decode_tokens:
        _, st = row.step(tok, st)
    row.decode_s_per_token.append((time.perf_counter() - t0) / len(decode_tokens))
    row.transient.append(max(0, peak_rss_bytes() - base))


def golden_stage_timing(net, prompt, prefix, decode_tokens) -> dict:
    """Wall time per stage of the golden model (ms per token) for one prefill and the decode steps."""
    from lava_matmulfree.model import golden as G0
    from lava_matmulfree.model import golden_fast as G

    acc: dict = {}
    originals = {}

    def wrap(owner, name, key):
        f = getattr(owner, name)
        originals[(owner, name)] = f

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        setattr(owner, name, timed)

    for name, key in (("norm_spikes", "norm rounds (x^2, aggregate, 1/sqrt, spikes)"), ("mlgru", "MLGRU neurons"),
                      ("glu", "GLU neurons"), ("residual", "residual neurons")):
        wrap(G.FastGoldenModel, name, key)
    wrap(G0, "synapses", "ternary synapses (packed 2-bit kernel)")  # the LM head (golden.prefill)
    wrap(G, "synapses32", "ternary synapses (packed 2-bit kernel)")  # inside the layers
    out = {}
    try:
        g = G.FastGoldenModel(net, whole_model=False)  # the stages only exist stage by stage
        _, st0 = g.prefill(prefix)

        def decode(st=st0):
            for tok in decode_tokens:
                st = g.step(tok, st)[1]

        for phase, run, n_tok in (("prefill", lambda: g.prefill(prompt), len(prompt)),
                                  ("decode", decode, len(decode_tokens))):
            acc.clear()
            t0 = time.perf_counter()
            run()
            total = time.perf_counter() - t0
            stages = {k: v / n_tok * MS for k, v in acc.items()}
            stages["other (embedding, Python, records)"] = (total - sum(acc.values())) / n_tok * MS
            out[phase] = {"ms_per_token": total / n_tok * MS, "stages_ms_per_token": stages}
    finally:
        for (owner, name), f in originals.items():
            setattr(owner, name, f)
    return out


class GoldenBefore:
    """The golden model as it ran before the whole-model kernel (this benchmark's reference for the speed-ups):
    stage by stage from Python, each matrix through the kernel policy of then (VNNI where usable, else the
    generic numba kernel, and BLAS for batches of >= 64 tokens: numpy's BLAS uses its own threads, 2 here)."""

    def __init__(self, net):
        from lava_matmulfree.model.golden import GoldenModel
        from lava_matmulfree.model.golden_fast import FastGoldenModel

        self.g = FastGoldenModel(net)
        self._prefill = lambda tokens, state: GoldenModel.prefill(self.g, tokens, state)

    def prefill(self, tokens, state=None):
        from lava_matmulfree.model import ternary

        avx2 = ternary.avx2_usable
        ternary.avx2_usable = lambda: False
        try:
            return self._prefill(tokens, state)
        finally:
            ternary.avx2_usable = avx2

    def step(self, token, state=None):
        logits, state = self.prefill([token], state)
        return logits[0], state

