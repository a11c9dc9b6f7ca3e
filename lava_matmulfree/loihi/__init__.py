"""Loihi 2 mapping and cost model of the MatMul-free LM, and the GPU baselines it is compared with
(docs/cost_model.md).

The modules import one way, each only those above it in this list:
sources (the public sources constants cite) -> hardware (constants with their sources) -> activity (a measured
activity profile: its loader and the density per connection and layer; docs/activity.md) -> core_groups (what a
mapping holds) -> mapping (placement onto cores and chips) -> gpu_baseline (what each GPU baseline runs, op by
op) -> gpu_power (board power) -> gpu_runtimes (time and energy per runtime; the GPU grid) -> cost_model
(per-hop work, latency, energy; sequences in flight) -> traffic (messages per core and chip link; the slowest
against the average core) -> presets (the paper's figures and the deployments) ->
calibration (fits on the paper's anchors and the H200 measurement) -> verdict (Loihi 2 against each GPU x
runtime x model; the paper's claims) -> report (JSON report and text tables) -> sensitivity (the
low-confidence constants halved and doubled) -> cost_plots (matplotlib) -> outputs (what ``lava-matmulfree
estimate`` writes). The GPU side is described in docs/gpu_baselines.md.

The names below are loaded on first use, so ``import lava_matmulfree.loihi`` imports none of them.
"""
from lava_matmulfree.utils.lazy import lazy_exports

_M = "lava_matmulfree.loihi."
API = {
    # hardware constants
    "LOIHI2": _M + "hardware", "Loihi2Spec": _M + "hardware", "GpuSpec": _M + "hardware",
    "JETSON_ORIN_NANO": _M + "hardware", "H100_SXM": _M + "hardware", "H200_SXM": _M + "hardware",
    "load_hardware": _M + "hardware",
    "provenance": _M + "hardware", "CostModelError": _M + "hardware",
    # mapping onto cores and chips
    "MappingOptions": _M + "core_groups", "LoihiMapping": _M + "core_groups", "build_mapping": _M + "mapping",
    # GPU baselines
    "TransformerShape": _M + "gpu_baseline", "LLAMA_370M": _M + "gpu_baseline", "QWEN25_05B": _M + "gpu_baseline",
    "BASELINES": _M + "gpu_baseline", "baselines_for": _M + "gpu_baseline", "MatmulFreeShape": _M + "gpu_baseline",
    "model_axis": _M + "gpu_baseline", "gpu_estimate": _M + "gpu_runtimes", "gpu_rows": _M + "gpu_runtimes",
    "board_energy": _M + "gpu_power",
    # cost model, deployments, calibration
    "LoihiCostModel": _M + "cost_model", "estimate": _M + "cost_model",
    "resolve_instruction_counts": _M + "cost_model",
    # measured activity (docs/activity.md)
    "ActivityProfile": _M + "activity", "load_activity": _M + "activity", "default_activity": _M + "activity",
    "traffic": _M + "traffic", "slowest_vs_mean": _M + "traffic",
    "PAPER": _M + "presets", "PRESETS": _M + "presets", "calibrate": _M + "calibration",
    "fit_h200": _M + "calibration", "verdict": _M + "verdict",
    # the report and what the estimate command writes
    "build_report": _M + "report", "format_report": _M + "report_text", "estimate_main": _M + "outputs",
    "sensitivity_main": _M + "outputs",
}
__all__ = list(API)
__getattr__, __dir__ = lazy_exports(__name__, API)
