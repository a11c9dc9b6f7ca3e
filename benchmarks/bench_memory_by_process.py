"""Where the memory of a Lava run is, by process and by mapping (docs/graph.md, "Memory").

    .venv/bin/python benchmarks/bench_memory_by_process.py [--config 370m] [--backend sim-fused]
                     [--net PATH] [--prompt 8] [--tokens 3] [--out out/bench_memory_by_process.json]

Random ternary weights of ``--config`` (``accuracy.build_evaluation``, seed ``--seed``) are compiled and saved to
``--net`` (kept there and reused by later runs when it exists). Two worker subprocesses then load that file as
``bench_decode.py``'s workers do:

- golden: the network loaded, its weights packed, ``FastGoldenModel`` run on a few tokens; PSS before loading and
  after (the figure ``bench_decode.py`` compares sim-fused against);
- lava: the network loaded and packed, the golden model warmed as ``bench_decode.py``'s Lava worker does, the
  graph of ``--backend`` built and run on ``--prompt`` prompt tokens and ``--tokens`` new tokens.

At the end of each run every process's ``/proc/PID/smaps_rollup`` is read (PSS, private clean and dirty, shared,
all MiB), and for the parent, the largest children and one typical child the mappings of ``/proc/PID/smaps``
that hold the most private memory; for the parent and the golden process their largest mappings. Before the
run the Lava worker forks two children that each run one full garbage collection: the private memory that costs
with graph/runtime.py's fork hook freezing the collector, and without.

``--no-gc-freeze``: the whole Lava run without that freeze (the reference); ``--warm-head``: the head norm's
``inv_sqrt`` kernel compiled in the parent before the fork (not done by ``golden_fast.warm_kernels``);
``--show FILE``: print a result again. Wrap it in ``flock /tmp/bench.lock`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import KIB, OUT_DIR, child_pids, json_out, loadavg, run_worker, smaps_kib, write_json

DEFAULT_OUT = OUT_DIR / "bench_memory_by_process.json"
DEFAULT_NET = Path("/tmp/lmf_mem_net/{config}-seed{seed}.safetensors")
ROLLUP_KEYS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")
TOP_MAPPINGS = 6


def rollup_mib(pid: int) -> dict[str, float]:
    """The ``ROLLUP_KEYS`` fields of ``/proc/PID/smaps_rollup``, MiB (empty if the process is gone)."""
    return {k: v / KIB for k, v in smaps_kib(pid, ROLLUP_KEYS).items()}


def mappings(pid: int) -> list[dict]:
    """Every mapping of ``/proc/PID/smaps`` in order: its address range, path (may be empty or ``[heap]`` and the
    like), size, and Rss, Pss and private (clean + dirty) memory, MiB (empty if the process is gone)."""
    rows = []
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            rows.append({"range": head[0], "path": head[5] if len(head) > 5 else "", "mib": (hi - lo) / 2**20,
                         "Rss": 0.0, "Pss": 0.0, "Private": 0.0})
            continue
        key, _, rest = line.partition(":")
        if not rows or not rest.strip().endswith("kB"):
            continue
        if key in ("Private_Clean", "Private_Dirty"):
            rows[-1]["Private"] += int(rest.split()[0]) / KIB
        elif key in ("Pss", "Rss"):
            rows[-1][key] += int(rest.split()[0]) / KIB
    return rows


def _label(m: dict, anon: str = "[anon]") -> str:
    return f"{m['path'] or anon} {m['mib']:.1f} MiB @{m['range'][:12]}"


def _rounded(rows) -> list[dict]:
    return [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def top_mappings(pid: int, n: int = TOP_MAPPINGS) -> list[dict]:
    """The ``n`` mappings of a process holding the most private memory (clean + dirty), grouped by file name
    (anonymous mappings each by themselves, named by their size)."""
    groups: dict[str, dict] = {}
    for m in mappings(pid):
        name = m["path"] if m["path"].startswith("/") else _label(m)
        g = groups.setdefault(name, {"mapping": name, "Private": 0.0, "Pss": 0.0, "Rss": 0.0})
        for key in ("Private", "Pss", "Rss"):
            g[key] += m[key]
    cats: dict[str, float] = {}
    for g in groups.values():
        m = g["mapping"]
        cat = ("shared memory (Lava channels)" if m.startswith(("/dev/shm", "/SYSV")) else
               "libraries" if ".so" in m else "files" if m.startswith("/") else m.split()[0])
        cats[cat] = cats.get(cat, 0.0) + g["Private"]
    rows = sorted(groups.values(), key=lambda g: -g["Private"])[:n]
    rows.append({"mapping": "private by kind: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                              sorted(cats.items(), key=lambda kv: -kv[1])),
                 "Private": sum(cats.values()), "Pss": 0.0, "Rss": 0.0})
    return _rounded(rows)


def largest_mappings(pid: int, n: int = 12) -> list[dict]:
    """The ``n`` mappings of a process with the largest resident size (what the process holds at all)."""
    rows = [{"mapping": _label(m), "Rss": m["Rss"], "Private": m["Private"]} for m in mappings(pid)]
    rows.sort(key=lambda r: -r["Rss"])
    return _rounded(rows[:n])


def fork_gc_cost(freeze: bool) -> float:
    """MiB of private memory a child forked from this process adds by one full garbage collection (what a Lava
    worker pays the first time its collector walks every generation), with graph/runtime.py's fork hook freezing
    the collector (``freeze``) or not."""
    import gc

    real = gc.freeze
    if not freeze:
        gc.freeze = lambda: None
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: wait for the go, collect, report, wait to be read
            try:
                os.close(r)
                before = rollup_mib(os.getpid()).get("Private_Dirty", 0.0)
                gc.collect()
                after = rollup_mib(os.getpid()).get("Private_Dirty", 0.0)
                os.write(w, f"{after - before:.3f}".encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            grown = float(f.read() or "nan")
        os.waitpid(pid, 0)
        return grown
    finally:
        gc.freeze = real


def golden_worker(args) -> int:
    """The golden model in this process, as bench_decode.py's golden worker runs it."""
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    from lava_matmulfree.model.quantise import QuantisedNetwork

    before = rollup_mib(os.getpid())
    net = QuantisedNetwork.load(args.worker).pack_weights()
    g = FastGoldenModel(net)
    _, st = g.prefill([1, 2])
    for tok in range(3, 3 + args.tokens):
        st = g.step(tok, st)[1]
    out = {"before_load": before, "after": rollup_mib(os.getpid()), "mappings": top_mappings(os.getpid()),
           "largest": largest_mappings(os.getpid())}
    Path(args.worker_out).write_text(json.dumps(out))
    return 0


