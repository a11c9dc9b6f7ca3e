"""Lava's cost per time step against the number of leaf processes, and its start-up, in one run.

    .venv/bin/python benchmarks/bench_lava_overhead.py [--leaves 2 8 20 29 44 80] [--width 1] [--steps 40 200]
                                                       [--repeats 3] [--no-real] [--out out/bench_lava_overhead.json]

Lava's CPU runtime (``Loihi2SimCfg``) runs every leaf process in its own OS process and ends every time step
with a barrier over all of them, so a step costs time even when no process computes anything.

1. **Trivial chains.** ``RingBuffer source -> (K - 2) x Dense(identity, width) -> RingBuffer sink``: K leaf
   processes of lava's own floating-point models, which do next to nothing (a ``width`` x ``width`` matvec).
   Per repeat and K, timed separately: ``compile`` (no process started), ``create_runtime`` (fork one OS
   process per leaf, build the channels), a first ``run`` of ``steps[0]`` steps (the first steps pay for
   warming up), a second ``run`` of ``steps[1] - steps[0]`` steps (steady state: the cost per step is this
   time divided by its steps), and ``stop``.
2. **The real tiny graph** (``configs/tiny.toml``, d=72, 3 layers, random weights), as ``sim-fused`` (6 leaf
   processes, 1 step per decoded token) and ``sim`` (decomposed, 73 leaves, 39 steps per token), decoding
   ``--real-tokens`` tokens after a 4-token prompt. The steady decode phase is timed as one chunk of steps,
   and the compute inside it is subtracted: the ``run_spk`` of every process model is wrapped (in the parent,
   before the fork) to add up its CPU time per process. Lava's own cost per step is then counted in CPU
   time, ``Lava CPU/step = (CPU of all Lava processes - CPU inside run_spk) / steps`` (wall-time differences do
   not work here: on 2 cores two processes compute at once). ``run_spk`` includes the port ``send``/``recv``
   calls, so this splits Lava's step protocol (phase commands, barrier) from the models' work plus their
   messages. The golden model's time per token on the same net (no Lava) is shown for comparison.

Also recorded per run: CPU time of all Lava child processes (read from ``/proc`` at every chunk boundary) and
the proportional set size (PSS) of the parent plus all children, i.e. the run's real memory. Medians over
repeats; the machine's load (``os.getloadavg``) is printed and saved, because other jobs share the 2 cores.
Writes a table and ``out/bench_lava_overhead.json``.

``InstrumentedRun`` is also used by ``bench_decode.py`` for the 370M ``sim-fused`` figures.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import (CLK_TCK, MIB, MS, OUT_DIR, child_pids, json_out, lava_own_cpu, loadavg, med, medians,
                      proc_cpu_s, proc_pss_bytes, within, write_json)

DEFAULT_OUT = OUT_DIR / "bench_lava_overhead.json"
DEFAULT_LEAVES = (2, 8, 20, 29, 44, 80)  # 8 / 44: the tiny graph fused / decomposed; 29: the 370M sim-fused
RUN_TIMEOUT_S = 900.0
REAL_PROMPT = 4  # prompt tokens before the timed decode of the real graph


# =========================================================================================== machinery
def tree_usage() -> tuple[float, int, int]:
    """(CPU seconds of this process's live children, PSS of this process + children, number of children)."""
    kids = child_pids()
    return (sum(proc_cpu_s(p) for p in kids), proc_pss_bytes(os.getpid()) + sum(proc_pss_bytes(p) for p in kids),
            len(kids))


# --- run_spk instrumentation (set in the parent, inherited by the forked Lava children) ---------------------
_PROFILE_DIR: str | None = None
_CHUNK_ENDS: list[int] = []  # cumulative last step of every chunk
_STATS: dict = {}  # in a child: class name -> [[cpu_s, wall_s, calls] per chunk]


def child_model(pid: int) -> str:
    """The process model(s) a Lava child runs, from the run_spk profile it wrote ("?" when it wrote none: an
    unprofiled run, or asked after the run was torn down)."""
    try:
        return ",".join(json.loads((Path(_PROFILE_DIR) / f"{pid}.json").read_text()))
    except (OSError, TypeError, ValueError):
        return "?"


def _flush_stats() -> None:
    path = Path(_PROFILE_DIR) / f"{os.getpid()}.json"
    path.write_text(json.dumps(_STATS))


def _wrap_run_spk(orig, cls_name: str):
    def run_spk(self):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return orig(self)
        finally:
            dc, dw = time.process_time() - c0, time.perf_counter() - w0
            step = self.time_step
            chunk = min(bisect.bisect_left(_CHUNK_ENDS, step), len(_CHUNK_ENDS) - 1)
            rows = _STATS.setdefault(cls_name, [[0.0, 0.0, 0] for _ in _CHUNK_ENDS])
            rows[chunk][0] += dc
            rows[chunk][1] += dw
            rows[chunk][2] += 1
            if step == _CHUNK_ENDS[-1]:
                _flush_stats()

    run_spk.__wrapped__ = orig
    return run_spk


class _Timeout(Exception):
    pass


class InstrumentedRun:
    """Compile, start and run a Lava graph in chunks of time steps, timing every phase; always torn down.

    ``proc``: any process of the graph; ``chunks``: steps per ``run`` call (their sum is the whole run);
    ``profile``: wrap every process model's ``run_spk`` to time the compute inside each chunk.
    ``run()`` returns a dict: compile_s, create_runtime_s, leaf_processes, chunks (per chunk: steps,
    wall_s, children_cpu_s, compute {model class: {cpu_s, wall_s, calls}}, compute_cpu_s), stop_s,
    pss_peak_mib (parent + children, sampled at chunk boundaries) and ``after_chunk`` results."""

    def __init__(self, proc, run_cfg, chunks, profile: bool = True, timeout: float = RUN_TIMEOUT_S,
                 after_chunk=None):
        self.proc, self.run_cfg, self.chunks = proc, run_cfg, [int(c) for c in chunks]
        self.profile, self.timeout, self.after_chunk = profile, timeout, after_chunk

    def run(self) -> dict:
        global _PROFILE_DIR, _CHUNK_ENDS, _STATS
        from lava.magma.core.run_conditions import RunSteps

        from lava_matmulfree.graph.runtime import raise_fd_limit as _raise_fd_limit, teardown as _teardown

        _raise_fd_limit()
        out: dict = {"chunks": []}
        patched: list = []
        tmp = tempfile.mkdtemp(prefix="lava_prof_")
        use_alarm = self.timeout is not None and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)

        def on_alarm(signum, frame):
            raise _Timeout()

        failed = True
        try:
            if use_alarm:
                signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, self.timeout)
            t0 = time.perf_counter()
            ex = self.proc.compile(self.run_cfg)
            out["compile_s"] = time.perf_counter() - t0
            out["leaf_processes"] = len(ex.process_list)
            out["models"] = sorted({b.proc_model.__name__ for b in ex.proc_builders.values()})
            if self.profile:
                _PROFILE_DIR, _STATS = tmp, {}
                _CHUNK_ENDS = [int(c) for c in np.cumsum(self.chunks)]
                for cls in {b.proc_model for b in ex.proc_builders.values()}:
                    own = "run_spk" in cls.__dict__
                    orig = cls.__dict__["run_spk"] if own else getattr(cls, "run_spk")
                    cls.run_spk = _wrap_run_spk(orig, cls.__name__)
                    patched.append((cls, own, orig))
            cpu0, _, _ = tree_usage()
            t0 = time.perf_counter()
            self.proc.create_runtime(executable=ex)
            out["create_runtime_s"] = time.perf_counter() - t0
            cpu_prev, pss, n_kids = tree_usage()
            out["children"] = n_kids
            out["create_runtime_children_cpu_s"] = cpu_prev - cpu0
            pss_peak = pss
            results = []
            for steps in self.chunks:
                t0 = time.perf_counter()
                self.proc.run(condition=RunSteps(num_steps=steps))
                wall = time.perf_counter() - t0
                cpu, pss, kids = tree_usage()
                pss_peak = max(pss_peak, pss)
                # /proc counts utime and stime in clock ticks, each rounded down: a reading lags by < 2 ticks, so
                # each child's difference of two readings is off by < 2 ticks either way
                out["chunks"].append({"steps": steps, "wall_s": wall, "children_cpu_s": cpu - cpu_prev,
                                      "children_cpu_resolution_s": 2 * kids / CLK_TCK})
                cpu_prev = cpu
                if self.after_chunk is not None:
                    results.append(self.after_chunk(len(out["chunks"]) - 1))
            out["after_chunk"] = results
            out["pss_peak_mib"] = pss_peak / MIB
            t0 = time.perf_counter()
            _teardown(self.proc, failed=False)
            out["stop_s"] = time.perf_counter() - t0
            failed = False
        except _Timeout:
            raise RuntimeError(f"the Lava run did not finish within {self.timeout:.0f} s") from None
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            if failed:
                _teardown(self.proc, failed=True)
            for cls, own, orig in patched:
                if own:
                    cls.run_spk = orig
                else:
                    del cls.run_spk
            stats = [json.loads(p.read_text()) for p in Path(tmp).glob("*.json")]
            shutil.rmtree(tmp, ignore_errors=True)
            _PROFILE_DIR, _CHUNK_ENDS = None, []
        if self.profile:
            for k, ch in enumerate(out["chunks"]):
                comp: dict = {}
                for st in stats:
                    for name, rows in st.items():
                        c = comp.setdefault(name, {"cpu_s": 0.0, "wall_s": 0.0, "calls": 0, "processes": 0})
                        c["cpu_s"] += rows[k][0]
                        c["wall_s"] += rows[k][1]
                        c["calls"] += rows[k][2]
                        c["processes"] += 1
                ch["compute"] = comp
                ch["compute_cpu_s"] = sum(c["cpu_s"] for c in comp.values())
        return out


