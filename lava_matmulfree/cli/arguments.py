"""The command line's argument parser and argument types, and the arguments several subcommands share (the model,
sampling, generation, time limit, --set and --calibrate).

Light to import, as common.py. Names with a leading underscore are private to the ``cli`` package.
"""
from __future__ import annotations

import argparse

from lava_matmulfree.cli.common import COMPILED_SUFFIX, DEFAULT_CONFIG
from lava_matmulfree.io.packaged import COMPILED_FILE, PACKAGED_MODELS
from lava_matmulfree.utils.limits import MAX_NEW_TOKENS

DEFAULT_PROMPT = "A class definition"  # in the demo model's domain: the Python Language Reference
DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_SEED = 0
BACKEND_HELP = {"float": "the float model", "reference": "the golden fixed-point model (numpy, no Lava)",
                "sim": "Lava's CPU simulator, decomposed blocks (22 leaf processes each)",
                "sim-mixers": "fused mixers", "sim-fused": "one process per block",
                "sim-stack": "every layer in one process", "sim-float": "the floating_pt models, fused blocks",
                "sim-float-decomposed": "the floating_pt models, decomposed",
                "loihi2": "a real Loihi 2 (needs Intel's lava-loihi)"}
CALIBRATION_CHOICES = ("text", "random")  # calibration.CALIBRATION_SOURCES (not imported: keeps start-up light)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``error:`` line and status 2, like every other error."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message} (see --help)")


class _UsageError(Exception):
    pass


def _bounded_int(low: int, name: str):
    """An argparse type: an integer >= ``low``; ``name`` is what argparse calls the type in its messages."""
    def parse(text: str) -> int:
        v = int(text)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v

    parse.__name__ = name
    return parse


_non_negative_int = _bounded_int(0, "non-negative integer")
_positive_int = _bounded_int(1, "positive integer")


def _non_negative_float(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


_non_negative_float.__name__ = "non-negative number"  # argparse names the type in its messages


def _time_limit(text: str) -> float:
    """A run's time limit as RunConfig's timeout_s takes it (its own check, its own message)."""
    from lava_matmulfree.config import RunConfig, replace
    from lava_matmulfree.errors import ConfigError

    try:
        return replace(RunConfig(), timeout_s=float(text)).timeout_s
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).split("timeout_s ", 1)[-1]) from None


_time_limit.__name__ = "time limit"


def _add_timeout_arg(p):
    from lava_matmulfree.config import RunConfig

    p.add_argument("--timeout", type=_time_limit, default=None, metavar="SECONDS",
                   help="time limit of a Lava run, after which its processes are stopped (default: the run config's "
                        f"timeout_s, {RunConfig.timeout_s:g}); a run expected to take longer is announced with its "
                        "estimate before it starts")


def _token_count(text: str, low: int = 0) -> int:
    v = _bounded_int(low, "token count")(text)
    if v > MAX_NEW_TOKENS:
        raise argparse.ArgumentTypeError(f"at most {MAX_NEW_TOKENS} tokens per generation, got {v}")
    return v


def _positive_token_count(text: str) -> int:
    return _token_count(text, 1)


_positive_token_count.__name__ = "positive token count"


def _add_model_command(sub, name: str, func, seed_help: str | None = "seed of the random weights",
                       float_weights: bool = False, **parser_kwargs):
    """The parser of a subcommand that runs a model (``parser_kwargs``: help, description): the model arguments
    come first, the caller adds the command's own; ``func`` runs the command. ``seed_help`` None: no --seed (a
    command that makes no weights); ``float_weights``: a command that calibrates and compiles the float weights
    itself (eval, compile), whatever compiled network the folder holds."""
    p = sub.add_parser(name, **parser_kwargs)
    p.set_defaults(func=func)
    src = p.add_mutually_exclusive_group()
    network = (f"calibrated on real text and compiled afresh: a {COMPILED_FILE} there is not read" if float_weights
               else f"its {COMPILED_FILE} if present, else calibrated on real text and compiled")
    compiled = "" if float_weights else f", or a compiled {COMPILED_SUFFIX} file (see `compile`)"
    src.add_argument("--checkpoint", metavar="PATH_OR_REPO_ID",
                     help=f"a Hugging Face HGRN-Bit folder (config.json, model.safetensors, tokenizer.json if any; "
                          f"{network}), or a Hugging Face repo id such as ridger/MMfreeLM-370M found in the local "
                          f"Hugging Face cache (offline){compiled}. Default: the demo model in "
                          "lava_matmulfree/data/demo_model when installed, else random weights of --config")
    src.add_argument("--model", choices=sorted(PACKAGED_MODELS), default=None,
                     help="a packaged trained model: demo (3 layers, the default) or deep (12 layers)")
    src.add_argument("--config", metavar="NAME_OR_TOML", default=None,
                     help="model config (tiny, 370m, ... or a TOML path): seeded random weights of that size "
                          f"(with none of --checkpoint, --model and --config: the demo model, else {DEFAULT_CONFIG})")
    if seed_help is not None:
        p.add_argument("--seed", type=_non_negative_int, default=DEFAULT_SEED,
                       help=f"{seed_help} (default: {DEFAULT_SEED})")
    return p


def _add_sampling_args(p):
    """--temperature and --top-k."""
    p.add_argument("--temperature", type=_non_negative_float, default=DEFAULT_TEMPERATURE, metavar="T",
                   help=f"sampling temperature, 0 = greedy (default: {DEFAULT_TEMPERATURE})")
    p.add_argument("--top-k", type=_non_negative_int, default=DEFAULT_TOP_K, metavar="K",
                   help=f"sample among the K most likely tokens, 0 = all (default: {DEFAULT_TOP_K})")


def _add_generation_args(p, backends, default_backend, max_new_tokens=DEFAULT_MAX_NEW_TOKENS):
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    p.add_argument("--max-new-tokens", type=_token_count, default=max_new_tokens, metavar="N",
                   help=f"tokens to generate (default: {max_new_tokens})")
    _add_sampling_args(p)
    _add_run_choice_args(p, backends, default_backend)
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads of the reference backend: the golden model's kernel on a team of N (same integers; "
                        "default: the run config's, 1)")


def _add_run_choice_args(p, backends, default_backend):
    """--backend or --run-config (one of them; common._run_choice reads them), and --timeout."""
    from lava_matmulfree.config import config_names

    run = p.add_mutually_exclusive_group()
    run.add_argument("--backend", choices=backends, default=None,
                     help="; ".join(f"{b} = {BACKEND_HELP[b]}" for b in backends) + f" (default: {default_backend})")
    names = [n for n in config_names("run") if n in backends]  # those naming one of this command's backends
    run.add_argument("--run-config", metavar="NAME_OR_TOML",
                     help="a run config with a [run] section (backend, timeout_s, dense_model, threads; its "
                          "record_logits is for the Python API: the commands keep no logits): "
                          f"{', '.join(names)} or a TOML path")
    _add_timeout_arg(p)


def _add_overrides_arg(p, text, metavar="KNOB=VALUE"):
    """--set, repeatable, collected in ``args.overrides``."""
    p.add_argument("--set", action="append", default=[], metavar=metavar, dest="overrides", help=text)


def _add_calibrate_arg(p, text):
    p.add_argument("--calibrate", choices=CALIBRATION_CHOICES, default=None, help=text)
