"""The 1.3B and 2.7B shapes: one golden decode step and the fastest Lava backend, with time and memory.

    .venv/bin/python benchmarks/bench_large.py [--configs 1.3b 2.7b] [--decode 4] [--lava-backend sim-stack]
                                               [--out out/bench_large.json]

Per config, each step in its own process (so one config's memory never inflates another's figures):
build (random weights of the config, float32, ternarised; calibration on one short random sequence; compiled and
saved), then bench_decode.py's workers on the saved network: ``--golden-worker`` (loaded, weights packed, one
prefill then ``--decode`` timed steps, 1 thread; PSS before and after loading) and ``--lava-worker`` on
``--lava-backend`` (a prompt of L + 1 tokens and 3 new tokens; decode time per token with start-up excluded,
PSS of all its processes). Building needs the float weights in memory (about 4 bytes per parameter plus the
int8 copy): a config whose estimate exceeds the memory available is skipped with a message, not run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import HERE, OUT_DIR, json_out, loadavg, write_json

DEFAULT_OUT = OUT_DIR / "bench_large.json"
BUILD_BYTES_PER_PARAM = 4 * 1.5 + 1     # float32 weights with transient copies, plus the int8 ternary copy
LAVA_NEW_TOKENS = 3


def mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def build_worker(config: str, path: str, seed: int) -> int:
    import numpy as np

    from lava_matmulfree.evaluation.accuracy import build_evaluation

    t0 = time.perf_counter()
    setup = build_evaluation(config, seed=seed, num_calib=1, calib_length=4, dtype=np.float32)
    setup.net.save(path)
    print(json.dumps({"build_s": time.perf_counter() - t0}))
    return 0


def run(cmd, timeout):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["1.3b", "2.7b"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decode", type=int, default=4)
    p.add_argument("--lava-backend", default="sim-stack")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    p.add_argument("--build-worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.build_worker:
        return build_worker(*args.build_worker, args.seed)
    import numpy as np

    from lava_matmulfree.config import load_model_config
    from lava_matmulfree.io.params import expected_tensors

    results = {}
    for config in args.configs:
        cfg = load_model_config(config)
        n_params = sum(int(np.prod(s)) for s in expected_tensors(cfg).values())
        need, avail = n_params * BUILD_BYTES_PER_PARAM, mem_available_bytes()
        entry = {"params": n_params, "layers": cfg.num_layers, "hidden": cfg.hidden_size,
                 "intermediate": cfg.intermediate_size, "load_start": loadavg()}
        results[config] = entry
        if need > avail:
            entry["skipped"] = (f"building needs ~{need / 2**30:.1f} GiB (float32 weights), "
                                f"{avail / 2**30:.1f} GiB available")
            print(f"{config}: skipped: {entry['skipped']}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="bench_large_") as tmp:
            net = Path(tmp) / "net.safetensors"
            r = run([sys.executable, __file__, "--build-worker", config, str(net), "--seed", str(args.seed)],
                    args.timeout)
            if r.returncode != 0:
                last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
                entry["error"] = f"build failed: {last}"
                continue
            entry.update(json.loads(r.stdout.strip().splitlines()[-1]))
            entry["network_file_mib"] = net.stat().st_size / 2**20
            print(f"{config}: built in {entry['build_s']:.0f} s", file=sys.stderr)
            for mode, extra in (("golden", []),
                                ("lava", ["--lava-backends", args.lava_backend, "--lava-prompt",
                                          str(cfg.num_layers + 1), "--lava-tokens", str(LAVA_NEW_TOKENS),
                                          "--lava-repeats", "1"])):
                out = Path(tmp) / f"{mode}.json"
                r = run([sys.executable, str(HERE / "bench_decode.py"), f"--{mode}-worker", str(net),
                         "--worker-out", str(out), "--seed", str(args.seed), "--decode", str(args.decode), *extra],
                        args.timeout)
                if r.returncode != 0 or not out.is_file():
                    entry[f"{mode}_error"] = (r.stderr.strip().splitlines() or ["?"])[-1]
                    continue
                data = json.loads(out.read_text())
                if mode == "golden":
                    entry["golden"] = data
                else:
                    rep = data["backends"][args.lava_backend][0]
                    dec = rep["chunks"][3]
                    entry["lava"] = {"backend": args.lava_backend, "leaf_processes": rep["leaf_processes"],
                                     "decode_ms_per_token": dec["wall_s"] / (LAVA_NEW_TOKENS - 1) * 1e3,
                                     "startup_s": rep["compile_s"] + rep["create_runtime_s"],
                                     "pss_peak_mib": rep["pss_peak_mib"],
                                     "process_pss_mib": rep.get("process_pss_mib"), "load": rep["load"]}
                print(f"{config}: {mode} done", file=sys.stderr)
        entry["load_end"] = loadavg()
    write_json(args.out, {"benchmark": "bench_large", "configs": results})
    print("| config | golden decode ms/token | golden PSS MiB (packed weights + embedding) | Lava backend "
          "| Lava decode ms/token | Lava PSS MiB (all processes) |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for config, e in results.items():
        if "skipped" in e or "error" in e:
            print(f"| {config} | {e.get('skipped') or e.get('error')} | | | | |")
            continue
        g, lv = e.get("golden"), e.get("lava")
        gs = (f"{g['decode_ms_per_token']:.1f} | {g['pss_mib']:.0f} ({g['packed_mib']:.0f} + {g['embed_mib']:.0f})"
              if g else f"{e.get('golden_error')} |")
        ls = (f"{lv['backend']} ({lv['leaf_processes']} processes) | {lv['decode_ms_per_token']:.1f} "
              f"| {lv['pss_peak_mib']:.0f}" if lv else f"{args.lava_backend} | {e.get('lava_error')} |")
        print(f"| {config} | {gs} | {ls} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