# =========================================================================================== 1. chains
def build_chain(n_leaves: int, width: int):
    """source -> (n_leaves - 2) Dense -> sink: n_leaves leaf processes; returns the source."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    if n_leaves < 2:
        raise ValueError("a chain needs at least a source and a sink")
    src = Source(data=np.ones((width, 1)))
    prev = src.s_out
    for _ in range(n_leaves - 2):
        d = Dense(weights=np.eye(width))
        prev.connect(d.s_in)
        prev = d.a_out
    sink = Sink(shape=(width,), buffer=1)
    prev.connect(sink.a_in)
    return src


def bench_chains(leaves, width: int, steps, repeats: int, log) -> list[dict]:
    from lava.magma.core.run_configs import Loihi2SimCfg

    s1, s2 = steps
    rows = []
    for n in leaves:
        reps = []
        for r in range(repeats):
            src = build_chain(n, width)
            res = InstrumentedRun(src, Loihi2SimCfg(select_tag="floating_pt"), [s1, s2 - s1], profile=False).run()
            warm, steady = res["chunks"]
            reps.append({"compile_s": res["compile_s"], "create_runtime_s": res["create_runtime_s"],
                         "first_run_s": warm["wall_s"], "ms_per_step": steady["wall_s"] / steady["steps"] * MS,
                         "children_cpu_ms_per_step": steady["children_cpu_s"] / steady["steps"] * MS,
                         "stop_s": res["stop_s"], "pss_peak_mib": res["pss_peak_mib"],
                         "leaf_processes": res["leaf_processes"]})
            log(f"  chain {n:3d} leaves, repeat {r + 1}/{repeats}: {reps[-1]['ms_per_step']:.2f} ms/step, "
                f"create_runtime {reps[-1]['create_runtime_s']:.2f} s, load {loadavg()}")
        row = {"leaf_processes": reps[0]["leaf_processes"], "width": width, "repeats": repeats,
               "steps_timed": s2 - s1}
        row.update(medians(reps, ("ms_per_step", "children_cpu_ms_per_step", "compile_s", "create_runtime_s",
                                  "first_run_s", "stop_s", "pss_peak_mib")))
        row["startup_s"] = row["compile_s"] + row["create_runtime_s"]
        rows.append(row)
    return rows


# =========================================================================================== 2. the real graph
def real_graph_chunks(loop_depth: int, prompt_len: int, new_tokens: int) -> list[int]:
    """[steps until the sink chose the first new token, the steady decode of the other new tokens]."""
    return [prompt_len + loop_depth, (new_tokens - 1) * loop_depth]


def bench_real(backend: str, net, n_new: int, repeats: int, golden_ms: float, log) -> dict:
    from lava_matmulfree.graph.backends import lava_run_config
    from lava_matmulfree.graph.builder import build_graph

    prompt = list(range(1, REAL_PROMPT + 1))
    reps = []
    for r in range(repeats):
        graph = build_graph(net, "fused" if backend == "sim-fused" else "decomposed", capacity=len(prompt) + n_new,
                            record_logits=False)
        graph.set_request(prompt, n_new, started=False)
        chunks = real_graph_chunks(graph.loop_depth, len(prompt), n_new)
        res = InstrumentedRun(graph.source, lava_run_config(backend), chunks).run()
        dec = res["chunks"][1]
        tokens = n_new - 1
        own_ms, own_resolution = lava_own_cpu(dec)
        ms_tok = dec["wall_s"] / tokens * MS
        comp_tok = dec["compute_cpu_s"] / tokens * MS
        reps.append({"ms_per_token": ms_tok, "compute_cpu_ms_per_token": comp_tok,
                     "children_cpu_ms_per_token": dec["children_cpu_s"] / tokens * MS,
                     "ms_per_step": dec["wall_s"] / dec["steps"] * MS,
                     "children_cpu_ms_per_step": dec["children_cpu_s"] / dec["steps"] * MS,
                     "run_spk_cpu_ms_per_step": dec["compute_cpu_s"] / dec["steps"] * MS,
                     "lava_cpu_ms_per_step": own_ms, "lava_cpu_resolution_ms_per_step": own_resolution,
                     "startup_s": res["compile_s"] + res["create_runtime_s"], "stop_s": res["stop_s"],
                     "pss_peak_mib": res["pss_peak_mib"], "leaf_processes": res["leaf_processes"],
                     "steps_per_token": graph.loop_depth,
                     "compute_by_model_ms_per_token": {k: v["cpu_s"] / tokens * MS
                                                        for k, v in dec["compute"].items()}})
        log(f"  tiny {backend}, repeat {r + 1}/{repeats}: {ms_tok:.1f} ms/token "
            f"({reps[-1]['ms_per_step']:.2f} ms/step, compute {comp_tok:.1f} ms/token), load {loadavg()}")
    row = {"backend": backend, "leaf_processes": reps[0]["leaf_processes"],
           "steps_per_token": reps[0]["steps_per_token"], "decoded_tokens_timed": n_new - 1, "repeats": repeats,
           "golden_ms_per_token": golden_ms}
    row.update(medians(reps, ("ms_per_token", "compute_cpu_ms_per_token", "children_cpu_ms_per_token",
                              "ms_per_step", "children_cpu_ms_per_step", "run_spk_cpu_ms_per_step",
                              "lava_cpu_ms_per_step", "lava_cpu_resolution_ms_per_step", "startup_s", "stop_s",
                              "pss_peak_mib")))
    names = reps[0]["compute_by_model_ms_per_token"]
    row["compute_by_model_ms_per_token"] = {k: med([x["compute_by_model_ms_per_token"].get(k, 0.0) for x in reps])
                                            for k in names}
    return row


def golden_ms_per_token(net, n: int = 20) -> float:
    from lava_matmulfree.model.golden_fast import FastGoldenModel as GoldenModel

    g = GoldenModel(net)
    _, st = g.prefill(list(range(1, REAL_PROMPT + 1)))
    times = []
    for k in range(n):
        t0 = time.perf_counter()
        _, st = g.step(k + 5, st)
        times.append(time.perf_counter() - t0)
    return med(times[2:]) * MS


# =========================================================================================== main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--leaves", type=int, nargs="+", default=list(DEFAULT_LEAVES), help="chain lengths")
    p.add_argument("--width", type=int, default=1, help="values per message in the chains (default 1)")
    p.add_argument("--steps", type=int, nargs=2, default=[40, 200], metavar=("FIRST", "TOTAL"),
                   help="steps of the first run and in total; the steady cost per step is timed over the rest")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-real", action="store_true", help="skip the real tiny graph")
    p.add_argument("--real-config", default="tiny")
    p.add_argument("--real-tokens", type=int, default=6, help="new tokens decoded by the real graph (default 6)")
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.steps[1] <= args.steps[0]:
        raise SystemExit("--steps: TOTAL must exceed FIRST")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load_start = loadavg()
    t_start = time.perf_counter()
    log(f"chains of trivial leaf processes (width {args.width}), load {load_start}")
    chains = bench_chains(args.leaves, args.width, args.steps, args.repeats, log)
    real = []
    if not args.no_real:
        from lava_matmulfree.evaluation.accuracy import build_evaluation

        net = build_evaluation(args.real_config, seed=0).net
        g_ms = golden_ms_per_token(net)
        for backend in ("sim-fused", "sim"):
            real.append(bench_real(backend, net, args.real_tokens, args.repeats, g_ms, log))
    load_end = loadavg()

    base = chains[0]["ms_per_step"] if chains else float("nan")
    result = {
        "benchmark": "bench_lava_overhead",
        "command": " ".join([".venv/bin/python", "benchmarks/bench_lava_overhead.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "load_start": load_start, "load_end": load_end, "wall_s": time.perf_counter() - t_start,
        "chains": chains, "real_graph": real,
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                        "machine": platform.machine()},
    }
    write_json(args.out, result)

    print(f"== Lava CPU runtime: cost per time step against leaf processes (width {args.width}) ==")
    print(f"load average at start {load_start}, at end {load_end}; medians of {args.repeats} repeats; "
          f"steady state over {args.steps[1] - args.steps[0]} steps")
    print(f"| leaf processes | ms per step | x {chains[0]['leaf_processes'] if chains else ''}-leaf chain "
          f"| children CPU ms/step | compile s | create_runtime s | stop s | PSS MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in chains:
        print(f"| {r['leaf_processes']} | {r['ms_per_step']:.2f} | {r['ms_per_step'] / base:.1f} "
              f"| {r['children_cpu_ms_per_step']:.2f} | {r['compile_s']:.2f} | {r['create_runtime_s']:.2f} "
              f"| {r['stop_s']:.2f} | {r['pss_peak_mib']:.0f} |")
    if real:
        print()
        print(f"== the real {args.real_config} graph, decode after a {REAL_PROMPT}-token prompt "
              f"({real[0]['decoded_tokens_timed']} tokens timed) ==")
        chain_cpu = {c["leaf_processes"]: c["children_cpu_ms_per_step"] for c in chains}
        print("| backend | leaf processes | steps/token | ms/token | ms/step "
              "| CPU ms/step: all Lava processes (+- /proc) | in run_spk | Lava's own | trivial chain, same leaves "
              "| start-up s | golden ms/token | Lava / golden |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in real:
            ch = chain_cpu.get(r["leaf_processes"])
            print(f"| {r['backend']} | {r['leaf_processes']} | {r['steps_per_token']} | {r['ms_per_token']:.1f} "
                  f"| {r['ms_per_step']:.2f} | {r['children_cpu_ms_per_step']:.2f} +-"
                  f"{r['lava_cpu_resolution_ms_per_step']:.2f} | {r['run_spk_cpu_ms_per_step']:.2f} "
                  f"| {within(r['lava_cpu_ms_per_step'], r['lava_cpu_resolution_ms_per_step'], 2)} "
                  f"| {'-' if ch is None else f'{ch:.2f}'} | {r['startup_s']:.1f} "
                  f"| {r['golden_ms_per_token']:.2f} | {r['ms_per_token'] / r['golden_ms_per_token']:.0f}x |")
        for r in real:
            top = sorted(r["compute_by_model_ms_per_token"].items(), key=lambda kv: -kv[1])[:5]
            print(f"  {r['backend']}: compute per token by model: "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in top))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
