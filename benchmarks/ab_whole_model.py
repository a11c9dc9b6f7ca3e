"""A/B of two versions of the whole-model kernel in one process: this checkout's ``whole_model.py`` (A) against
another copy of that file (B), on the same network and the same plan arrays.

Why one process: two bench_decode runs of the same code differ by up to 10% on the project's shared host (the
second core comes and goes, a token's weights leave the shared L3 between rows, docs/cpu_tuning.md), more than
most kernel changes are worth. Here both kernels run in the same process on the same arrays, in alternating order
(A B B A A B ...), each timed in steady state (``--warm`` untimed decode steps, then ``--steps`` timed ones), so the
host's noise hits both alike. B must give A's integers: the logits, the overflow counts, the residual stream and
the state of a 9-token prefill and three decode steps on one thread and on the team, or nothing is timed (unless
``--time-different``: a B that leaves a stage out weighs that stage). ``--synapses`` times the synapses of a token
alone instead (every matrix, bench_decode's kernel rows), after checking their outputs too.

    git show HEAD~1:lava_matmulfree/model/whole_model.py > /tmp/whole_model_before.py
    .venv/bin/python benchmarks/ab_whole_model.py /tmp/whole_model_before.py --config 370m

B is imported as a module of its own (its imports are absolute, so it calls this checkout's stage and synapse
kernels): the A/B covers what whole_model.py itself does (order of stages, barriers, buffers, fusions). To compare
changes to golden_kernels.py or ternary_kernels.py, make B's whole_model import a renamed copy of them. Where B
defines ``plan_arrays(arrays, scalars) -> (arrays, scalars)``, B runs on what it returns for the plan's (built
once: another layout of the plan, model_plan.py, with the kernel that reads it).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import numpy as np
from _harness import MS, OUT_DIR, finish, json_out, loadavg, packed_golden, robust

DEFAULT_OUT = OUT_DIR / "ab_whole_model.json"
CHECK_PREFILL = 9          # tokens of the exactness check's prefill (not a power of two), then CHECK_STEPS steps
CHECK_STEPS = 3
KERNELS = ("_k_model_serial", "_k_model_parallel", "N_SLOTS", "N_HEAD_SLOTS")
SYNAPSE_KERNELS = ("_k_synapse_pass_serial", "_k_synapse_pass_parallel")   # what --synapses times


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("other", type=Path, help="the whole_model.py to compare with this checkout's (B)")
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, nargs="+", default=[2], help="team sizes to time (default 2)")
    p.add_argument("--rounds", type=int, default=6, help="timed runs of each kernel per team size (default 6)")
    p.add_argument("--warm", type=int, default=12, help="untimed decode steps before each timed run (default 12)")
    p.add_argument("--steps", type=int, default=24, help="timed decode steps per run (default 24)")
    p.add_argument("--synapses", action="store_true",
                   help="time only the synapses of a token (every matrix, as bench_decode's kernel rows) in each "
                        "version, checked to give the same integers on random spikes, instead of decode steps")
    p.add_argument("--time-different", action="store_true",
                   help="time B even where its integers differ from A's (B leaves out a stage, to weigh it)")
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    return p.parse_args(argv)


def load_other(path: Path, kernels=KERNELS):
    """``path`` imported as a module of its own; ValueError where it is not a whole-model kernel module."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    name = "lava_matmulfree.model._whole_model_b"
    spec = importlib.util.spec_from_file_location(name, path, loader=SourceFileLoader(name, str(path)))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod          # numba's disk cache finds a kernel's module by name when it loads it again
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001  (any error of the file: say which file, and what)
        del sys.modules[name]
        raise ValueError(f"{path}: cannot be imported ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in kernels if not hasattr(mod, k)]
    if missing:
        raise ValueError(f"{path}: not a whole_model.py (it lacks {', '.join(missing)})")
    return mod


class Kernel:
    """One version of the kernel, run on a plan's arrays the way ModelPlan.run does."""

    def __init__(self, mod, plan, embed):
        self.mod, self.plan, self.embed = mod, plan, embed
        self.arrays, self.scalars = plan.arrays, plan.scalars
        if hasattr(mod, "plan_arrays"):
            self.arrays, self.scalars = mod.plan_arrays(plan.arrays, plan.scalars)

    def __call__(self, tokens, h, n):
        """(logits int32 [T, V], layer counts, head counts, residual stream x) of ``tokens``; h updated."""
        m, plan = self.mod, self.plan
        x = np.ascontiguousarray(self.embed[np.asarray(tokens, dtype=np.int64)], dtype=np.int64)
        cnt = np.zeros((plan.L, m.N_SLOTS), dtype=np.int64)
        cnt_head = np.zeros(m.N_HEAD_SLOTS, dtype=np.int64)
        logits = np.empty((len(tokens), plan.V), dtype=np.int32)
        if n == 1:
            m._k_model_serial(x, h, self.arrays, self.scalars, cnt, cnt_head, logits)
        else:
            m._k_model_parallel(x, h, self.arrays, self.scalars, cnt, cnt_head, logits, n)
        return logits, cnt, cnt_head, x

    def synapses(self, n, ins):
        """The synapses of one token alone on ``ins`` (ModelPlan.synapse_inputs; the outputs written there)."""
        if n == 1:
            self.mod._k_synapse_pass_serial(self.arrays, *ins)
        else:
            self.mod._k_synapse_pass_parallel(self.arrays, *ins, n)

    def synapse_ms(self, ins, n, warm, steps):
        """ms per synapse pass after ``warm`` untimed ones."""
        for _ in range(warm):
            self.synapses(n, ins)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.synapses(n, ins)
        return (time.perf_counter() - t0) / steps * MS

    def steady_ms(self, h0, n, warm, steps, rng):
        """ms per decode step after ``warm`` untimed steps (random tokens, state carried from h0)."""
        h = h0.copy()
        for tok in rng.integers(0, self.embed.shape[0], warm):
            self([int(tok)], h, n)
        toks = rng.integers(0, self.embed.shape[0], steps)
        t0 = time.perf_counter()
        for tok in toks:
            self([int(tok)], h, n)
        return (time.perf_counter() - t0) / steps * MS


def differences(a: Kernel, b: Kernel, h0, n, rng) -> list[str]:
    """What B computes differently from A (empty: the same integers) on a prefill and decode steps."""
    names = ("logits", "layer overflow counts", "head overflow counts", "residual stream")
    ha, hb = h0.copy(), h0.copy()
    V = a.embed.shape[0]
    calls = [rng.integers(0, V, CHECK_PREFILL).tolist()] + [[int(t)] for t in rng.integers(0, V, CHECK_STEPS)]
    out = []
    for i, toks in enumerate(calls):
        ra, rb = a(toks, ha, n), b(toks, hb, n)
        what = "prefill" if i == 0 else f"step {i}"
        out += [f"{what}: {name}" for name, x, y in zip(names, ra, rb) if not np.array_equal(x, y)]
        if not np.array_equal(ha, hb):
            out.append(f"{what}: state h")
    return out


def synapse_differences(a: Kernel, b: Kernel, ins, n) -> list[str]:
    """Which outputs of the synapse pass B computes differently from A on the same spikes (empty: none)."""
    a.synapses(n, ins)
    want = [x.copy() for x in ins[4:]]
    b.synapses(n, ins)
    return [f"synapses: {name}" for name, x, y in zip(("d-row matrices", "gate and up", "LM head"), want, ins[4:])
            if not np.array_equal(x, y)]


def main(argv=None) -> int:
    args = parse_args(argv)
    import lava_matmulfree.model.whole_model as this
    from lava_matmulfree.model.thread_team import check_threads, use_threads

    for n in args.threads:
        check_threads(n)
    try:
        other = load_other(args.other, KERNELS + (SYNAPSE_KERNELS if args.synapses else ()))
        net, g, plan = packed_golden(args.config, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a, b = Kernel(this, plan, net.embed), Kernel(other, plan, net.embed)
    h0 = g.init_state().h
    rng = np.random.default_rng(args.seed + 1)
    ins = plan.synapse_inputs(args.seed + 1)
    res = {"config": args.config, "a": "this checkout's whole_model.py", "b": str(args.other), "load_start": loadavg(),
           "timed": "the synapses of a token alone" if args.synapses else "decode steps",
           "protocol": {"rounds": args.rounds, "warm_steps": args.warm, "timed_steps": args.steps,
                        "order": "A B, then B A, alternating per round"}, "threads": {}}
    for n in sorted(set([1] + args.threads)):
        with use_threads(n):
            diff = differences(a, b, h0, n, rng) + (synapse_differences(a, b, ins, n) if args.synapses else [])
        if diff:
            res.setdefault("differences", {})[str(n)] = diff
            print(f"B differs from A on {n} thread(s): {'; '.join(diff)}"
                  + ("" if args.time_different else "; nothing timed"), file=sys.stderr)
            if not args.time_different:
                return 1
    if "differences" not in res:
        print(f"B gives A's integers (prefill of {CHECK_PREFILL}, {CHECK_STEPS} steps"
              f"{', the synapse pass' if args.synapses else ''}; on "
              f"{' and '.join(map(str, sorted(set([1] + args.threads))))} thread(s))")
    for n in args.threads:
        times = {"A": [], "B": []}
        with use_threads(n):
            for k in (a, b):            # compile / load both before the timed rounds
                k.steady_ms(h0, n, 1, 1, rng)
            for r in range(args.rounds):
                for name in ("AB" if r % 2 == 0 else "BA"):
                    k = a if name == "A" else b
                    times[name].append(k.synapse_ms(ins, n, args.warm, args.steps) if args.synapses
                                       else k.steady_ms(h0, n, args.warm, args.steps, rng))
        sa, sb = robust(times["A"]), robust(times["B"])
        res["threads"][str(n)] = {"A_ms": sa, "B_ms": sb, "B_over_A_median": sb["median"] / sa["median"],
                                  "B_over_A_best": sb["best"] / sa["best"]}
        print(f"{n} thread(s): A {sa['median']:.3f} / {sa['best']:.3f} ms per "
              f"{'synapse pass' if args.synapses else 'token'} (median / best of "
              f"{args.rounds}), B {sb['median']:.3f} / {sb['best']:.3f}; B/A {sb['median'] / sa['median']:.3f} "
              f"(medians), {sb['best'] / sa['best']:.3f} (best)")
    return finish(res, args.out)


if __name__ == "__main__":
    sys.exit(main())
