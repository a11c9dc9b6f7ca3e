"""Loihi 2 vs GPU cost estimates (presets paper and project) into out/cost/ (docs/cost_model.md; the GPU side
and the verdict: docs/gpu_baselines.md, whose plot is out/cost/efficiency_370m_paper.png).

    .venv/bin/python benchmarks/cost_estimate.py [--configs 370m 1.3b 2.7b] [--presets paper project] [--out out/cost]
                                                 [--instructions FILE.toml|.json] [--prompt-lengths 16 ... 4096]

With several configs it ends with a scaling table and plot (``scaling.png``): per config and preset, Loihi 2
next to the GPUs running the Transformer++ of the same shape (the README's come from ``--configs 370m 1.3b
2.7b``).

Microcode instruction counts per neuron update come from, in order: ``--instructions FILE``, then
``lava_matmulfree.microcode.instruction_counts()`` if the microcode package provides it, then the
PLACEHOLDER_INSTRUCTIONS below, which are labelled as such in the printed tables and the JSON reports
(``instructions_source``). A time step is dominated by synaptic operations, so they move the results little:
the sensitivity line printed at the end says by how much.

Each run compares against its reference in the same run: the GPU baselines (every GPU x model x runtime x
batch, held against the H200 measurement by tests/test_gpu_baselines.py) and the paper's 370M anchors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lava_matmulfree.config import load_config  # noqa: E402
from lava_matmulfree.loihi.gpu_baseline import transformer_pp_key  # noqa: E402
from lava_matmulfree.loihi.hardware import CostModelError, short_name  # noqa: E402
from lava_matmulfree.loihi.outputs import estimate_main  # noqa: E402
from lava_matmulfree.loihi.report import DEFAULT_PROMPT_LENGTHS  # noqa: E402

# Rough instruction counts per neuron update, written down by hand from the neuron definitions (docs/model.md, docs/fixed_point.md)
# until the microcode package counts the real programs: residual (accumulate, square for the aggregator,
# scale by the inverse RMS, gain), MLGRU (two sigmoid and one SiLU LUT reads, the gated update of h, the
# output gate), GLU (SiLU LUT and a product), aggregator (LUT seed + 2 Newton-Raphson steps of the inverse
# square root), requantiser (multiply by a mantissa, rounding shift, clip to int8).
PLACEHOLDER_INSTRUCTIONS = {"residual": 16, "mlgru": 48, "glu": 14, "rms_aggregator": 24, "requant": 6}
SENSITIVITY_FACTOR = 10  # instruction counts multiplied by this for the sensitivity line


def _instructions(arg: str | None):
    if arg:
        return arg, None
    try:
        from lava_matmulfree.loihi.cost_model import resolve_instruction_counts

        resolve_instruction_counts(None)
        return None, None
    except CostModelError:
        return dict(PLACEHOLDER_INSTRUCTIONS), "PLACEHOLDER (benchmarks/cost_estimate.py; no microcode counts yet)"


def scaling_table(summary: dict, configs, presets) -> str:
    """Markdown rows: Loihi 2 per config and preset beside the Jetson's Transformer++ of the same shape."""
    lines = ["| config | deployment | chips | TTFT | gen tok/s | gen mJ/tok | prefill mJ/tok |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in configs:
        for preset in presets:
            p = summary[f"{name}/{preset}"]["platforms"]
            lp = p["loihi2"]
            lines.append(f"| {name} | Loihi 2, preset {preset} | {lp['chips']} | {1e3 * lp['ttft_s']:,.0f} ms | "
                         f"{lp['decode_tokens_per_s']:,.1f} | {lp['decode_mj_per_token']:,.0f} | "
                         f"{lp['prefill_mj_per_token']:,.1f} |")
        g = summary[f"{name}/{presets[0]}"]["platforms"][f"jetson/{transformer_pp_key(name)}"]
        lines.append(f"| {name} | Jetson Orin Nano, {short_name(g['model'])} (FP16) | - | "
                     f"{1e3 * g['ttft_s']:,.0f} ms | {g['decode_tokens_per_s']:,.1f} | "
                     f"{g['decode_mj_per_token']:,.0f} | {g['prefill_mj_per_token']:,.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["370m"])
    ap.add_argument("--presets", nargs="+", default=["paper", "project"])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "cost")
    ap.add_argument("--instructions", default=None, help="TOML/JSON file of instruction counts per neuron type")
    ap.add_argument("--prompt-lengths", type=int, nargs="+", default=list(DEFAULT_PROMPT_LENGTHS))
    args = ap.parse_args(argv)

    ins, label = _instructions(args.instructions)
    extra = {"instructions_source": label} if label else {}
    summary = {}
    for name in args.configs:
        for preset in args.presets:
            print(f"\n{'#' * 100}\n# {name}, preset {preset}\n{'#' * 100}")
            r = estimate_main(name, args.out, prompt_lengths=args.prompt_lengths, preset=preset, instructions=ins,
                              **extra)
            summary[f"{name}/{preset}"] = {"platforms": r["platforms"], "calibration": r["calibration"],
                                           "instructions_source": r["instructions_source"]}

    if len(args.configs) > 1:
        from lava_matmulfree.loihi.cost_plots import plot_scaling

        print("\n" + scaling_table(summary, args.configs, args.presets))
        print(f"wrote {plot_scaling(summary, args.configs, args.presets, args.out / 'scaling.png')}")

    # sensitivity to the instruction counts (paper preset of the first config)
    base_ins = ins if isinstance(ins, dict) else None
    if base_ins is not None:
        from lava_matmulfree.loihi.presets import loihi_model, preset as paper_preset
        from lava_matmulfree.loihi.hardware import LOIHI2

        cfg = load_config(args.configs[0]).model
        hw, opts = paper_preset("paper", LOIHI2)
        a = loihi_model(cfg, hw, opts, base_ins)
        b = loihi_model(cfg, hw, opts, {k: SENSITIVITY_FACTOR * v for k, v in base_ins.items()})
        line = (f"sensitivity ({args.configs[0]}, paper preset): instruction counts x{SENSITIVITY_FACTOR} change the "
                f"TTFT by {100 * (b.ttft_s(500) / a.ttft_s(500) - 1):+.1f}% and the decode energy per token by "
                f"{100 * (b.decode_energy_per_token_j / a.decode_energy_per_token_j - 1):+.1f}%")
        print("\n" + line)
        summary["instruction_sensitivity"] = line
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
