"""The subprocesses of bench_decode.py (``--golden-worker``, ``--lava-worker``; bench_large.py runs them too) and
the summary of the Lava runs.

Not a benchmark itself. Each worker loads the network bench_decode.py saved, so its memory figures are those of
a process that only runs the model: ``golden_worker`` (the golden model as a deployment runs it) and
``lava_worker`` (each Lava backend, run in the chunks of ``lava_chunks``, then Lava's floor: a chain of trivial
processes). ``summarise_lava``: medians over one backend's repeats.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _harness import HERE, MIB, MS, child_pids, lava_own_cpu_med, loadavg, med, proc_pss_bytes, rss_bytes
from _harness import run_worker as _run_worker
from _decode_rows import resident_bytes

SCRIPT = HERE / "bench_decode.py"  # the workers are its --golden-worker and --lava-worker modes
LAVA_BACKENDS = ("sim-fused", "sim-stack")  # the Lava backends the worker can time


def lava_chunks(loop_depth: int, prompt_len: int, new_tokens: int) -> list[int]:
    """[first prompt token, steady prefill, drain + first new token, steady decode] steps (bench_decode.py's
    docstring): the prompt streams one token per step, every new token takes one loop depth."""
    return [1, prompt_len - 1, loop_depth, (new_tokens - 1) * loop_depth]


def pss_mib(pid: int) -> float:
    return proc_pss_bytes(pid) / MIB


def process_pss_mib() -> dict:
    """PSS of this process and of each child (MiB), largest first: where a Lava run's memory is."""
    from bench_lava_overhead import child_model

    kids = sorted(((pss_mib(k), k) for k in child_pids()), reverse=True)
    return {"parent": pss_mib(os.getpid()), "children": [round(v, 1) for v, _ in kids],
            "children_models": [child_model(k) for _, k in kids]}


def golden_worker(args) -> int:
    """In a subprocess: the golden model as a deployment runs it (network loaded from its file, weights packed,
    kernels warm): PSS before loading (the interpreter and imports) and after, and the model-held bytes."""
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    from lava_matmulfree.model.quantise import QuantisedNetwork

    base = pss_mib(os.getpid())
    net = QuantisedNetwork.load(args.golden_worker).pack_weights()
    g = FastGoldenModel(net)
    _, st = g.prefill([1, 2])
    t0 = time.perf_counter()
    for tok in range(3, 3 + args.decode):
        st = g.step(tok, st)[1]
    dec = (time.perf_counter() - t0) / args.decode
    plan = g.model_plan()
    out = {"pss_before_load_mib": base, "pss_mib": pss_mib(os.getpid()), "rss_mib": rss_bytes() / MIB,
           "model_held_mib": resident_bytes(g) / MIB, "packed_mib": plan.weight_bytes / MIB if plan else None,
           "embed_mib": net.embed.nbytes / MIB, "decode_ms_per_token": dec * MS, "load": loadavg()}
    Path(args.worker_out).write_text(json.dumps(out))
    return 0


def run_lava(net, backend: str, prompt: list, tokens: int, after_chunk, run_cfg=None, head_kind=None):
    """One request (``prompt``, ``tokens`` new) on a fresh graph of ``backend`` in the chunks of
    :func:`lava_chunks`, timed by ``bench_lava_overhead.InstrumentedRun``; ``after_chunk(graph, i)`` runs after
    each chunk. ``run_cfg``: the backend's own unless given; ``head_kind``: as ``build_graph``'s. Returns (the
    run's figures, the graph)."""
    from bench_lava_overhead import InstrumentedRun

    from lava_matmulfree.graph.backends import GRAPH_KIND, lava_run_config
    from lava_matmulfree.graph.builder import build_graph

    graph = build_graph(net, GRAPH_KIND[backend], capacity=len(prompt) + tokens, record_logits=False,
                        head_kind=head_kind)
    graph.set_request(prompt, tokens, started=False)
    chunks = lava_chunks(graph.loop_depth, len(prompt), tokens)
    res = InstrumentedRun(graph.source, run_cfg or lava_run_config(backend), chunks,
                          after_chunk=lambda i: after_chunk(graph, i)).run()
    return res, graph


