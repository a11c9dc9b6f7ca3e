"""Benchmark of the ternary synapse kernel against numpy int and float32 BLAS on a model's per-layer shapes.

    .venv/bin/python benchmarks/bench_ternary.py [--model 370m] [--tokens 1 128] [--repeats 7] [--parallel]
    .venv/bin/python benchmarks/bench_ternary.py --wide [--model 370m] [--tokens 1 128]
    .venv/bin/python benchmarks/bench_ternary.py --cache [--model 370m]

``--cache`` times the decode kernel (T = 1) of each shape on one matrix called again and again (its codes stay
in the last-level cache) and, interleaved, on distinct matrices of the same shape adding up to at least 4x that
cache (codes from memory): GB/s of packed codes, best of ``--repeats``. Tells the kernel's arithmetic apart from
its memory stream (docs/cpu_tuning.md).

``--wide`` times only the packed kernel on int16 spikes (act_bits 9..16: both bytes through the int8
kernel as one batch, ternary.py) against the same kernel on int8 spikes, same matrices, interleaved
repeats, each result checked against int64 once.

Per layer the model has i, f, g, o: [d, d]; the fused gate+up: [2I, d]; down: [d, I]; once the LM head
[V, d]. For T = 1 (decode) every weight matrix of the whole model is a distinct array (as in a real token:
each layer's weights come from memory, not cache); one timed pass runs all matrices of a shape, and a
"token pass" runs all matrices of the model in layer order. For T > 1 (prefill, compute bound) one
matrix per shape is timed and scaled by its count (the numpy reference gets ``--ref-repeats``). Methods are
interleaved inside every repeat so machine noise hits them alike; the table shows medians and the
speed-up against the numpy int reference *of the same run*. Every result is checked exactly once.

Writes the table as JSON to out/bench_ternary.json (``--out``), with the numba first-call (JIT) times
measured in fresh interpreters: cold (empty cache) and warm (on-disk cache filled).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import json_out, write_json  # noqa: E402
from lava_matmulfree.model import ternary  # noqa: E402
from lava_matmulfree.config import load_config  # noqa: E402
from lava_matmulfree.model.ternary import TernaryMatrix, X16_MAX, X16_MIN, X_MAX, X_MIN  # noqa: E402

REFERENCE = "numpy int32"
MIB = 1 << 20
MS = 1e3
F32_BYTES = np.dtype(np.float32).itemsize
I8_BYTES = np.dtype(np.int8).itemsize


def model_shapes(model) -> list[tuple[str, int, int, int]]:
    """(name, out, in, count per token) of every ternary matrix of the model."""
    d, inter, layers = model.hidden_size, model.intermediate_size, model.num_layers
    n_rec = 4  # i, f, g, o projections of the MLGRU
    n_glu = 2  # gate and up, fused into one matrix
    return [("i,f,g,o", d, d, n_rec * layers), ("gate+up", n_glu * inter, d, layers),
            ("down", d, inter, layers), ("lm_head", model.vocab_size, d, 1)]


BITS_INT8 = 8 * I8_BYTES
BITS_F32 = 8 * F32_BYTES


def method_table(parallel: bool) -> dict:
    """name -> (bits per weight of its storage, None = the packed matrix's; build(W) -> state; run)."""
    def numpy_int(W, X):
        return X.astype(np.int32) @ W.T.astype(np.int32)

    def blas(Wf, X):
        return (X.astype(np.float32) @ Wf.T).astype(np.int32)

    methods = {REFERENCE: (BITS_INT8, lambda W: W, numpy_int),
               "float32 BLAS": (BITS_F32, lambda W: W.astype(np.float32), blas)}
    names = (["vnni"] if ternary.vnni_usable() else []) + ["generic", "blas"]
    for k in names:
        methods[f"packed {k}"] = (None, (k, False), None)
        if parallel and k != "blas":
            methods[f"packed {k} x{os.cpu_count()}"] = (None, (k, True), None)
    return methods


def build_state(spec, W, packed: TernaryMatrix):
    """(state, run) with run(state, X) -> int32 [T, out]."""
    bits, build, run = spec
    if bits is not None:
        return build(W), run
    kernel, par = build
    return packed.with_kernel(kernel, parallel=par), (lambda m, X: m.matmul(X))


def bytes_of(spec, W, packed) -> int:
    return packed.nbytes if spec[0] is None else W.size * spec[0] // 8


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def model_order(shapes, n_layers):
    """(shape name, instance index) in the order one decoded token visits the matrices."""
    per_layer = {name: count // n_layers for name, _, _, count in shapes if count >= n_layers}
    order = [(name, layer * k + i) for layer in range(n_layers) for name, k in per_layer.items() for i in range(k)]
    return order + [(name, i) for name, _, _, count in shapes if count < n_layers for i in range(count)]


def bench_T(methods, shapes, n_layers, T, repeats, ref_repeats, rng):
    """Median seconds per matrix call per (method, shape); for T = 1 also per whole-model token pass."""
    n_inst = {name: (count if T == 1 else 1) for name, _, _, count in shapes}
    X = {name: rng.integers(X_MIN, X_MAX + 1, size=(T, n_in), dtype=np.int8) for name, _, n_in, _ in shapes}
    Ws = {name: [rng.integers(-1, 2, size=(n_out, n_in), dtype=np.int8) for _ in range(n_inst[name])]
          for name, n_out, n_in, _ in shapes}
    packed = {name: [TernaryMatrix(W) for W in ws] for name, ws in Ws.items()}
    states, res = {}, {}
    for m, spec in methods.items():
        states[m] = {name: [build_state(spec, W, p) for W, p in zip(Ws[name], packed[name])] for name in Ws}
        for name in Ws:
            st, run = states[m][name][0]
            W = Ws[name][0]
            ref = X[name].astype(np.int64) @ W.T.astype(np.int64)
            if not np.array_equal(run(st, X[name]), ref):        # exactness, and warm-up / JIT
                raise AssertionError(f"{m} is not exact on {name} T={T}")
            res[(m, name)] = {"bits_per_weight": bytes_of(spec, W, packed[name][0]) * 8 / W.size,
                              "bytes": bytes_of(spec, W, packed[name][0]), "times": []}
        res[(m, "token")] = {"times": []}
    order = model_order(shapes, n_layers) if T == 1 else []
    for rep in range(repeats):
        for m in methods:
            if m == REFERENCE and rep >= ref_repeats:
                continue
            for name in Ws:
                insts = states[m][name]
                t = timed(lambda: [run(st, X[name]) for st, run in insts])
                res[(m, name)]["times"].append(t / len(insts))
            if order:
                sm = states[m]
                res[(m, "token")]["times"].append(
                    timed(lambda: [sm[n][i][1](sm[n][i][0], X[n]) for n, i in order]))
    for r in res.values():
        r["median_s"] = float(np.median(r["times"])) if r["times"] else None
    return res


def bench_wide(shapes, T, repeats, rng) -> list[dict]:
    """Median ms per matrix call of the packed kernel ("auto") with int8 and with int16 spikes, per shape."""
    rows = []
    for name, n_out, n_in, count in shapes:
        m = TernaryMatrix(rng.integers(-1, 2, size=(n_out, n_in), dtype=np.int8))
        X = {"int8": rng.integers(X_MIN, X_MAX + 1, size=(T, n_in), dtype=np.int8),
             "int16": rng.integers(X16_MIN, X16_MAX + 1, size=(T, n_in), dtype=np.int16)}
        W64 = m.to_dense().astype(np.int64)
        for x in X.values():                                        # exactness, and warm-up / JIT
            if not np.array_equal(m.matmul(x), x.astype(np.int64) @ W64.T):
                raise AssertionError(f"packed kernel not exact on {name} {x.dtype} T={T}")
        times = {k: [] for k in X}
        for _ in range(repeats):
            for k, x in X.items():
                times[k].append(timed(lambda: m.matmul(x)))
        med = {k: float(np.median(v)) * MS for k, v in times.items()}
        rows.append({"shape": name, "out": n_out, "in": n_in, "count": count, "T": T, "int8_ms": med["int8"],
                     "int16_ms": med["int16"], "ratio": med["int16"] / med["int8"]})
    return rows


def main_wide(args) -> int:
    model = load_config(args.model).model
    shapes = model_shapes(model)
    rng = np.random.default_rng(0)
    report = {"model": model.name, "kernel": TernaryMatrix(np.ones((1, 1), np.int8)).kernel_for(1),
              "load_avg": list(os.getloadavg()), "runs": []}
    for T in args.tokens:
        rows = bench_wide(shapes, T, args.repeats, rng)
        t8 = sum(r["int8_ms"] * r["count"] for r in rows)
        t16 = sum(r["int16_ms"] * r["count"] for r in rows)
        report["runs"].append({"T": T, "rows": rows, "model_int8_ms_per_token": t8 / T,
                               "model_int16_ms_per_token": t16 / T, "model_ratio": t16 / t8})
        print(f"\n== {model.name}, T = {T}: packed kernel, int16 vs int8 spikes (median ms per call) ==")
        print(f"{'shape':<10}{'out x in':>13}{'n':>4}{'int8 ms':>10}{'int16 ms':>10}{'ratio':>8}")
        for r in rows:
            print(f"{r['shape']:<10}{r['out']:>7}x{r['in']:<5}{r['count']:>4}{r['int8_ms']:>10.3f}"
                  f"{r['int16_ms']:>10.3f}{r['ratio']:>8.2f}")
        print(f"whole model per token: int8 {t8 / T:.2f} ms, int16 {t16 / T:.2f} ms, ratio {t16 / t8:.2f}")
    out = Path(args.out or ROOT / "out" / "bench_ternary_wide.json")
    write_json(out, report)
    print(f"wrote {out}")
    return 0


def main_cache(args) -> int:
    import membw

    model = load_config(args.model).model
    rng = np.random.default_rng(0)
    llc = membw.llc_bytes()
    from lava_matmulfree.model.ternary_kernels import HOST, INT_KERNELS, host_kernel_label

    kernel = INT_KERNELS[(HOST, False)]  # the whole-model kernel's group dots (golden_fast), called per matrix
    report = {"model": model.name, "kernel": f"host ({host_kernel_label()})", "llc_bytes": llc,
              "load_avg": [list(os.getloadavg())], "rows": []}
    print(f"== {model.name}: decode kernel {report['kernel']}, GB/s of packed codes, best of {args.repeats} ==")
    print(f"{'shape':<10}{'out x in':>13}{'MiB':>7}{'in cache':>10}{'from memory':>13}{'matrices':>10}")
    for name, n_out, n_in, _ in model_shapes(model):
        one = TernaryMatrix(rng.integers(-1, 2, (n_out, n_in), dtype=np.int8))
        n_mem = -(-4 * llc // one.nbytes)
        mats = [one] + [TernaryMatrix(rng.integers(-1, 2, (n_out, n_in), dtype=np.int8)) for _ in range(n_mem)]
        xpad = np.zeros((1, one.codes.shape[1] * ternary.FIELDS_PER_BYTE), np.int8)
        xpad[0, :n_in] = rng.integers(X_MIN, X_MAX + 1, n_in)
        xsum = xpad.sum(axis=1, dtype=np.int32)
        out = np.empty((1, n_out), np.int32)
        best = {"cache": np.inf, "memory": np.inf}
        kernel(one.codes, xpad, xsum, out)  # compile (or load), fill the cache
        assert np.array_equal(out[0], one.matvec(xpad[0, :n_in]))
        for _ in range(args.repeats):
            best["cache"] = min(best["cache"], min(timed(lambda: kernel(one.codes, xpad, xsum, out))
                                                   for _ in range(8)))
            best["memory"] = min(best["memory"], timed(lambda: [kernel(m.codes, xpad, xsum, out)
                                                                for m in mats[1:]]) / n_mem)
        gbs = {k: one.nbytes / v / 1e9 for k, v in best.items()}
        report["rows"].append({"shape": name, "out": n_out, "in": n_in, "bytes": one.nbytes, "matrices": n_mem,
                               "cache_gb_s": gbs["cache"], "memory_gb_s": gbs["memory"]})
        print(f"{name:<10}{n_out:>7}x{n_in:<5}{one.nbytes / MIB:>7.2f}{gbs['cache']:>10.1f}{gbs['memory']:>13.1f}"
              f"{n_mem:>10}")
        del mats
    report["load_avg"].append(list(os.getloadavg()))
    print(f"load average {report['load_avg'][0][0]:.1f} -> {report['load_avg'][1][0]:.1f}")
    out = Path(args.out or ROOT / "out" / "bench_ternary_cache.json")
    write_json(out, report)
    print(f"wrote {out}")
    return 0


def jit_times() -> dict:
    """First-call time (import + compile or cache load + one matvec) in fresh interpreters."""
    code = ("import time, numpy as np; t0 = time.perf_counter(); "
            "from lava_matmulfree.model.ternary import TernaryMatrix; "
            "m = TernaryMatrix(np.ones((64, 256), np.int8)); t1 = time.perf_counter(); "
            "m.matvec(np.ones(256, np.int8)); t2 = time.perf_counter(); "
            "m.matvec(np.ones(256, np.int8)); t3 = time.perf_counter(); "
            "print(t1 - t0, t2 - t1, t3 - t2)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 check=True, cwd=ROOT)
            imp, first, second = (float(v) for v in res.stdout.split())
            out[label] = {"import_s": imp, "first_call_s": first, "second_call_s": second}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="370m", help="config name or path (default 370m)")
    ap.add_argument("--tokens", type=int, nargs="+", default=[1, 128], help="batch sizes T (default 1 128)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per method (median reported)")
    ap.add_argument("--ref-repeats", type=int, default=3,
                    help="repeats of the (slow) numpy int reference for T > 1")
    ap.add_argument("--parallel", action="store_true", help="also time the multi-threaded kernels")
    ap.add_argument("--wide", action="store_true", help="int16 against int8 spikes on the packed kernel only")
    ap.add_argument("--cache", action="store_true", help="the decode kernel with its codes in cache / from memory")
    ap.add_argument("--out", type=json_out, default=None,
                    help="the JSON report (default: out/bench_ternary.json, out/bench_ternary_wide.json with --wide, "
                         "out/bench_ternary_cache.json with --cache)")
    args = ap.parse_args(argv)
    if args.wide:
        return main_wide(args)
    if args.cache:
        return main_cache(args)

    model = load_config(args.model).model
    shapes = model_shapes(model)
    methods = method_table(args.parallel)
    rng = np.random.default_rng(0)
    report = {"model": model.name, "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                                               "numpy": np.__version__, "vnni": ternary.vnni_usable(),
                                               "load_avg": list(os.getloadavg())},
              "repeats": args.repeats, "jit": jit_times(), "runs": []}
    for T in args.tokens:
        ref_repeats = args.repeats if T == 1 else min(args.repeats, args.ref_repeats)
        res = bench_T(methods, shapes, model.num_layers, T, args.repeats, ref_repeats, rng)
        rows, summary = [], []
        for name, n_out, n_in, count in shapes:
            ref = res[(REFERENCE, name)]["median_s"]
            for m in methods:
                r = res[(m, name)]
                rows.append({"shape": name, "out": n_out, "in": n_in, "count": count, "T": T, "method": m,
                             "median_ms": r["median_s"] * MS, "speedup_vs_numpy": ref / r["median_s"],
                             "bits_per_weight": r["bits_per_weight"], "times_ms": [t * MS for t in r["times"]]})
        ref_sum = sum(res[(REFERENCE, name)]["median_s"] * count for name, _, _, count in shapes)
        ref_tok = res[(REFERENCE, "token")]["median_s"]
        for m in methods:
            total = sum(res[(m, name)]["median_s"] * count for name, _, _, count in shapes)
            tok = res[(m, "token")]["median_s"]
            summary.append({"method": m, "T": T, "per_token_ms": total / T * MS, "per_batch_ms": total * MS,
                            "speedup_vs_numpy": ref_sum / total,
                            "token_pass_ms": None if tok is None else tok * MS,
                            "token_pass_speedup_vs_numpy": None if tok is None else ref_tok / tok,
                            "token_pass_times_ms": [t * MS for t in res[(m, "token")]["times"]],
                            "weights_MiB": sum(res[(m, name)]["bytes"] * count
                                               for name, _, _, count in shapes) / MIB})
        report["runs"].append({"T": T, "rows": rows, "model_total": summary})
        print_table(model.name, T, rows, summary)
        del res
    j = report["jit"]
    print(f"\nnumba first call (import / first matvec / second): cold {j['cold']['import_s']:.2f} s / "
          f"{j['cold']['first_call_s']:.2f} s / {j['cold']['second_call_s'] * MS:.3f} ms; "
          f"warm cache {j['warm']['import_s']:.2f} s / {j['warm']['first_call_s']:.2f} s / "
          f"{j['warm']['second_call_s'] * MS:.3f} ms")
    out = Path(args.out or ROOT / "out" / "bench_ternary.json")
    write_json(out, report)
    print(f"wrote {out}")
    return 0


def print_table(model_name, T, rows, summary):
    print(f"\n== {model_name}, T = {T}: median ms per matrix call, speed-up = numpy int / method (same run) ==")
    print(f"{'shape':<10}{'out x in':>13}{'n':>4}  {'method':<22}{'ms':>10}{'speed-up':>10}{'bits/w':>8}")
    for r in rows:
        print(f"{r['shape']:<10}{r['out']:>7}x{r['in']:<5}{r['count']:>4}  {r['method']:<22}"
              f"{r['median_ms']:>10.3f}{r['speedup_vs_numpy']:>10.1f}{r['bits_per_weight']:>8.2f}")
    print(f"-- whole model per token (T = {T}): sum over shapes of median x count / T"
          + ("; 'token pass' = all matrices in model order, timed as one pass" if T == 1 else "") + " --")
    print(f"{'method':<22}{'ms/token':>10}{'speed-up':>10}{'pass ms':>10}{'speed-up':>10}{'weights MiB':>13}")
    for s in summary:
        tp = ("" if s["token_pass_ms"] is None
              else f"{s['token_pass_ms']:>10.2f}{s['token_pass_speedup_vs_numpy']:>10.1f}")
        print(f"{s['method']:<22}{s['per_token_ms']:>10.2f}{s['speedup_vs_numpy']:>10.1f}{tp:>20}"
              f"{s['weights_MiB']:>13.1f}")


if __name__ == "__main__":
    sys.exit(main())