def lava_worker(args) -> int:
    """Build and run the graph in this process; the memory of this process and every child at the end."""
    import bench_lava_overhead as blo

    from lava_matmulfree.graph.backends import GRAPH_KIND, lava_run_config
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    from lava_matmulfree.model.quantise import QuantisedNetwork

    if args.no_gc_freeze:  # the reference: graph/runtime.py's fork hook then freezes nothing
        import gc

        gc.freeze = lambda: None
    net = QuantisedNetwork.load(args.worker).pack_weights()
    FastGoldenModel(net).prefill([1, 2])  # as bench_decode.py's Lava worker
    if args.warm_head:  # the head's aggregator kernel, which golden_fast.warm_kernels does not compile
        FastGoldenModel(net, whole_model=False).inv_rms(np.ones((1, 1), dtype=np.int64), "warm")
    prompt = np.random.default_rng(args.seed + 7).integers(0, net.cfg.vocab_size, args.prompt).tolist()
    graph = build_graph(net, GRAPH_KIND[args.backend], capacity=len(prompt) + args.tokens, record_logits=False)
    graph.set_request(prompt, args.tokens, started=False)
    del net  # the graph holds what it needs
    gc_cost = {"frozen": fork_gc_cost(True), "not_frozen": fork_gc_cost(False)}

    def snapshot(_):
        kids = child_pids()
        procs = [{"pid": os.getpid(), "model": "parent", **rollup_mib(os.getpid())}]
        procs += [{"pid": p, "model": blo.child_model(p), **rollup_mib(p)} for p in kids]
        children = sorted(procs[1:], key=lambda r: -r.get("Pss", 0.0))
        detail = [procs[0]] + children[:3] + children[len(children) // 2:len(children) // 2 + 1]
        for r in detail:
            r["mappings"] = top_mappings(r["pid"])
        procs[0]["largest"] = largest_mappings(os.getpid())
        return procs

    steps = len(prompt) + args.tokens * graph.loop_depth
    res = blo.InstrumentedRun(graph.source, lava_run_config(args.backend), [steps], after_chunk=snapshot).run()
    procs = res["after_chunk"][-1]
    Path(args.worker_out).write_text(json.dumps({"processes": procs, "steps": steps, "fork_gc_mib": gc_cost}))
    return 0


def render(res: dict) -> str:
    procs = res["lava"]["processes"]
    parent, kids = procs[0], sorted(procs[1:], key=lambda r: -r.get("Pss", 0.0))
    g = res["golden"]["after"] if "golden" in res else {"Pss": float("nan")}
    total = sum(r.get("Pss", 0.0) for r in procs)
    lines = [f"load {res['load']}",
             "| process | PSS | private clean | private dirty | shared | model |", "| --- | ---: | ---: | ---: | ---: | --- |"]

    def row(name, r):
        sh = r.get("Shared_Clean", 0.0) + r.get("Shared_Dirty", 0.0)
        return (f"| {name} | {r.get('Pss', 0):.1f} | {r.get('Private_Clean', 0):.1f} | {r.get('Private_Dirty', 0):.1f} "
                f"| {sh:.1f} | {r['model']} |")

    lines.append(row("parent", parent))
    for i, r in enumerate(kids):
        lines.append(row(f"child {i}", r))
    lines.append(f"| all {len(procs)} processes | {total:.1f} | | | | |")
    if "golden" in res:
        lines.append(f"| golden process (before load {res['golden']['before_load'].get('Pss', 0):.1f}) | "
                     f"{g.get('Pss', 0):.1f} | {g.get('Private_Clean', 0):.1f} | {g.get('Private_Dirty', 0):.1f} | | |")
        lines.append(f"ratio {total / g['Pss']:.2f}x golden")
    by_model: dict[str, list] = {}
    for r in kids:
        by_model.setdefault(r["model"], []).append(r)
    lines.append("by model: " + "; ".join(
        f"{m} x{len(rs)}: PSS {np.median([r.get('Pss', 0) for r in rs]):.1f}, private "
        f"{np.median([r.get('Private_Clean', 0) + r.get('Private_Dirty', 0) for r in rs]):.1f} (medians)"
        for m, rs in sorted(by_model.items(), key=lambda kv: -len(kv[1]))))
    gc_cost = res["lava"].get("fork_gc_mib")
    if gc_cost:
        lines.append(f"a full garbage collection in a child forked from the parent: +{gc_cost['frozen']:.1f} MiB "
                     f"private with the collector frozen at the fork, +{gc_cost['not_frozen']:.1f} MiB without")
    for who, r in (("parent", parent), ("golden process", res.get("golden", {}))):
        if "largest" in r:
            lines.append(f"-- largest mappings of the {who} (resident, private MiB):")
            lines += [f"   {m['Rss']:8.1f} rss {m['Private']:8.1f} private  {m['mapping']}" for m in r["largest"]]
    for r in [parent] + kids:
        if "mappings" in r:
            lines.append(f"-- mappings of {r['model']} (pid {r['pid']}), most private first:")
            lines += [f"   {m['Private']:8.1f} private {m['Pss']:8.1f} pss  {m['mapping']}" for m in r["mappings"]]
    return "\n".join(lines)


def show(path: Path) -> None:
    """Print a result file again."""
    print(render(json.loads(Path(path).read_text())))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="sim-fused")
    p.add_argument("--prompt", type=int, default=8)
    p.add_argument("--tokens", type=int, default=3)
    p.add_argument("--net", type=Path, help="saved network (made when missing; default under /tmp)")
    p.add_argument("--timeout", type=float, default=1200.0)
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    p.add_argument("--skip-golden", action="store_true")
    p.add_argument("--warm-head", action="store_true", help="compile the head norm's inv_sqrt kernel before the fork")
    p.add_argument("--no-gc-freeze", action="store_true", help="the reference: no gc.freeze before Lava forks")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--show", type=Path, help="print the table of a result file and exit")
    args = p.parse_args(argv)
    if args.show:
        show(args.show)
        return 0
    if args.worker:
        return golden_worker(args) if args.mode == "golden" else lava_worker(args)

    path = args.net or Path(str(DEFAULT_NET).format(config=args.config, seed=args.seed))
    if not path.is_file():
        from lava_matmulfree.evaluation.accuracy import build_evaluation

        t0 = time.perf_counter()
        setup = build_evaluation(args.config, seed=args.seed, num_calib=2, calib_length=8, dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        setup.net.save(path)
        del setup
        print(f"built {args.config} in {time.perf_counter() - t0:.0f} s -> {path}", file=sys.stderr)
    flags = ["--worker", str(path), "--seed", str(args.seed), "--prompt", str(args.prompt), "--tokens",
             str(args.tokens), "--backend", args.backend] + (["--no-gc-freeze"] if args.no_gc_freeze else []) \
        + (["--warm-head"] if args.warm_head else [])
    res = {"config": args.config, "backend": args.backend, "load": loadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        res["lava"] = run_worker(__file__, flags + ["--mode", "lava"], Path(tmp) / "lava.json", args.timeout,
                                 check=True)[1]
        if not args.skip_golden:
            res["golden"] = run_worker(__file__, flags + ["--mode", "golden"], Path(tmp) / "golden.json",
                                       args.timeout, check=True)[1]
    res["load_end"] = loadavg()
    write_json(args.out, res)
    print(f"== {args.config}, {args.backend}: memory by process at the end of a run ==")
    print(render(res))
    print(f"load at the end {res['load_end']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
