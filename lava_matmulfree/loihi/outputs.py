"""What ``lava-matmulfree estimate`` writes (docs/cost_model.md): the report's tables on stdout, its JSON and
its plots; with ``--sensitivity`` the sensitivity table, its JSON and its map.

The top of the cost model: the report and the sensitivity are computed below, the plots drawn by
:mod:`.cost_plots` (matplotlib is imported only when a plot is drawn).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from lava_matmulfree.loihi.activity import hf_config_file
from lava_matmulfree.loihi.report import DEFAULT_PROMPT_LENGTHS, build_report, report_json
from lava_matmulfree.loihi.report_text import format_report
from lava_matmulfree.loihi.sensitivity import FACTORS, base_report, format_sensitivity, sensitivity, to_vary


def config_label(config: str | Path) -> str:
    """The name a config's files carry: a TOML file's stem, a checkpoint folder's name (of its config.json: the
    folder's), else the config's name ('370m')."""
    conf = hf_config_file(config)
    if conf is not None:
        return conf.parent.resolve().name
    return Path(config).stem if str(config).endswith(".toml") else str(config)


PLOTS = {"ttft_png": "ttft", "energy_png": "energy", "efficiency_png": "efficiency"}  # report["files"] key: name


def estimate_files(config_name: str, out_dir: Path | None = None, preset: str = "paper",
                   json_path: Path | None = None) -> dict[str, str]:
    """The files :func:`estimate_main` writes, by kind ('json' and the :data:`PLOTS` keys): checked by the CLI before
    any work (a bad path, or one of the command's inputs, costs nothing)."""
    name = config_label(config_name)
    files = {}
    if out_dir is not None:
        out = Path(out_dir)
        files = {"json": str(out / f"cost_{name}_{preset}.json"),
                 **{key: str(out / f"{plot}_{name}_{preset}.png") for key, plot in PLOTS.items()}}
    if json_path is not None:
        files["json"] = str(json_path)
    return files


def sensitivity_files(config: str, out_dir: Path) -> tuple[Path, Path]:
    """The JSON and the map :func:`sensitivity_main` writes in ``out_dir``."""
    name = config_label(config)
    return Path(out_dir) / f"sensitivity_{name}.json", Path(out_dir) / f"sensitivity_{name}.png"


def estimate_main(config_name: str, out_dir: Path | None = None,
                  prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS, preset: str = "paper",
                  json_path: Path | None = None, plots: bool = True, **overrides) -> dict[str, Any]:
    """Map and cost ``config_name`` on Loihi 2 and the GPU baselines: print the tables; write the JSON report
    (``json_path``, else ``<out_dir>/cost_<name>_<preset>.json``) and, with ``out_dir``, the plots
    ``ttft_<name>_<preset>.png``, ``energy_<name>_<preset>.png`` and ``efficiency_<name>_<preset>.png`` (tokens/s
    against mJ/token for every platform: docs/gpu_baselines.md); return the report. The files are written
    only once everything is computed, each to a temporary file renamed over its name once all are written: all of
    them or none, an older one kept whole on an error (a full disk: an OutputError naming the file).

    ``overrides``: see :func:`~.report.build_report`."""
    from lava_matmulfree.utils.atomic import atomic_outputs, writing

    report = build_report(config_name, prompt_lengths, preset=preset, **overrides)
    files = estimate_files(config_name, out_dir, preset, json_path)
    report["files"] = files
    text = report_json(report)
    keys = [k for k in files if k == "json" or plots]  # without plots: the JSON alone
    if keys:
        with atomic_outputs(*(files[k] for k in keys)) as tmps:
            for key, tmp in zip(keys, tmps):
                with writing(tmp):
                    if key == "json":
                        tmp.write_text(text, encoding="utf-8")
                    else:
                        from lava_matmulfree.loihi import cost_plots  # matplotlib: only when a plot is drawn

                        getattr(cost_plots, f"plot_{PLOTS[key]}")(report, tmp)
    print(format_report(report))
    if files:
        print(f"\nwrote {', '.join(files[k] for k in keys)}")
    return report


def sensitivity_main(config: str, out_dir: Path | None = None, names: Iterable[str] | None = None,
                     factors: Sequence[float] = FACTORS, **overrides) -> dict[str, Any]:
    """``estimate --sensitivity``: run :func:`~.sensitivity.sensitivity` with a progress bar, print the table
    and, with ``out_dir``, write ``sensitivity_<name>.json`` and ``.png`` there (whole or not at all: both are
    renamed into place once both are written)."""
    from lava_matmulfree.utils.atomic import atomic_outputs, writing
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

        paths = sensitivity_files(config, out_dir)
        with atomic_outputs(*paths) as (tmp_json, tmp_png):
            with writing(tmp_json):
                tmp_json.write_text(report_json(s), encoding="utf-8")
            with writing(tmp_png):
                plot_sensitivity(s, tmp_png)
        print(f"\nwrote {paths[0]}, {paths[1]}")
    return s
