"""Decode and prefill speed and memory of every way to run the model, against PyTorch fp32, in one run.

    .venv/bin/python benchmarks/bench_decode.py [--config 370m] [--seed 0] [--prompt 128] [--decode 16]
                                                [--repeats 5] [--lava-backends sim-fused sim-stack]
                                                [--lava-prompt 48] [--lava-tokens 17] [--lava-repeats 3]
                                                [--no-lava] [--out out/bench_decode.json]
    .venv/bin/python benchmarks/bench_decode.py --table out/bench_decode.json    # the README table again

Weights: random (``random_params`` of the config, seed ``--seed``), ternarised; calibration on
``--calib-sequences`` random sequences of ``--calib-length`` tokens (``accuracy.build_evaluation``, float32).
Rows, all measured in this run:

``float``       the float reference ``FloatModel`` (numpy, float32), one token per ``step`` call;
``golden``      the integer golden model ``FastGoldenModel``, every layer and the head in one numba call, 1 thread,
                weights held only packed (``QuantisedNetwork.pack_weights``);
``golden-2t``   the same with each matrix's row tiles on numba's threads (2);
``golden-before`` the golden model as it ran before (stage by stage from Python; VNNI, else the generic kernel and
                BLAS for >= 64 tokens): the reference of the speed-ups, in the same run;
``torch``       the outside reference: the same architecture in PyTorch fp32 under ``torch.no_grad`` (see
                ``TorchReference``): dense float32 weights ``Wt / s`` (the ternary values times the matrix
                scale), per-token int8 absmax activation quantisation exactly as ``FloatModel`` does it, the
                MLGRU state carried between calls; torch's default thread count (2 here);
``torch-plain`` the same without the activation quantisation (plain fp32 activations);
``sim-fused``   the Lava process graph (``Loihi2SimCfg``, one fused process per block), and ``sim-stack`` (every
                layer in one process), run by a worker process on the same compiled network, see below.

Read bound: in every repeat, after STEADY_PASSES untimed ones, three passes one after another of ``membw.Reader``
(``membw_read.c`` compiled at run time: AVX2 loads, 8 accumulators, 1 and 2 threads, over a buffer of exactly the
packed weights' size, so that the cache keeps for the reader what it keeps for the kernel, all of it where the
last-level cache holds them; numpy's sum where no C compiler works) and three of the synapses alone (every packed
matrix of a token once, one numba call, 1 and 2 threads, also after STEADY_PASSES untimed ones) are timed next to
the rows. The N-thread bound is the best read pass, unless a kernel read its weights faster (then the kernel's best
rate is the bound, and the table says so); bound ms = packed weight bytes per token / bound GB/s, and the kernel's
and the whole golden token's fractions of it (bound ms / their best ms; their medians beside) are reported. Memory:
``--golden-worker`` loads the saved network in a fresh process, packs its weights, runs, and reports its PSS and the
bytes the model holds; the Lava worker reports the PSS of its processes (parent and every child).

numpy / torch rows: prefill = one call on a ``--prompt``-token prompt from the zero state (logits of every prompt
token); decode = ``--decode`` single-token calls (fixed tokens, state carried) after a 4-token prefix and
``--decode-ramp`` untimed decode steps, per-token time = wall time / tokens. The untimed steps and passes bring each
figure to the steady state the bound is measured in: on a host whose last-level cache is shared with other machines
(the Intel Xeon of docs/cpu_tuning.md, "Steady state"), a token's weights leave that cache while the process reads
other data or idles, and come back over tens of tokens (a run with 12 untimed steps: golden-2t 5.2 ms at the first,
2.7 ms at the twelfth, 2.5-2.6 ms after 12 more; golden on one thread still falling at the twelfth, 9.0 to 8.1 ms),
hence 48 by default; each untimed step's time is kept (``decode_ramp_ms``) and the table prints it. Every repeat
runs every row (in rotating order, so machine noise hits all rows alike). Every figure is given as median and best
of its ``--repeats`` repeats (Lava: ``--lava-repeats``), and one whose repeats spread more than 2x (max/min) is
marked **noisy** in the table with the highest load average seen over them (``load_per_repeat``). Memory per row:
the bytes the model holds (every array / tensor it references, plus the packed ternary kernels it uses; the float
and golden models share their int8 ternary arrays) and the transient peak above that while it runs (the process
high-water mark ``VmHWM``, reset through ``/proc/self/clear_refs`` before each row).

sim-fused (worker subprocess; the network file is written here, read there): one Lava run per repeat with a
``--lava-prompt``-token prompt and ``--lava-tokens`` new tokens, run in four chunks of time steps: the first
prompt token (every fused block computes a token in the step it arrives), steady prefill (one prompt token per
step: prefill tokens/s = its steps / its time), drain (head, sink, the first new token fed back) and the steady
decode of the other new tokens (decode time per token = its time / their count, start-up excluded). Start-up =
compile + ``create_runtime`` (one OS process per leaf), reported separately, as is the teardown. The
``run_spk`` of every process model is timed in the Lava processes (bench_lava_overhead.InstrumentedRun), so the
table says what bounds a Lava step: compute by model or Lava's own per-step synchronisation; and the worker
then runs a chain of as many trivial leaf processes (lava's Dense, 1x1) for as many steps: Lava's floor per
step with no model compute, measured next to the real run.

Golden stage timing: one more prefill and ``--decode`` decode steps with the golden model's stages wrapped in
timers (norm rounds, MLGRU, GLU, residual, ternary synapses), so a missed target comes with what bounds it.

Targets (this machine): golden decode >= 50 tokens/s and >= 1.5x torch; golden prefill >= 300 tokens/s;
sim-fused decode >= 5 tokens/s; and the GOALS of issues 16 and 26 (ratios in one run): the synapses of a decode
token >= 85% of the 1-thread read bound (kernel-1t) and >= 70% of the 2-thread bound (the better of kernel-1t
and -2t), the whole golden token >= 60% of the 2-thread bound (fractions from best repeats), golden prefill >=
2x golden-before, golden's held memory <= 1.5x (packed weights + embedding), sim-fused's PSS <= 2x golden's,
sim-fused decode >= 50% of sim-stack's tokens/s (medians). Golden targets take the better of the golden and
golden-2t rows. Without PyTorch (the train extra) the torch rows and the target against them are skipped, with
one line saying why. The machine's load average is printed and saved (2 cores shared with other jobs). Writes
the table and out/bench_decode.json.

This file measures; its parts, beside it: ``_torch_reference.py`` (the torch rows), ``_decode_rows.py`` (a row,
its timing and memory, golden-before, the stage timing), ``_decode_workers.py`` (the golden and Lava workers),
``_decode_report.py`` (figures, targets, the table) and ``_harness.py`` (what every benchmark shares).
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import MIB, MS, OUT_DIR, json_out, loadavg, peak_rss_bytes, write_json
from _decode_report import bandwidth_figures, render_table, row_figures, targets_and_memory
from _decode_rows import GoldenBefore, Row, golden_stage_timing, resident_bytes, time_row
from _decode_workers import LAVA_BACKENDS, golden_worker, lava_worker, run_worker, summarise_lava
from _torch_reference import TorchReference

DEFAULT_OUT = OUT_DIR / "bench_decode.json"
DECODE_PREFIX = 4  # prompt tokens before the timed decode steps
PASSES_PER_REPEAT = 3  # read passes and synapse passes per repeat, each kind one after another
STEADY_PASSES = 8      # untimed passes of each kind before those (the cache's ramp, see the docstring)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-sequences", type=int, default=2)
    p.add_argument("--calib-length", type=int, default=8)
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens of the timed prefill (default 128)")
    p.add_argument("--decode", type=int, default=16, help="decode steps timed per repeat (default 16)")
    p.add_argument("--decode-ramp", type=int, default=48,
                   help="untimed decode steps before the timed ones, each one's time reported (default 48)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-torch-plain", action="store_true", help="skip the torch row without activation quant")
    p.add_argument("--no-lava", action="store_true", help="skip the Lava backends")
    p.add_argument("--lava-backends", nargs="+", default=list(LAVA_BACKENDS), choices=list(LAVA_BACKENDS))
    p.add_argument("--lava-prompt", type=int, default=48, help="prompt tokens of each Lava run (default 48)")
    p.add_argument("--lava-tokens", type=int, default=17, help="new tokens of each Lava run (default 17)")
    p.add_argument("--lava-repeats", type=int, default=3)
    p.add_argument("--lava-timeout", type=float, default=1800.0)
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT, help=f"the JSON report (default {DEFAULT_OUT})")
    p.add_argument("--table", type=Path, metavar="JSON",
                   help="print the table of a report this script wrote (e.g. --table out/bench_decode.json) and stop")
    p.add_argument("--lava-worker", help=argparse.SUPPRESS)
    p.add_argument("--golden-worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table is not None:
        try:
            print(render_table(json.loads(args.table.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as e:
            raise SystemExit(f"--table {args.table}: {getattr(e, 'strerror', None) or e}") from None
        return 0
    if args.lava_worker:
        return lava_worker(args)
    if args.golden_worker:
        return golden_worker(args)
    if args.lava_tokens < 2:
        raise SystemExit("--lava-tokens must be >= 2 (the decode chunk times tokens 2..N)")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    import membw

    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.model.golden_fast import FastGoldenModel

    from lava_matmulfree.config import load_model_config

    layers = load_model_config(args.config).num_layers  # checked before the model is built (14 s at 370m)
    if not args.no_lava and args.lava_prompt <= layers:
        raise SystemExit(f"--lava-prompt must exceed the {layers} layers (the steady prefill is timed "
                         "while every block is busy)")
    t_start = time.perf_counter()
    load_start = loadavg()
    setup = build_evaluation(args.config, seed=args.seed, num_calib=args.calib_sequences,
                             calib_length=args.calib_length, dtype=np.float32)
    cfg, net, fm = setup.cfg, setup.net, setup.float_model
    gnet = copy.deepcopy(net).pack_weights()  # the golden rows: weights held once, packed (the float model keeps int8)
    gc.collect()
    log(f"built {setup.source} (L={cfg.num_layers}, d={cfg.hidden_size}, I={cfg.intermediate_size}, "
        f"V={cfg.vocab_size}) + calibration + compile in {time.perf_counter() - t_start:.1f} s, load {loadavg()}")

    try:
        import torch
    except ImportError as exc:  # the train extra is not installed: every other row runs without it
        torch, torch_skipped = None, f"PyTorch is not installed ({exc}); the train extra brings it"
        log(f"torch rows skipped: {torch_skipped}")
    else:
        torch_skipped = None
    torch_threads = torch.get_num_threads() if torch else None
    golden = FastGoldenModel(gnet)
    rows = [Row("float", fm, "FloatModel float32 (numpy; int8 x ternary products by the exact integer kernel)"),
            Row("golden", golden, "FastGoldenModel: every layer and the head in one numba call, 1 thread"),
            Row("golden-2t", FastGoldenModel(gnet, parallel=True),
                "FastGoldenModel, each matrix's row tiles on numba's threads (2)"),
            Row("golden-before", GoldenBefore(gnet),
                "stage by stage from Python, the kernel policy before this benchmark's version (VNNI, else "
                "generic + BLAS for >= 64 tokens), 1 thread")]
    t0 = time.perf_counter()
    if torch:
        rows.append(Row("torch", TorchReference(fm, act_quant=True),
                        f"PyTorch {torch.__version__} fp32, dense Wt/s, per-token int8 absmax act. quant, "
                        f"{torch_threads} threads"))
        if not args.no_torch_plain:
            rows.append(Row("torch-plain", TorchReference(fm, act_quant=False),
                            f"PyTorch fp32, dense Wt/s, plain fp32 activations, {torch_threads} threads"))
        log(f"torch reference built in {time.perf_counter() - t0:.1f} s")
    by_name = {r.name: r for r in rows}

    rng = np.random.default_rng(args.seed + 1)
    V = cfg.vocab_size
    prompt = rng.integers(0, V, args.prompt).tolist()
    prefix = rng.integers(0, V, DECODE_PREFIX).tolist()
    decode_tokens = rng.integers(0, V, args.decode).tolist()
    ramp_tokens = rng.integers(0, V, args.decode_ramp).tolist()

    # agreement of the outside reference with the float model (same architecture, both fp32)
    agreement = None
    if "torch" in by_name:
        check = prompt[:8]
        f_logits, _ = fm.prefill(check)
        t_logits = by_name["torch"].model.prefill(check)[0].numpy()
        agreement = {"tokens": len(check),
                     "torch_vs_float_rel_err": float(np.linalg.norm(t_logits - f_logits) / np.linalg.norm(f_logits)),
                     "torch_vs_float_top1": float(np.mean(t_logits.argmax(-1) == f_logits.argmax(-1)))}
    for row in rows:  # warm-up: JIT / disk cache of the numba kernels, packing, torch's first calls
        t0 = time.perf_counter()
        _, st = row.prefill(prompt[:8])
        row.step(decode_tokens[0], st)
        row.warmup_s = time.perf_counter() - t0
        row.resident = resident_bytes(row.model)
    # every golden row gives the same integers
    outs = [r.prefill(prompt[:6])[0] for r in rows if r.name.startswith("golden")]
    golden_agree = all(np.array_equal(outs[0], o) for o in outs[1:])
    plan = golden.model_plan()
    weight_bytes = plan.weight_bytes if plan is not None else None
    passes = {} if plan is None else {"kernel-1t": plan.synapse_pass(False), "kernel-2t": plan.synapse_pass(True)}
    for f in passes.values():
        f()
    reader = membw.Reader(membw.buffer_bytes(weight_bytes or 0))
    bw = {1: [], 2: []}
    kern = {k: [] for k in passes}
    loads = []
    log(f"warm-up done; read bound by {reader.method} over {reader.nbytes >> 20} MiB; load {loadavg()}")

    for r in range(args.repeats):
        order = rows[r % len(rows):] + rows[:r % len(rows)]
        for row in order:
            time_row(row, prompt, prefix, decode_tokens, ramp_tokens)
        for th in bw:  # the bound and the kernel alone in the same repeat, each pass after pass as in decode
            reader.warm(th, STEADY_PASSES)
            bw[th] += reader.passes(th, PASSES_PER_REPEAT)
        for k, f in passes.items():
            for _ in range(STEADY_PASSES):
                f()
            for _ in range(PASSES_PER_REPEAT):
                t0 = time.perf_counter()
                f()
                kern[k].append(time.perf_counter() - t0)
        loads.append(loadavg())
        log(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{row.name} {row.decode_s_per_token[-1] * MS:.1f} ms/tok" for row in rows)
            + f"; read {bw[1][-1]:.1f} / {bw[2][-1]:.1f} GB/s (1 / 2 threads); load {loads[-1]}")
    read_method, read_bytes, read_wins = reader.method, reader.nbytes, dict(reader.wins)
    del reader

    stages = golden_stage_timing(gnet, prompt, prefix, decode_tokens)
    load_mid = loadavg()

    lava_all, gmem = {}, None
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        path = Path(tmp) / "net.safetensors"
        net.save(path)
        gmem = run_worker("golden", path, args, log)
        if not args.no_lava:
            data = run_worker("lava", path, args, log,
                              ["--lava-prompt", str(args.lava_prompt), "--lava-tokens", str(args.lava_tokens),
                               "--lava-repeats", str(args.lava_repeats), "--lava-backends", *args.lava_backends])
            if data is not None:
                lava_all = {b: summarise_lava(data, b) for b in args.lava_backends}
    load_end = loadavg()

    res_rows = row_figures(rows, args.prompt, gmem, lava_all, loads)
    bound = bandwidth_figures(res_rows, weight_bytes, bw, kern, read_method, read_bytes, loads,
                              PASSES_PER_REPEAT)
    bound["read_passes_won"] = read_wins                # which read of membw.READS was the fastest, per pass
    targets, memory = targets_and_memory(res_rows, bound, gmem, lava_all)

    result = {
        "benchmark": "bench_decode",
        "command": " ".join([".venv/bin/python", "benchmarks/bench_decode.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "config": args.config, "seed": args.seed, "source": setup.source,
        "model": {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "intermediate": cfg.intermediate_size,
                  "vocab": cfg.vocab_size},
        "calibration": {"sequences": args.calib_sequences, "length": args.calib_length},
        "protocol": {"prompt_tokens": args.prompt, "decode_prefix": DECODE_PREFIX, "decode_tokens": args.decode,
                     "decode_ramp_steps": args.decode_ramp, "steady_passes": STEADY_PASSES,
                     "passes_per_repeat": PASSES_PER_REPEAT, "repeats": args.repeats,
                     "lava_repeats": args.lava_repeats, "torch_threads": torch_threads,
                     "statistic": "median and best of the repeats; noisy: max/min > 2"},
        "torch_skipped": torch_skipped,
        "load_start": load_start, "load_after_numpy_rows": load_mid, "load_end": load_end, "load_per_repeat": loads,
        "rows": res_rows, "bandwidth_bound": bound, "memory": memory, "targets": targets,
        "golden_rows_agree": golden_agree, "torch_agreement": agreement, "golden_stages": stages,
        "lava": lava_all, "sim_fused": lava_all.get("sim-fused"), "peak_rss_mib_process": peak_rss_bytes() / MIB,
        "wall_s": time.perf_counter() - t_start,
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "torch": torch.__version__ if torch else None,
                        "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    write_json(args.out, result)
    print(render_table(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
