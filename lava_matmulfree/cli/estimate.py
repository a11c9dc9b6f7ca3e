"""``estimate``: the Loihi 2 cost model of a config (cores, chips, latency, energy; docs/cost_model.md) and its
verdict against the GPU baselines (docs/gpu_baselines.md)."""
from __future__ import annotations

from pathlib import Path

from lava_matmulfree.cli.arguments import _add_overrides_arg
from lava_matmulfree.cli.common import _inputs
from lava_matmulfree.utils.atomic import check_output_dir, check_output_file

DEFAULT_ESTIMATE_CONFIG = "370m"
DEFAULT_ESTIMATE_DIR = "estimates"


def add_parser(sub):
    s = sub.add_parser("estimate", help="Loihi 2 cost estimate (cores, chips, latency, energy) of a config",
                       description="Run the cost model (lava_matmulfree.loihi.outputs.estimate_main): tables and "
                                   "the verdict against the GPUs on stdout, JSON and plots in --out.")
    s.add_argument("--config", default=DEFAULT_ESTIMATE_CONFIG, metavar="NAME_OR_TOML",
                   help=f"model config, a checkpoint folder (or its config.json), or a shipped model (demo, deep; "
                        f"its measured activity by default) (default: {DEFAULT_ESTIMATE_CONFIG})")
    s.add_argument("--out", default=DEFAULT_ESTIMATE_DIR, metavar="DIR",
                   help=f"output folder (default: {DEFAULT_ESTIMATE_DIR})")
    s.add_argument("--preset", default="paper", choices=("paper", "project"),
                   help="deployment: the paper's (8-bit, one block per chip, 32-chip system) or this project's "
                        "(2-bit, blocks packed) (default: paper)")
    s.add_argument("--json", metavar="FILE", help="write the JSON report here (default: in --out)")
    s.add_argument("--activity", default="auto", metavar="PROFILE.json",
                   help="measured activity profile (written by `lava-matmulfree profile`): its density per "
                        "connection and layer replaces the dense assumption, shown side by side; 'dense' keeps "
                        "the dense headline; default 'auto': a shipped model's own profile, else dense with the "
                        "deep model's profile beside it (docs/activity.md)")
    _add_overrides_arg(s, "override a cost-model constant (loihi2.NAME, jetson.NAME, h100.NAME, h200.NAME or a "
                          "mapping option), parsed by its type (a boolean: true/false, yes/no or 1/0); recorded in "
                          "the report; repeatable", metavar="NAME=VALUE")
    s.add_argument("--sensitivity", action="store_true",
                   help="also rebuild the estimate with each low-confidence constant halved and doubled (the "
                        "fitted ones refitted) and table how far every figure moves (a few minutes at 370M: "
                        "docs/cost_model.md, section 8); "
                        "sensitivity_<config>.json and .png in --out")
    s.set_defaults(func=cmd_estimate)


def _cost_overrides(items) -> dict:
    """``NAME=VALUE`` items of --set as {NAME: the VALUE text}: the cost model says which names it knows and
    parses each value by its field's type (lava_matmulfree.loihi.hardware.coerce: a boolean takes true/false,
    yes/no or 1/0; an integer no fraction), one ``error:`` line for a bad one (docs/cost_model.md, section 1)."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    return overrides


def _estimate_inputs(args, overrides: dict) -> list:
    """The files estimate reads, which no output may be (cli/common.py, _inputs): the --config TOML, checkpoint's or
    shipped model's config.json, and the activity profile (with 'auto' or 'dense', the shipped models' configs and
    profiles)."""
    from lava_matmulfree.config import DATA_DIR, HF_CONFIG_FILE
    from lava_matmulfree.loihi.activity import DENSE, PROFILE_FILE, SHIPPED, hf_config_file

    found = _inputs(args)
    if (conf := hf_config_file(args.config)) is not None:
        found.append(("--config", args.config, conf))
    activity = str(overrides.get("activity", overrides.get("options.activity", "auto")))
    option = "--activity" if activity == args.activity else "--set activity"
    if activity.lower() not in DENSE + ("auto",):
        found.append((option, activity, Path(activity)))
    for name, folder in SHIPPED.items():
        if args.config == name:
            found.append(("--config", name, DATA_DIR / folder / HF_CONFIG_FILE))
        if activity.lower() in DENSE + ("auto",):
            found += [(option, activity, DATA_DIR / folder / f) for f in (HF_CONFIG_FILE, PROFILE_FILE)]
    return found


def cmd_estimate(args) -> int:
    from lava_matmulfree.config import load_model_config
    from lava_matmulfree.errors import ConfigError

    from lava_matmulfree.loihi.activity import SHIPPED, hf_config_file

    # a shipped model ('demo', 'deep') and a checkpoint folder (or its config.json) are costed from their config.json
    if args.config not in SHIPPED and hf_config_file(args.config) is None:
        try:  # a run config or a TOML without [model] is an error, not the 370M defaults
            load_model_config(args.config)
        except ConfigError as e:
            if not str(e).startswith("no model config named"):
                raise
            raise ConfigError(f"{e}; estimate also takes {', '.join(SHIPPED)} (the shipped models) or a checkpoint "
                              "folder") from None
    try:
        from lava_matmulfree.loihi.outputs import estimate_main
    except ImportError as e:
        raise ValueError(f"the cost model is not available ({e})") from None
    overrides = _cost_overrides(args.overrides)
    if args.activity != "auto":
        overrides.setdefault("activity", args.activity)
    inputs = _estimate_inputs(args, overrides)
    json_path = check_output_file(args.json, "--json", inputs) if args.json else None
    out = check_output_dir(args.out, "--out")
    from lava_matmulfree.loihi.outputs import estimate_files, sensitivity_files

    files = estimate_files(args.config, out, args.preset, json_path)  # every output, checked before any work
    for key, path in files.items():
        check_output_file(path, "--json" if key == "json" and json_path else "--out", inputs)
    for path in sensitivity_files(args.config, out) if args.sensitivity else ():
        check_output_file(path, "--out", inputs)
    estimate_main(args.config, out, preset=args.preset, json_path=json_path, **overrides)
    if args.sensitivity:
        from lava_matmulfree.loihi.outputs import sensitivity_main

        print()
        sensitivity_main(args.config, out, **overrides)
    return 0
