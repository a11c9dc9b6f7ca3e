"""What ``lava-matmulfree estimate`` writes (docs/cost_model.md): the report's tables on stdout, its JSON and
its plots; with ``--sensitivity`` the sensitivity table, its JSON and its map.

The top of the cost model: the report and the sensitivity are computed below, the plots drawn by
:mod:`.cost_plots` (matplotlib is imported only when a plot is drawn).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from lava_matmulfree.loihi.report import DEFAULT_PROMPT_LENGTHS, build_report, format_report, report_json
from lava_matmulfree.loihi.sensitivity import FACTORS, base_report, format_sensitivity, sensitivity, to_vary


def config_label(config: str | Path) -> str:
    """The name a config's files carry: a TOML file's stem, else the config's name ('370m')."""
    return Path(config).stem if str(config).endswith(".toml") else str(config)


def estimate_main(config_name: str, out_dir: Path | None = None,
                  prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS, preset: str = "paper",
                  json_path: Path | None = None, plots: bool = True, **overrides) -> dict[str, Any]:
    """Map and cost ``config_name`` on Loihi 2 and the GPU baselines: print the tables; write the JSON report
    (``json_path``, else ``<out_dir>/cost_<name>_<preset>.json``) and, with ``out_dir``, the plots
    ``ttft_<name>_<preset>.png``, ``energy_<name>_<preset>.png`` and ``efficiency_<name>_<preset>.png`` (tokens/s
    against mJ/token for every platform: docs/gpu_baselines.md); return the report. The files are written
    only once everything is computed (nothing partial on an error).

    ``overrides``: see :func:`~.report.build_report`."""
    report = build_report(config_name, prompt_lengths, preset=preset, **overrides)
    name = config_label(config_name)
    files = {}
    if out_dir is not None:
        out = Path(out_dir)
        files = {"json": str(out / f"cost_{name}_{preset}.json"),
                 "ttft_png": str(out / f"ttft_{name}_{preset}.png"),
                 "energy_png": str(out / f"energy_{name}_{preset}.png"),
                 "efficiency_png": str(out / f"efficiency_{name}_{preset}.png")}
    if json_path is not None:
        files["json"] = str(json_path)
    report["files"] = files
    text = report_json(report)
    if out_dir is not None and plots:
        from lava_matmulfree.loihi.cost_plots import plot_efficiency, plot_energy, plot_ttft

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        plot_ttft(report, files["ttft_png"])
        plot_energy(report, files["energy_png"])
        plot_efficiency(report, files["efficiency_png"])
    if "json" in files:
        Path(files["json"]).parent.mkdir(parents=True, exist_ok=True)
        Path(files["json"]).write_text(text)
    print(format_report(report))
    if files:
        print(f"\nwrote {', '.join(files.values())}")
    return report


def sensitivity_main(config: str, out_dir: Path | None = None, names: Iterable[str] | None = None,
                     factors: Sequence[float] = FACTORS, **overrides) -> dict[str, Any]:
    """``estimate --sensitivity``: run :func:`~.sensitivity.sensitivity` with a progress bar, print the table
    and, with ``out_dir``, write ``sensitivity_<name>.json`` and ``.png`` there (whole or not at all)."""
    from lava_matmulfree.utils.atomic import atomic_outputs
    from lava_matmulfree.utils.progress import progress

    todo = to_vary(base_report(config, overrides), names, overrides)
    bar = progress(total=len(todo) * len(factors), desc="sensitivity", unit="run", leave=False)
    try:
        s = sensitivity(config, todo, factors, overrides, on_step=lambda name: bar.update(1))
    finally:
        bar.close()
    print(format_sensitivity(s))
    if out_dir is not None:
        from lava_matmulfree.loihi.cost_plots import plot_sensitivity

        name = config_label(config)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = (out / f"sensitivity_{name}.json", out / f"sensitivity_{name}.png")
        with atomic_outputs(*paths) as (tmp_json, tmp_png):
            tmp_json.write_text(report_json(s))
            plot_sensitivity(s, tmp_png)
        print(f"\nwrote {paths[0]}, {paths[1]}")
    return s
