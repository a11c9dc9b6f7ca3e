"""Memory of a Lava run by process: what each worker forked from the building process holds (docs/graph.md, "Memory").

    .venv/bin/python benchmarks/bench_fork_memory.py [--config 370m] [--seed 0] [--backend sim-fused]
                                                     [--prompt 16] [--out out/bench_fork_memory.json]

Random ternary weights of ``--config`` (``accuracy.build_evaluation``, seed ``--seed``) are compiled once and saved;
two worker subprocesses then load that network, pack its weights, build the graph and run ``--prompt`` prompt tokens
and 3 new tokens: one as the package does it (``build_graph`` compiles the kernels in the building process before
Lava forks: ``golden_fast.warm_kernels``) and one with that warm-up replaced by nothing, the reference of the same
run. At the end of each run every process's ``/proc/PID/smaps_rollup`` is read: proportional set size (PSS) and
private dirty memory, grouped by the process model each child runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from _harness import KIB, OUT_DIR, child_pids, json_out, run_worker as _run_worker, smaps_kib, write_json

DEFAULT_OUT = OUT_DIR / "bench_fork_memory.json"
NEW_TOKENS = 3


def smaps_mib(pid: int) -> dict[str, float]:
    """Pss and Private_Dirty of a process, MiB (empty if it is gone)."""
    return {k: v / KIB for k, v in smaps_kib(pid, ("Pss", "Private_Dirty")).items()}


def worker(args) -> int:
    """In a subprocess: load, pack, build, run; then the memory of this process and of every child."""
    import bench_lava_overhead as blo

    from lava_matmulfree.model import golden_fast
    from lava_matmulfree.graph.backends import GRAPH_KIND, lava_run_config
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.model.quantise import QuantisedNetwork

    if args.no_warm:
        golden_fast.warm_kernels = lambda net: None  # the reference: every worker compiles or loads its own kernels
    net = QuantisedNetwork.load(args.worker).pack_weights()
    prompt = np.random.default_rng(args.seed + 7).integers(0, net.cfg.vocab_size, args.prompt).tolist()
    graph = build_graph(net, GRAPH_KIND[args.backend], capacity=len(prompt) + NEW_TOKENS, record_logits=False)
    graph.set_request(prompt, NEW_TOKENS, started=False)

    def snapshot(_):
        kids = child_pids()
        models = {pid: blo.child_model(pid) for pid in kids}
        return {"parent": smaps_mib(os.getpid()), "children": [(models[p], smaps_mib(p)) for p in kids]}

    steps = len(prompt) + NEW_TOKENS * graph.loop_depth
    res = blo.InstrumentedRun(graph.source, lava_run_config(args.backend), [steps], after_chunk=snapshot).run()
    Path(args.worker_out).write_text(json.dumps({"memory": res["after_chunk"][-1], "steps": steps}))
    return 0


def summarise(mem: dict) -> dict:
    """Totals and, per process model, the count, mean PSS and mean private dirty memory."""
    by_model = defaultdict(list)
    for model, m in mem["children"]:
        by_model[model].append(m)
    rows = {model: {"processes": len(ms), "pss_mib": float(np.mean([m.get("Pss", 0.0) for m in ms])),
                    "private_dirty_mib": float(np.mean([m.get("Private_Dirty", 0.0) for m in ms]))}
            for model, ms in by_model.items()}
    everyone = [mem["parent"]] + [m for _, m in mem["children"]]
    return {"processes": len(everyone), "total_pss_mib": sum(m.get("Pss", 0.0) for m in everyone),
            "total_private_dirty_mib": sum(m.get("Private_Dirty", 0.0) for m in everyone),
            "parent": mem["parent"], "by_model": rows}


def run_worker(path: Path, args, no_warm: bool) -> dict:
    out = path.parent / f"fork_memory_{'nowarm' if no_warm else 'warm'}.json"
    flags = ["--worker", str(path), "--seed", str(args.seed), "--prompt", str(args.prompt), "--backend", args.backend]
    return _run_worker(__file__, flags + (["--no-warm"] if no_warm else []), out, args.timeout, check=True)[1]


def render(res: dict) -> str:
    w, r = res["warm"], res["no_warm"]
    lines = ["| process model | processes | PSS MiB (warm-up / none) | private dirty MiB (warm-up / none) |",
             "| --- | ---: | ---: | ---: |"]
    for model in sorted(w["by_model"], key=lambda m: -w["by_model"][m]["pss_mib"] * w["by_model"][m]["processes"]):
        a, b = w["by_model"][model], r["by_model"].get(model, {})
        lines.append(f"| {model} | {a['processes']} | {a['pss_mib']:.1f} / {b.get('pss_mib', float('nan')):.1f} | "
                     f"{a['private_dirty_mib']:.1f} / {b.get('private_dirty_mib', float('nan')):.1f} |")
    lines.append(f"| all {w['processes']} processes (sum) | | {w['total_pss_mib']:.0f} / {r['total_pss_mib']:.0f} | "
                 f"{w['total_private_dirty_mib']:.0f} / {r['total_private_dirty_mib']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="sim-fused", choices=("sim-fused", "sim-stack", "sim-mixers", "sim"))
    p.add_argument("--prompt", type=int, default=16, help="prompt tokens of each run (default 16)")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--no-warm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    from lava_matmulfree.evaluation.accuracy import build_evaluation

    t0 = time.perf_counter()
    setup = build_evaluation(args.config, seed=args.seed, num_calib=2, calib_length=8, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.safetensors"
        setup.net.save(path)
        print(f"built {args.config} in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.2f}",
              file=sys.stderr)
        res = {"config": args.config, "seed": args.seed, "backend": args.backend, "prompt": args.prompt,
               "warm": summarise(run_worker(path, args, no_warm=False)["memory"]),
               "no_warm": summarise(run_worker(path, args, no_warm=True)["memory"])}
    write_json(args.out, res)
    print(f"== {args.config}, {args.backend}: memory by process at the end of a run (random weights, seed "
          f"{args.seed}) ==")
    print(render(res))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
