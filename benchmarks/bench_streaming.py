"""Streaming, sessions and probes on the Lava backends, demo model, one run (docs/graph.md):

* time from the request to the first streamed token (start-up included) and tokens/s while streaming (between
  the first and the last token), against the golden model (`reference`) in the same run;
* a chat session of 3 prompts (one graph, one runtime, state reset between prompts) against 3 separate
  `generate` calls (a graph and a runtime each), same tokens;
* the cost of probes: no probes against 8 probes (Var probes of leaves and port probes), per streamed token.

    .venv/bin/python benchmarks/bench_streaming.py [--backends sim-fused sim] [--new 24]

Writes out/bench_streaming.json and prints a table with the machine's load average.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _harness import json_out, write_json

PROMPTS = ("A class definition", "The for statement", "An expression")
PROBES = ("l0.h", "l1.h", "l2.h", "l1.attn_inv_rms", "l2.down_sum_sq", "head.inv_rms", "l0.x_out", "head.logits")


def demo():
    from lava_matmulfree.io.packaged import DEMO_MODEL_DIR
    from lava_matmulfree.model.quantise import QuantisedNetwork
    from lava_matmulfree.io.tokenizer import load_tokenizer

    return QuantisedNetwork.load(DEMO_MODEL_DIR / "compiled.safetensors"), load_tokenizer(DEMO_MODEL_DIR)


def streamed(backend, net, prompt, new, probes=()):
    """generate() with on_token: (generation, [seconds from the call to each token])."""
    from lava_matmulfree.graph.backends import generate

    t0, stamps = time.perf_counter(), []
    gen = generate(backend, net, prompt, new, probes=probes, on_token=lambda t: stamps.append(time.perf_counter() - t0))
    return gen, stamps


def stream_figures(stamps) -> dict:
    return {"first_token_s": stamps[0], "tokens_per_s_streaming": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
            "total_s": stamps[-1]}


def main(argv=None) -> int:
    from lava_matmulfree.graph.backends import generate
    from lava_matmulfree.graph.session import Session

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="+", default=["sim-fused", "sim"])
    ap.add_argument("--new", type=int, default=24, help="new tokens per request (sim: a third of it)")
    ap.add_argument("--out", type=json_out, default="out/bench_streaming.json")
    args = ap.parse_args(argv)
    net, tok = demo()
    prompts = [tok.encode(p, add_bos=True) for p in PROMPTS]
    res = {"load_before": os.getloadavg(), "backends": {}}
    t0 = time.perf_counter()
    ref = [generate("reference", net, p, args.new) for p in prompts]
    res["reference_tokens_per_s"] = 3 * args.new / (time.perf_counter() - t0)
    for b in args.backends:
        new = args.new if b != "sim" else max(2, args.new // 3)
        row: dict = {"new_tokens": new}
        gen, stamps = streamed(b, net, prompts[0], new)
        assert gen.tokens == ref[0].tokens[:new], f"{b}: streamed tokens differ from the golden model"
        row["stream"] = stream_figures(stamps)
        t0 = time.perf_counter()
        separate = [generate(b, net, p, new) for p in prompts]
        row["three_generate_calls_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with Session(b, net, capacity=max(len(p) for p in prompts) + new) as chat:
            answers = [chat.ask(p, new, reset=True) for p in prompts]
        row["chat_session_three_prompts_s"] = time.perf_counter() - t0
        row["same_tokens"] = [a.tokens for a in answers] == [s.tokens for s in separate] == \
            [r.tokens[:new] for r in ref]
        gen_p, stamps_p = streamed(b, net, prompts[0], new, probes=PROBES)
        row["probes"] = {"names": list(PROBES), "with_8_probes": stream_figures(stamps_p),
                         "leaf_processes": gen.leaf_processes}
        row["probes"]["ms_per_token_added"] = 1e3 * (1 / row["probes"]["with_8_probes"]["tokens_per_s_streaming"]
                                                     - 1 / row["stream"]["tokens_per_s_streaming"])
        res["backends"][b] = row
        print(f"{b}: first token {row['stream']['first_token_s']:.2f} s, "
              f"{row['stream']['tokens_per_s_streaming']:.2f} tokens/s streaming; 3 generate calls "
              f"{row['three_generate_calls_s']:.1f} s, chat session {row['chat_session_three_prompts_s']:.1f} s "
              f"(same tokens: {row['same_tokens']}); with 8 probes "
              f"{row['probes']['with_8_probes']['tokens_per_s_streaming']:.2f} tokens/s", flush=True)
    res["load_after"] = os.getloadavg()
    print(f"reference (golden): {res['reference_tokens_per_s']:.0f} tokens/s; load {res['load_after'][0]:.1f}")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
