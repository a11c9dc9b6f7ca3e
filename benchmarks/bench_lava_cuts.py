"""What Lava does per generated token on sim-fused and sim-stack, before and after each cut (issue 26), in one run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_lava_cuts.py [--config 370m] [--prompt 48]
        [--tokens 17] [--repeats 2] [--variants ...] [--out out/bench_lava_cuts.json]

Weights: random (``random_params`` of the config, seed ``--seed``), ternarised, calibrated on 2 x 8 random tokens
and compiled as benchmarks/bench_decode.py does; the network is saved, loaded again and held only packed
(``QuantisedNetwork.pack_weights``), so the Lava workers fork from a process holding what bench_decode.py's Lava
worker holds. Each variant is one graph of that network run by its backend's run config
(``graph.backends.lava_run_config``) in the chunks bench_decode.py times (first prompt token, the rest of the
prompt, drain + first new token, the other new tokens: ``_decode_workers.lava_chunks``) through
``bench_lava_overhead.InstrumentedRun``; the figures are the decode chunk's, medians over ``--repeats``, the
variants interleaved within each repeat (the machine's load average is recorded beside them).

Variants (``VARIANTS``): ``<backend>`` (the head the backend selects: the fused ``LmHead`` model, processes/lm_head)
and ``<backend>/decomposed-head`` (the cut undone: the run config's exception map gives ``LmHead`` its
SubProcessModel, final norm, fan-in, aggregator, broadcast and LM head Dense as 5 leaf processes, 3 steps per new
token); ``<backend>/lava-channels`` (the fused head, with Lava's own channel ports in the workers, a helper thread
per port, instead of graph/channels.py's direct ones: ``channels.set_direct(False)`` for that run). Every variant
must choose the same tokens (greedy); the script stops with an error otherwise.

Columns: tokens/s and ms per token of the decode chunk, ms per step, steps per new token, leaf processes, the CPU
of all Lava workers per step and the part of it outside the models' ``run_spk`` (Lava's own), and sim-fused's
tokens/s over sim-stack's with the same head and channel ports.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import MS, OUT_DIR, json_out, lava_own_cpu_med, loadavg, med, within, write_json
from _decode_workers import lava_chunks, run_lava

#: name -> (backend, head models: graph.builder.HEAD_TIMING key, direct channel ports in the workers)
VARIANTS = {"sim-fused/decomposed-head": ("sim-fused", "decomposed", True), "sim-fused": ("sim-fused", "fused", True),
            "sim-fused/lava-channels": ("sim-fused", "fused", False),
            "sim-stack/decomposed-head": ("sim-stack", "decomposed", True), "sim-stack": ("sim-stack", "fused", True),
            "sim-stack/lava-channels": ("sim-stack", "fused", False)}
#: the ratios reported: label -> the variants' name suffix
RATIOS = {"fused head": "", "decomposed head": "/decomposed-head", "Lava's channels": "/lava-channels"}
DEFAULT_OUT = OUT_DIR / "bench_lava_cuts.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-sequences", type=int, default=2)
    p.add_argument("--calib-length", type=int, default=8)
    p.add_argument("--prompt", type=int, default=48, help="prompt tokens of each run (default 48)")
    p.add_argument("--tokens", type=int, default=17, help="new tokens of each run (default 17; 16 are timed)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    return p.parse_args(argv)


def run_config(backend: str, head: str):
    """The backend's run config; ``head`` "decomposed": LmHead given its SubProcessModel (the cut undone)."""
    from lava_matmulfree.graph.backends import lava_run_config

    cfg = lava_run_config(backend)
    if head == "decomposed":
        from lava_matmulfree.processes.lm_head.models import SubLmHeadModel
        from lava_matmulfree.processes.lm_head.process import LmHead

        cfg.exception_proc_model_map[LmHead] = SubLmHeadModel
    return cfg


def run_variant(net, backend: str, head: str, prompt: list, tokens: int, direct: bool = True) -> dict:
    """One run of a variant; ``direct``: the workers' channel ports as graph/channels.py makes them (else Lava's)."""
    from lava_matmulfree.graph import channels

    last = len(lava_chunks(1, len(prompt), tokens)) - 1  # the same number of chunks for every loop depth

    def sink_tokens(graph, i):
        return graph.sink.tokens.get().tolist() if i == last else None

    cfg = run_config(backend, head)  # installs graph/channels.py's ports
    previous = channels.set_direct(direct)
    try:
        res, graph = run_lava(net, backend, prompt, tokens, sink_tokens, run_cfg=cfg, head_kind=head)
    finally:
        channels.set_direct(previous)
    res["tokens"] = [int(round(t)) for t in res.pop("after_chunk")[-1][:tokens]]
    res["steps_per_token"] = graph.loop_depth
    res["load"] = loadavg()
    return res


