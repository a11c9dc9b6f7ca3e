"""A Lava run's time estimate (graph/plan.py) against the run: per prompt token and per new token, each backend.

For each ``--backends`` entry, one ``generate`` on the model (the shipped demo model, or ``--config``'s random
weights) with a ``--prompt``-token prompt and ``--new`` new tokens, no logits kept. The steady prefill is timed
between the ``on_prompt`` calls from the prompt's tenth to its last token, the decode between the first and the
last streamed token; beside each, ``plan_run``'s estimate for the same request and estimate / measured (the
constants' fit: docs/reliability.md, "Sizes"; graph/plan.py, PREFILL_FIT).

    .venv/bin/python benchmarks/plan_fit.py [--backends sim-fused sim-stack sim-mixers sim] [--prompt 1500]
"""
from __future__ import annotations

import argparse
import sys
import time

from _harness import MS, OUT_DIR, finish, json_out, loadavg

DEFAULT_OUT = OUT_DIR / "plan_fit.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", default=["sim-fused", "sim-stack", "sim-mixers", "sim"])
    p.add_argument("--config", default=None, help="random weights of this config (default: the demo model)")
    p.add_argument("--prompt", type=int, default=1500, help="prompt tokens (default 1500)")
    p.add_argument("--new", type=int, default=6, help="new tokens (default 6)")
    p.add_argument("--out", type=json_out, default=str(DEFAULT_OUT))
    return p.parse_args(argv)


def load_net(config):
    if config is not None:
        from lava_matmulfree.evaluation.accuracy import build_evaluation

        return build_evaluation(config, seed=0, num_calib=1, calib_length=8).net
    from lava_matmulfree.io.packaged import COMPILED_FILE, packaged_model
    from lava_matmulfree.model.quantise import QuantisedNetwork

    return QuantisedNetwork.load(packaged_model("demo") / COMPILED_FILE)


def measure(net, backend: str, n_prompt: int, n_new: int) -> dict:
    from lava_matmulfree.config import RunConfig
    from lava_matmulfree.cli.common import PACKED_WEIGHT_BACKENDS  # as the command line packs them
    from lava_matmulfree.graph.backends import generate
    from lava_matmulfree.graph.plan import plan_run

    if backend in PACKED_WEIGHT_BACKENDS:
        net.pack_weights()
    entered, tokens = {}, []
    prompt = [5 + (i * 7) % (net.cfg.vocab_size - 5) for i in range(n_prompt)]
    generate(backend, net, prompt, n_new, run=RunConfig(backend=backend, record_logits=False),
             on_prompt=lambda k: entered.setdefault(k, time.perf_counter()),
             on_token=lambda t: tokens.append(time.perf_counter()))
    marks = sorted(entered)
    first = marks[len(marks) // 10]
    prefill = (entered[marks[-1]] - entered[first]) / (marks[-1] - first)
    decode = (tokens[-1] - tokens[0]) / (len(tokens) - 1)
    plan = plan_run(backend, net.cfg, n_prompt, n_new, record_logits=False, stream=True)
    est_prefill = (plan.seconds - plan.start_seconds - n_new * plan.seconds_per_token) / n_prompt
    return {"prefill_ms": prefill * MS, "prefill_estimate_ms": est_prefill * MS,
            "prefill_estimate_over_measured": est_prefill / prefill, "decode_ms": decode * MS,
            "decode_estimate_ms": plan.seconds_per_token * MS,
            "decode_estimate_over_measured": plan.seconds_per_token / decode, "load": loadavg()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.new < 2 or args.prompt < 20:
        print("error: --new must be >= 2 and --prompt >= 20 (a steady stretch to time)", file=sys.stderr)
        return 2
    net = load_net(args.config)
    res = {"config": args.config or "demo", "prompt": args.prompt, "new": args.new, "load_start": loadavg(),
           "backends": {}}
    print(f"{res['config']}: {args.prompt}-token prompt, {args.new} new tokens; ms per token, estimate / measured")
    for b in args.backends:  # one at a time: a run's own processes are the machine's load
        r = res["backends"][b] = measure(net, b, args.prompt, args.new)
        print(f"{b:>10}: prompt {r['prefill_estimate_ms']:.2f} / {r['prefill_ms']:.2f} "
              f"({r['prefill_estimate_over_measured']:.2f}x), new {r['decode_estimate_ms']:.1f} / "
              f"{r['decode_ms']:.1f} ({r['decode_estimate_over_measured']:.2f}x); load {r['load']}")
    return finish(res, args.out)


if __name__ == "__main__":
    sys.exit(main())