def lava_worker(args) -> int:
    """In a subprocess: run each Lava backend on the saved network (weights packed once, before the fork), write
    the per-repeat results as JSON."""
    from bench_lava_overhead import InstrumentedRun

    from lava_matmulfree.model.golden_fast import FastGoldenModel as GoldenModel
    from lava_matmulfree.model.quantise import QuantisedNetwork

    net = QuantisedNetwork.load(args.lava_worker).pack_weights()
    t0 = time.perf_counter()
    GoldenModel(net).prefill([1, 2])  # numba kernels and packed weights in memory before the fork
    warm_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 7)
    prompt = rng.integers(0, net.cfg.vocab_size, args.lava_prompt).tolist()
    backends = {}
    for backend in args.lava_backends:
        reps = []
        for r in range(args.lava_repeats):
            res, graph = run_lava(net, backend, prompt, args.lava_tokens, lambda graph, i: process_pss_mib())
            res["process_pss_mib"] = res.pop("after_chunk")[-1]
            res["chunk_names"] = ["first", "prefill", "drain", "decode"]
            res["steps_per_decode_token"] = graph.loop_depth
            res["load"] = loadavg()
            reps.append(res)
            print(f"  {backend} repeat {r + 1}/{args.lava_repeats}: decode "
                  f"{res['chunks'][3]['wall_s'] / (args.lava_tokens - 1) * MS:.0f} ms/token, "
                  f"start-up {res['compile_s'] + res['create_runtime_s']:.1f} s, PSS {res['pss_peak_mib']:.0f} MiB, "
                  f"load {loadavg()}", file=sys.stderr, flush=True)
        backends[backend] = reps
    # Lava's floor in this process: a chain of as many trivial leaf processes as the first backend's, as many steps
    from bench_lava_overhead import build_chain
    from lava.magma.core.run_configs import Loihi2SimCfg

    first = backends[args.lava_backends[0]][0]
    n_leaves, dec_steps = first["leaf_processes"], first["chunks"][3]["steps"]
    chain = InstrumentedRun(build_chain(n_leaves, 1), Loihi2SimCfg(select_tag="floating_pt"),
                            [dec_steps, dec_steps], profile=False).run()
    steady = chain["chunks"][1]
    floor = {"leaf_processes": n_leaves, "width": 1, "steps": steady["steps"],
             "ms_per_step": steady["wall_s"] / steady["steps"] * MS,
             "children_cpu_ms_per_step": steady["children_cpu_s"] / steady["steps"] * MS, "load": loadavg()}
    Path(args.worker_out).write_text(json.dumps({"warm_s": warm_s, "backends": backends, "chain_floor": floor,
                                                 "prompt_len": args.lava_prompt, "new_tokens": args.lava_tokens}))
    return 0


def run_worker(mode: str, path: Path, args, log, extra=()) -> dict | None:
    """Run bench_decode.py as a worker subprocess (``--lava-worker`` / ``--golden-worker``) on the saved network."""
    rc, data = _run_worker(SCRIPT, [f"--{mode}-worker", str(path), "--seed", str(args.seed), "--decode",
                                    str(args.decode), *extra], path.parent / f"{mode}.json", args.lava_timeout)
    if data is None:
        log(f"{mode} worker failed (exit {rc})")
    return data


def summarise_lava(data: dict, backend: str) -> dict:
    """Medians over one backend's repeats: decode / prefill per token and per step, start-up, PSS, CPU split."""
    reps = data["backends"][backend]
    n_dec = data["new_tokens"] - 1
    summary = {"prompt_len": data["prompt_len"], "new_tokens": data["new_tokens"], "repeats": len(reps),
               "leaf_processes": reps[0]["leaf_processes"], "steps_per_decode_token": reps[0]["steps_per_decode_token"],
               "worker_warm_s": data["warm_s"], "loads": [r["load"] for r in reps],
               "chain_floor": data["chain_floor"]}

    def per(key_fn):
        vals = [key_fn(r) for r in reps]
        return med(vals), vals

    summary["decode_ms_per_token"], summary["decode_ms_per_token_all"] = per(
        lambda r: r["chunks"][3]["wall_s"] / n_dec * MS)
    summary["prefill_ms_per_token"], summary["prefill_ms_per_token_all"] = per(
        lambda r: r["chunks"][1]["wall_s"] / max(r["chunks"][1]["steps"], 1) * MS)
    summary["prompt_to_first_token_s"], _ = per(lambda r: sum(c["wall_s"] for c in r["chunks"][:3]))
    summary["startup_s"], summary["startup_s_all"] = per(lambda r: r["compile_s"] + r["create_runtime_s"])
    summary["compile_s"], _ = per(lambda r: r["compile_s"])
    summary["create_runtime_s"], _ = per(lambda r: r["create_runtime_s"])
    summary["stop_s"], _ = per(lambda r: r["stop_s"])
    summary["pss_peak_mib"], _ = per(lambda r: r["pss_peak_mib"])
    summary["process_pss_mib"] = reps[-1].get("process_pss_mib")
    for k, name in ((1, "prefill"), (3, "decode")):
        steps = [r["chunks"][k]["steps"] for r in reps]
        summary[f"{name}_ms_per_step"] = med([r["chunks"][k]["wall_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        summary[f"{name}_children_cpu_ms_per_step"] = med(
            [r["chunks"][k]["children_cpu_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        (summary[f"{name}_lava_cpu_ms_per_step"],
         summary[f"{name}_lava_cpu_resolution_ms_per_step"]) = lava_own_cpu_med([r["chunks"][k] for r in reps])
        summary[f"{name}_compute_cpu_ms_per_step"] = med(
            [r["chunks"][k]["compute_cpu_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        models = sorted({m for r in reps for m in r["chunks"][k]["compute"]})
        summary[f"{name}_compute_by_model_ms_per_step"] = {
            m: med([r["chunks"][k]["compute"].get(m, {"cpu_s": 0.0})["cpu_s"] / r["chunks"][k]["steps"] * MS
                    for r in reps]) for m in models}
        summary[f"{name}_steps"] = steps[0]
    summary["raw"] = reps
    return summary