def summarise(reps: list, tokens: int) -> dict:
    dec = [r["chunks"][3] for r in reps]
    own_ms, own_resolution = lava_own_cpu_med(dec)
    n = tokens - 1
    ms_tok = med([c["wall_s"] / n * MS for c in dec])
    return {"tokens_per_s": MS / ms_tok, "ms_per_token": ms_tok,
            "ms_per_step": med([c["wall_s"] / c["steps"] * MS for c in dec]),
            "steps_per_token": reps[0]["steps_per_token"], "leaf_processes": reps[0]["leaf_processes"],
            "cpu_ms_per_step": med([c["children_cpu_s"] / c["steps"] * MS for c in dec]),
            "lava_cpu_ms_per_step": own_ms, "lava_cpu_resolution_ms_per_step": own_resolution,
            "ms_per_token_all": [c["wall_s"] / n * MS for c in dec], "loads": [r["load"] for r in reps],
            "models": reps[0]["models"]}


def table(rows: dict) -> str:
    head = ("| variant | tokens/s | ms per token | ms per step | steps per token | leaf processes | Lava workers' "
            "CPU ms per step, +- what /proc resolves (Lava's own) |\n| --- | --- | --- | --- | --- | --- | --- |")
    lines = [head]
    for name, s in rows.items():
        lines.append(f"| {name} | {s['tokens_per_s']:.1f} | {s['ms_per_token']:.1f} | {s['ms_per_step']:.1f} | "
                     f"{s['steps_per_token']} | {s['leaf_processes']} | {s['cpu_ms_per_step']:.1f} "
                     f"+-{s['lava_cpu_resolution_ms_per_step']:.1f} "
                     f"({within(s['lava_cpu_ms_per_step'], s['lava_cpu_resolution_ms_per_step'])}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tokens < 2:
        raise SystemExit("--tokens must be >= 2 (the decode chunk times tokens 2..N)")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    from lava_matmulfree.model.quantise import QuantisedNetwork

    t0 = time.perf_counter()
    load_start = loadavg()
    setup = build_evaluation(args.config, seed=args.seed, num_calib=args.calib_sequences,
                             calib_length=args.calib_length, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="bench_lava_cuts_") as tmp:
        path = Path(tmp) / "net.safetensors"
        setup.net.save(path)
        del setup
        gc.collect()
        net = QuantisedNetwork.load(path).pack_weights()
    cfg = net.cfg
    log(f"{args.config}: L={cfg.num_layers}, d={cfg.hidden_size}, V={cfg.vocab_size}; built in "
        f"{time.perf_counter() - t0:.1f} s, load {loadavg()}")
    rng = np.random.default_rng(args.seed + 7)
    prompt = rng.integers(0, cfg.vocab_size, args.prompt).tolist()
    logits, st = FastGoldenModel(net).prefill(prompt)  # the golden model's greedy tokens, and warm kernels
    golden = [int(np.argmax(logits[-1]))]
    g = FastGoldenModel(net)
    for _ in range(args.tokens - 1):
        step, st = g.step(golden[-1], st)
        golden.append(int(np.argmax(step)))
    reps: dict = {v: [] for v in args.variants}
    for r in range(args.repeats):
        order = args.variants[r % len(args.variants):] + args.variants[:r % len(args.variants)]
        for name in order:
            backend, head, direct = VARIANTS[name]
            res = run_variant(net, backend, head, prompt, args.tokens, direct)
            if res["tokens"] != golden:
                raise SystemExit(f"{name}: tokens {res['tokens']} differ from the golden model's {golden}")
            reps[name].append(res)
            dec = res["chunks"][3]
            log(f"  repeat {r + 1}/{args.repeats} {name}: {dec['wall_s'] / (args.tokens - 1) * MS:.1f} ms/token, "
                f"{dec['wall_s'] / dec['steps'] * MS:.1f} ms/step, {res['leaf_processes']} leaves, load {loadavg()}")
    rows = {name: summarise(reps[name], args.tokens) for name in args.variants}
    ratios = {}
    for label, suffix in RATIOS.items():
        f, s = rows.get("sim-fused" + suffix), rows.get("sim-stack" + suffix)
        if f and s:
            ratios[label] = f["tokens_per_s"] / s["tokens_per_s"]
    out = {"config": args.config, "prompt_len": args.prompt, "new_tokens": args.tokens, "repeats": args.repeats,
           "load_start": load_start, "load_end": loadavg(), "rows": rows, "sim_fused_over_sim_stack": ratios,
           "tokens": golden, "raw": {k: [{kk: vv for kk, vv in r.items() if kk != "models"} for r in v]
                                     for k, v in reps.items()}}
    write_json(args.out, out)
    print(table(rows))
    print("sim-fused / sim-stack tokens/s: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"load average: start {load_start}, end {out['load_end']}; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
