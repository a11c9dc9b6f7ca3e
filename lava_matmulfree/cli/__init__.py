"""The ``lava-matmulfree`` command line.

    lava-matmulfree generate  [MODEL] [--backend B | --run-config NAME] [--prompt TEXT] [--max-new-tokens N] ...
    lava-matmulfree probe     [MODEL] [--backend B] [--vars l0.h,l1.h] [--out PREFIX]   -> PREFIX.npz, PREFIX.png
    lava-matmulfree eval      [MODEL] [--text FILE] [--set knob=value ...] [--json PATH]
    lava-matmulfree compile   [MODEL] --out FILE.safetensors [--calib-text FILE]
    lava-matmulfree estimate  [--config NAME] [--out DIR] [--preset paper|project] [--json FILE] [--set NAME=VALUE]
                              [--sensitivity]
    lava-matmulfree info      [MODEL]

MODEL: ``--checkpoint`` (a Hugging Face folder, calibrated on random sequences and compiled; a
``compiled.safetensors`` inside it or a compiled ``.safetensors`` file is used as is) or ``--config NAME``
with ``--seed`` (seeded random weights); without either, the demo model in lava_matmulfree/data/demo_model
when present, else random weights of the tiny config.

Generated text goes to stdout (prompt first); timing and statistics go to stderr so that stdout holds
only text. Every user error (:class:`LmfError`, bad argument values) prints one ``error: ...`` line to
stderr and exits with status 2, without a traceback. Heavy modules (numpy, safetensors, lava) are imported
only by the subcommand that needs them.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from lava_matmulfree.utils.atomic import atomic_outputs, check_output_dir, check_output_file, write_text
from lava_matmulfree.utils.limits import MAX_NEW_TOKENS, check_tokens
from lava_matmulfree.config import BACKEND_NAMES, LAVA_BACKEND_NAMES
from lava_matmulfree.errors import LmfError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention

DEFAULT_CONFIG = "tiny"
DEFAULT_PROMPT = "A class definition"  # in the demo model's domain: the Python Language Reference
DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_SEED = 0
DEFAULT_PROBE_NEW_TOKENS = 8
DEFAULT_CHAT_PROMPT_TOKENS = 256
CHAT_RESET = "/reset"  # a chat line that starts a new conversation
DEFAULT_FLOAT_DTYPE = "float32"
FLOAT_DTYPES = ("float32", "float64")
# Terminal control characters (C0 except tab and newline, DEL, C1) that a random or badly trained model may
# emit are shown as U+FFFD rather than sent to the terminal.
KEEP_CONTROLS = "\t\n"
CONTROL_CHARS = [c for c in range(0x20) if chr(c) not in KEEP_CONTROLS] + list(range(0x7F, 0xA0))
PRINTABLE = str.maketrans({c: "\ufffd" for c in CONTROL_CHARS})


# ----------------------------------------------------------------------------------------- models
BACKEND_CHOICES = BACKEND_NAMES
LAVA_BACKENDS = LAVA_BACKEND_NAMES
FLOAT_BACKENDS = ("float", "sim-float", "sim-float-decomposed")  # their probes are real values already
PLOT_TITLE_CHARS = 110  # the probe plot's title is wrapped at this width
PROBE_BACKENDS = ("reference",) + LAVA_BACKENDS
DEFAULT_BACKEND = "sim-fused"
#: backends whose models read the ternary weights only through the packed kernel (QuantisedNetwork.pack_weights)
PACKED_WEIGHT_BACKENDS = ("reference", "sim-fused", "sim-stack")
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "demo_model"
DEEP_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "deep_model"
PACKAGED_MODELS = {"demo": "DEMO_MODEL_DIR", "deep": "DEEP_MODEL_DIR"}  # --model NAME -> the module constant
DEMO_MODEL_FILES = ("config.json", "model.safetensors")
COMPILED_FILE = "compiled.safetensors"  # a compiled network inside a checkpoint folder is used as is
COMPILED_SUFFIX = ".safetensors"
INFO_CALIB_SEQUENCES = 1  # `info` only needs a network of the right shape, not good formats
INFO_CALIB_LENGTH = 4
DEFAULT_PROBE_OUT = "probe"
PLOT_CHANNELS = 64  # channels per probe shown in the PNG
PLOT_WIDTH_IN = 10.0
PLOT_ROW_HEIGHT_IN = 2.2
DEFAULT_ESTIMATE_CONFIG = "370m"
DEFAULT_ESTIMATE_DIR = "estimates"
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")
CALIBRATION_CHOICES = ("text", "random")  # calibration.CALIBRATION_SOURCES (not imported here: keeps start-up light)


class _Model:
    """What a subcommand runs: the compiled network and/or the float model, the tokenizer, a description."""

    def __init__(self, cfg, net, float_model, tokenizer, what):
        self.cfg, self.net, self.float_model, self.tokenizer, self.what = cfg, net, float_model, tokenizer, what


def _packaged_model(name: str) -> Path:
    folder = globals()[PACKAGED_MODELS[name]]
    if not all((folder / f).is_file() for f in DEMO_MODEL_FILES):
        raise ValueError(f"--model {name}: the packaged model is not installed ({folder} lacks "
                         f"{' or '.join(DEMO_MODEL_FILES)})")
    return folder


def _checkpoint_arg(args):
    """--checkpoint (a path, or a Hugging Face repo id found in the local cache), else --model, else the demo
    model when it is installed and no --config was asked for, else None."""
    if args.checkpoint is not None:
        from lava_matmulfree.io.checkpoint import resolve_checkpoint

        try:
            return resolve_checkpoint(args.checkpoint)
        except LmfError as e:
            raise ValueError(f"--checkpoint {e}") from None
    if getattr(args, "model", None) is not None:
        return _packaged_model(args.model)
    if args.config is None and all((DEMO_MODEL_DIR / f).is_file() for f in DEMO_MODEL_FILES):
        return DEMO_MODEL_DIR
    return None


def _compiled_file(ckpt: Path | None):
    """The compiled network a checkpoint argument names (a .safetensors file, or compiled.safetensors in
    the folder), else None."""
    if ckpt is None:
        return None
    if ckpt.is_file():
        if ckpt.suffix != COMPILED_SUFFIX:
            raise ValueError(f"{ckpt}: --checkpoint takes a Hugging Face folder or a compiled {COMPILED_SUFFIX} file")
        return ckpt
    inside = ckpt / COMPILED_FILE
    return inside if inside.is_file() else None


def _compiled_from(net, compiled: Path, ckpt: Path) -> bool:
    """Whether a compiled network found inside a checkpoint folder was compiled from that folder's weights
    (its fingerprint); if not, say so: the caller recompiles from the weights."""
    from lava_matmulfree.io.checkpoint import INDEX_FILE, WEIGHTS_FILE, fingerprint, load_checkpoint

    if ckpt.is_file() or not any((ckpt / f).is_file() for f in (WEIGHTS_FILE, INDEX_FILE)):
        return True  # a compiled file named directly, or a folder without float weights: nothing to compare
    cfg, params = load_checkpoint(ckpt)
    if net.fingerprint == fingerprint(cfg, params):
        return True
    why = ("carries no fingerprint of the weights it was compiled from" if not net.fingerprint
           else f"was compiled from other weights than those in {ckpt}")
    print(f"warning: {compiled} {why}; ignoring it and compiling the checkpoint "
          f"(`lava-matmulfree compile --checkpoint {ckpt} --out {compiled}` makes a matching one)", file=sys.stderr)
    return False


def _tokenizer(ckpt: Path | None):
    from lava_matmulfree.io.tokenizer import ByteTokenizer, load_tokenizer

    if ckpt is None:
        return ByteTokenizer()
    return load_tokenizer(ckpt.parent if ckpt.is_file() else ckpt)


def _check_vocab(tok, cfg):
    if tok.vocab_size > cfg.vocab_size:
        which = getattr(tok, "path", None) or "the byte tokenizer"
        raise ValueError(f"{which}: the tokenizer has {tok.vocab_size} tokens but the model only "
                         f"{cfg.vocab_size} (vocab_size)")


def _load_model(args, backend: str, use_compiled: bool = True, **build_kwargs) -> _Model:
    """The model of --checkpoint / --config / --seed for ``backend``: a float model for ``float``, else the
    compiled network (loaded, or calibrated and compiled with a progress bar)."""
    ckpt = _checkpoint_arg(args)
    compiled = _compiled_file(ckpt) if use_compiled else None
    if backend == "float":
        if ckpt is not None and ckpt.is_file():
            raise ValueError(f"{ckpt} is a compiled (fixed-point) network: the float backend needs the float "
                             "weights of a Hugging Face folder; use --backend reference, sim or sim-fused")
        import numpy as np

        from lava_matmulfree.model.float_model import FloatModel

        if ckpt is not None:
            from lava_matmulfree.io.checkpoint import load_checkpoint

            cfg, params = load_checkpoint(ckpt)
            what = f"checkpoint {ckpt}"
        else:
            from lava_matmulfree.config import load_model_config
            from lava_matmulfree.io.params import random_params

            cfg = load_model_config(args.config or DEFAULT_CONFIG)
            params = random_params(cfg, seed=args.seed)
            what = f"random weights of config {cfg.name!r} (seed {args.seed})"
        tok = _tokenizer(ckpt)
        _check_vocab(tok, cfg)
        dtype = np.dtype(getattr(args, "float_dtype", DEFAULT_FLOAT_DTYPE)).type
        return _Model(cfg, None, FloatModel(cfg, params, dtype=dtype), tok, what)
    if compiled is not None:
        from lava_matmulfree.model.quantise import QuantisedNetwork

        net = QuantisedNetwork.load(compiled)
        if backend in PACKED_WEIGHT_BACKENDS:
            net.pack_weights()  # no float model shares the int8 arrays here: the weights then live once, packed
        if _compiled_from(net, compiled, ckpt):
            tok = _tokenizer(ckpt)
            _check_vocab(tok, net.cfg)
            return _Model(net.cfg, net, None, tok, f"compiled network {compiled}")
    from lava_matmulfree.evaluation.accuracy import build_evaluation

    tok = _tokenizer(ckpt)  # before calibrating: a bad tokenizer is a quick error
    setup = build_evaluation(args.config, args.seed, ckpt, progress=True, **build_kwargs)
    _check_vocab(tok, setup.cfg)
    return _Model(setup.cfg, setup.net, setup.float_model, tok, setup.source)


def _run_choice(args, default_backend: str = DEFAULT_BACKEND):
    """(backend, RunConfig) from --backend or --run-config; loihi2 without lava-loihi fails here, early."""
    from lava_matmulfree.config import RunConfig, load_config

    if args.run_config is not None:
        run = load_config(args.run_config, require="run").run
    else:
        run = RunConfig(backend=args.backend or default_backend)
    if run.backend == "loihi2":
        from lava_matmulfree.graph.backends import lava_run_config

        lava_run_config("loihi2")
    return run.backend, run


def _lava_stats(gen) -> str:
    if gen.steps is None:
        return ""
    fused = " (fused blocks: a token crosses every layer in the step it arrives)" if gen.steps_per_layer == 0 else ""
    return (f"; {gen.steps} time steps, {gen.steps_per_layer:g} step(s) per token per layer{fused}, "
            f"{gen.leaf_processes} leaf processes")


def _run_generation(args, backend, run, m, probes=(), on_token=None):
    from lava_matmulfree.graph.backends import generate

    prompt = m.tokenizer.encode(args.prompt, add_bos=True)
    if not prompt:
        raise ValueError("the prompt is empty and the tokenizer has no begin-of-sequence token")
    return prompt, generate(backend, m.net, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed,
                            probes=probes, run=run, float_model=m.float_model, on_token=on_token)


# ----------------------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``error:`` line and status 2, like every other error."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message} (see --help)")


class _UsageError(Exception):
    pass


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _non_negative_float(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _token_count(text: str) -> int:
    v = _non_negative_int(text)
    if v > MAX_NEW_TOKENS:
        raise argparse.ArgumentTypeError(f"at most {MAX_NEW_TOKENS} tokens per generation, got {v}")
    return v


_non_negative_int.__name__ = "non-negative integer"  # argparse names the type in its messages
_positive_int.__name__ = "positive integer"
_non_negative_float.__name__ = "non-negative number"


def _add_model_args(p, seed_help="seed of the random weights"):
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", metavar="PATH_OR_REPO_ID",
                     help="a Hugging Face HGRN-Bit folder (config.json, model.safetensors, tokenizer.json if any; "
                          f"its {COMPILED_FILE} if present, else calibrated on real text and compiled), a "
                          "Hugging Face repo id such as ridger/MMfreeLM-370M found in the local Hugging Face cache "
                          f"(offline), or a compiled {COMPILED_SUFFIX} file (see `compile`). Default: the demo "
                          "model in lava_matmulfree/data/demo_model when installed, else random weights of --config")
    src.add_argument("--model", choices=sorted(PACKAGED_MODELS), default=None,
                     help="a packaged trained model: demo (3 layers, the default) or deep (12 layers)")
    src.add_argument("--config", metavar="NAME_OR_TOML", default=None,
                     help=f"model config (tiny, 370m, ... or a TOML path) of seeded random weights (default: "
                          f"{DEFAULT_CONFIG})")
    p.add_argument("--seed", type=_non_negative_int, default=DEFAULT_SEED, help=f"{seed_help} (default: {DEFAULT_SEED})")


def _add_generation_args(p, backends, default_backend, max_new_tokens=DEFAULT_MAX_NEW_TOKENS):
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    p.add_argument("--max-new-tokens", type=_token_count, default=max_new_tokens, metavar="N",
                   help=f"tokens to generate (default: {max_new_tokens})")
    p.add_argument("--temperature", type=_non_negative_float, default=DEFAULT_TEMPERATURE, metavar="T",
                   help=f"sampling temperature, 0 = greedy (default: {DEFAULT_TEMPERATURE})")
    p.add_argument("--top-k", type=_non_negative_int, default=DEFAULT_TOP_K, metavar="K",
                   help=f"sample among the K most likely tokens, 0 = all (default: {DEFAULT_TOP_K})")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--backend", choices=backends, default=None,
                     help=f"float = float reference, reference = golden fixed-point model (numpy), sim = Lava CPU "
                          f"simulator with decomposed blocks (22 leaf processes each), sim-fused = one process per "
                          f"block, loihi2 = a real chip (needs lava-loihi) (default: {default_backend})")
    run.add_argument("--run-config", metavar="NAME_OR_TOML",
                     help="a run config with a [run] section (backend, timeout_s, record_logits): sim, sim-fused, "
                          "reference, loihi2 or a TOML path")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lava-matmulfree",
                description="A MatMul-free language model (HGRN-Bit / MMfreeLM) as a Lava process graph for Loihi 2.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    g = sub.add_parser("generate", help="generate text from a prompt",
                       description="Generate text on one backend. The prompt and the new text go to stdout (the "
                                   "text streams as the graph chooses each token); backend, tokens/s and "
                                   "for Lava the time steps and processes go to stderr.")
    _add_model_args(g, "seed of the sampler and of the random weights")
    _add_generation_args(g, BACKEND_CHOICES, DEFAULT_BACKEND)
    g.add_argument("--float-dtype", choices=FLOAT_DTYPES, default=DEFAULT_FLOAT_DTYPE,
                   help=f"arithmetic of the float backend (default: {DEFAULT_FLOAT_DTYPE})")
    g.set_defaults(func=cmd_generate)

    pr = sub.add_parser("probe", help="record internal variables per token (.npz + .png)",
                        description="Generate like `generate` on a fixed-point backend and record variables per "
                                    "token: PREFIX.npz holds one array [tokens, ...] per probe plus `tokens` (prompt "
                                    "and new ids) and `token_index`; PREFIX.png shows the first "
                                    f"{PLOT_CHANNELS} channels of each probe over the tokens.")
    _add_model_args(pr, "seed of the sampler and of the random weights")
    _add_generation_args(pr, PROBE_BACKENDS, DEFAULT_BACKEND, max_new_tokens=DEFAULT_PROBE_NEW_TOKENS)
    pr.add_argument("--vars", metavar="NAMES",
                    help="comma-separated probes (docs/graph.md, 'Probes'): l<layer>.<x|r|h|y|x_out|"
                         "attn_sum_sq|...|attn_inv_rms|...>, head.<x|sum_sq|inv_rms|spikes|logits>, embedding.x_out "
                         "(default: every layer's h)")
    pr.add_argument("--out", default=DEFAULT_PROBE_OUT, metavar="PREFIX",
                    help=f"output prefix: PREFIX.npz and PREFIX.png (default: {DEFAULT_PROBE_OUT})")
    pr.set_defaults(func=cmd_probe)

    e = sub.add_parser("eval", help="accuracy of the fixed-point model against the float model",
                       description="Calibrate, compile and compare the golden fixed-point model with the float "
                                   "model: per-layer relative errors, logits, top-1 agreement, KL, clipping and "
                                   "overflows; with --text also the perplexity of both models on that text.")
    _add_model_args(e)
    e.add_argument("--text", metavar="FILE", help="a text file for perplexity (tokenised by the checkpoint's "
                                                  "tokenizer, bytes for random weights)")
    e.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", dest="overrides",
                   help="override a fixed-point knob (a [fixed_point] field such as act_bits=6); repeatable")
    e.add_argument("--sequences", type=_positive_int, default=None, metavar="N", help="random sample sequences")
    e.add_argument("--length", type=_positive_int, default=None, metavar="N", help="tokens per sample sequence")
    e.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    e.add_argument("--calibrate", choices=CALIBRATION_CHOICES, default=None,
                   help="calibration sample: text = the shipped corpus through the checkpoint's tokenizer (default "
                        "for a checkpoint), random = random token ids (default for random weights)")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("compile", help="calibrate and compile a model into one .safetensors file",
                       description="Calibrate the float model (a checkpoint on real text: the shipped corpus "
                                   "through its tokenizer; random weights on random token ids; or the tokens of "
                                   "--calib-text cut into sequences of --calib-length) and write the compiled "
                                   "fixed-point network, which --checkpoint then loads without recalibrating.")
    _add_model_args(c)
    c.add_argument("--out", required=True, metavar="FILE", help=f"the compiled network ({COMPILED_SUFFIX})")
    c.add_argument("--calib-text", metavar="FILE", help="calibrate on the tokens of this text file")
    c.add_argument("--calib-length", type=_positive_int, default=None, metavar="N",
                   help="tokens per calibration sequence")
    c.add_argument("--calibrate", choices=CALIBRATION_CHOICES, default=None,
                   help="without --calib-text: text (default for a checkpoint) or random token ids")
    c.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", dest="overrides",
                   help="override a fixed-point knob; repeatable")
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser("estimate", help="Loihi 2 cost estimate (cores, chips, latency, energy) of a config",
                       description="Run the cost model (lava_matmulfree.loihi.cost_model.estimate_main): tables on "
                                   "stdout, JSON and plots in --out.")
    s.add_argument("--config", default=DEFAULT_ESTIMATE_CONFIG, metavar="NAME_OR_TOML",
                   help=f"model config (default: {DEFAULT_ESTIMATE_CONFIG})")
    s.add_argument("--out", default=DEFAULT_ESTIMATE_DIR, metavar="DIR",
                   help=f"output folder (default: {DEFAULT_ESTIMATE_DIR})")
    s.add_argument("--preset", default="paper", choices=("paper", "project"),
                   help="deployment: the paper's (8-bit, one block per chip, 32-chip system) or this project's")
    s.add_argument("--json", metavar="FILE", help="write the JSON report here (default: in --out)")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="override a cost-model constant (loihi2.NAME, jetson.NAME, h100.NAME or a mapping "
                        "option); repeatable")
    s.add_argument("--sensitivity", action="store_true",
                   help="also rebuild the estimate with each low-confidence constant halved and doubled (the "
                        "fitted ones refitted) and table how far every figure moves (~1 min at 370M); "
                        "sensitivity_<config>.json and .png in --out")
    s.set_defaults(func=cmd_estimate)

    ch = sub.add_parser("chat", help="answer prompts from stdin in one Lava runtime (state kept between them)",
                        description="Read prompts from stdin, one per line, and stream each answer to stdout as the "
                                    "graph chooses its tokens. One compiled graph and one Lava runtime serve every "
                                    "prompt; the MLGRU state h carries over from one prompt to the next (a "
                                    "conversation) unless --reset-each, or a line '/reset'. End with EOF (Ctrl-D).")
    _add_model_args(ch, "seed of the sampler and of the random weights")
    ch.add_argument("--backend", choices=LAVA_BACKENDS, default=DEFAULT_BACKEND,
                    help=f"a Lava backend (default: {DEFAULT_BACKEND})")
    ch.add_argument("--max-new-tokens", type=_positive_int, default=DEFAULT_MAX_NEW_TOKENS, metavar="N",
                    help=f"tokens per answer (default: {DEFAULT_MAX_NEW_TOKENS})")
    ch.add_argument("--max-prompt-tokens", type=_positive_int, default=DEFAULT_CHAT_PROMPT_TOKENS, metavar="N",
                    help=f"longest prompt in tokens (default: {DEFAULT_CHAT_PROMPT_TOKENS})")
    ch.add_argument("--temperature", type=_non_negative_float, default=DEFAULT_TEMPERATURE, metavar="T")
    ch.add_argument("--top-k", type=_non_negative_int, default=DEFAULT_TOP_K, metavar="K")
    ch.add_argument("--reset-each", action="store_true", help="start every prompt from the zero state")
    ch.set_defaults(func=cmd_chat)

    i = sub.add_parser("info", help="the Lava process graph of a model",
                       description="Build the process graph for a one-token prompt (nothing runs) and print its "
                                   "processes, a block's ports and variables, time steps per token per layer and "
                                   "the decode loop depth on sim and sim-fused, and the Loihi 2 mapping.")
    _add_model_args(i)
    i.set_defaults(func=cmd_info)

    t = sub.add_parser("train", add_help=False, help="train the small demo model with quantisation-aware "
                       "training (needs the train extra: lava-dl, torch); `train --help` for its options")
    t.add_argument("train_args", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_train)
    return p


# ----------------------------------------------------------------------------------------- commands
def cmd_generate(args, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    backend, run = _run_choice(args)
    m = _load_model(args, backend)
    eos = m.cfg.eos_token_id if m.cfg.eos_token_id >= 0 else m.tokenizer.eos_token_id  # the model's config first
    stream = m.tokenizer.stream_decoder()
    ended = []

    def on_token(t: int):
        if ended:  # the Lava backends run to max_new_tokens; nothing after the end of sequence is shown
            return
        if t == eos:
            ended.append(t)
        text = stream.push(t)
        if text:
            out.write(text.translate(PRINTABLE))
            out.flush()

    print(f"[{m.what}, backend {backend}]", file=err)
    out.write(args.prompt.translate(PRINTABLE))
    out.flush()
    if args.max_new_tokens == 0:
        out.write("\n")
        return 0
    prompt, gen = _run_generation(args, backend, run, m, on_token=on_token)
    out.write(stream.flush().translate(PRINTABLE) + "\n")
    out.flush()
    print(f"backend {backend}: {len(prompt)} prompt tokens, {len(gen.tokens)} new tokens in {gen.seconds:.3f} s "
          f"({gen.tokens_per_second:.1f} tokens/s){_lava_stats(gen)}", file=err)
    return 0


def cmd_chat(args, inp=None, out=None, err=None) -> int:
    from lava_matmulfree.graph.session import Session

    inp, out, err = inp or sys.stdin, out or sys.stdout, err or sys.stderr
    m = _load_model(args, args.backend)
    check_tokens(m.cfg, args.max_prompt_tokens + args.max_new_tokens, "--max-prompt-tokens + --max-new-tokens")
    interactive = inp.isatty()
    print(f"[{m.what}, backend {args.backend}; one runtime for every prompt; '/reset' starts over, EOF ends]",
          file=err)
    with Session(args.backend, m.net, capacity=args.max_prompt_tokens + args.max_new_tokens,
                 temperature=args.temperature, top_k=args.top_k, seed=args.seed, float_model=m.float_model) as chat:
        reset = True
        while True:
            if interactive:
                err.write("> ")
                err.flush()
            line = inp.readline()
            if not line:
                break
            text = line.rstrip("\n")
            if text.strip() == CHAT_RESET:
                reset = True
                print("[state reset]", file=err)
                continue
            prompt = m.tokenizer.encode(text, add_bos=reset)
            if not prompt:
                continue
            if len(prompt) > args.max_prompt_tokens:
                print(f"error: the prompt has {len(prompt)} tokens, more than --max-prompt-tokens "
                      f"{args.max_prompt_tokens}; not sent", file=err)
                continue
            stream = m.tokenizer.stream_decoder()

            def on_token(t: int):
                piece = stream.push(t)
                if piece:
                    out.write(piece.translate(PRINTABLE))
                    out.flush()

            gen = chat.ask(prompt, args.max_new_tokens, on_token=on_token, reset=reset or args.reset_each)
            out.write(stream.flush().translate(PRINTABLE) + "\n")
            out.flush()
            first = "" if gen.first_token_seconds is None else f", first token after {gen.first_token_seconds:.3f} s"
            print(f"[{len(prompt)} prompt tokens, {len(gen.tokens)} new tokens in {gen.seconds:.3f} s{first}]",
                  file=err)
            reset = False
    return 0


def _probe_names(text, num_layers: int) -> list:
    from lava_matmulfree.graph.builder import HEAD_AGGREGATOR_VARS, HEAD_PORTS, HEAD_VARS
    from lava_matmulfree.processes.block.process import BLOCK_VARS

    block = tuple(BLOCK_VARS) + ("x_out",)
    head = HEAD_VARS + HEAD_AGGREGATOR_VARS + HEAD_PORTS

    if text is None:
        return [f"l{l}.h" for l in range(num_layers)]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--vars names no probe")
    for n in names:
        where, _, var = n.partition(".")
        layer = re.fullmatch(r"l(\d+)", where)
        ok = (where == "head" and var in head) or n == "embedding.x_out" or (
            layer is not None and int(layer.group(1)) < num_layers and var in block)
        if not ok:
            raise ValueError(f"unknown probe {n!r} in --vars (known: l<layer>.{{{','.join(block)}}} with layer "
                             f"0..{num_layers - 1}, head.{{{','.join(head)}}}, embedding.x_out)")
    return names


def _plot_probes(path, probes: dict, prompt_len: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(probes)
    fig, axes = plt.subplots(len(names), 1, figsize=(PLOT_WIDTH_IN, PLOT_ROW_HEIGHT_IN * len(names)),
                             squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        a = np.asarray(probes[name], dtype=np.float64)
        a = a.reshape(a.shape[0], -1)[:, :PLOT_CHANNELS].T  # channels x tokens
        lim = float(np.abs(a).max()) or 1.0  # symmetric colour scale around 0
        im = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.axvline(prompt_len - 0.5, color="k", linestyle="--", linewidth=1)
        ax.set_ylabel(f"{name}\nchannel")
        fig.colorbar(im, ax=ax, pad=0.01).set_label("value (dequantised)", fontsize="small")
    axes[-1, 0].set_xlabel("token index (dashed line: end of the prompt; later tokens are generated)")
    import textwrap

    fig.suptitle(textwrap.fill(title, PLOT_TITLE_CHARS), fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cmd_probe(args, err=None) -> int:
    import numpy as np

    err = err or sys.stderr
    backend, run = _run_choice(args)
    if backend not in PROBE_BACKENDS:
        raise ValueError(f"probes are recorded on {', '.join(PROBE_BACKENDS)}, not on {backend}")
    if args.max_new_tokens < 1:
        raise ValueError("probe needs --max-new-tokens >= 1")
    npz, png = Path(f"{args.out}.npz"), Path(f"{args.out}.png")
    for path in (npz, png):  # a bad output path is found before the run, not after it
        check_output_file(path)
    m = _load_model(args, backend)
    names = _probe_names(args.vars, m.cfg.num_layers)
    prompt, gen = _run_generation(args, backend, run, m, probes=names)
    tokens = list(prompt) + list(gen.tokens)
    n = len(tokens) - 1  # every token but the last enters the graph
    from lava_matmulfree.graph.backends import dequantise_probes, probe_frac_bits

    fixed = backend not in FLOAT_BACKENDS
    real = dequantise_probes(m.net, {name: gen.probes[name] for name in names}) if fixed else gen.probes
    # raw arrays as recorded (integers on the fixed-point backends), their fraction bits, and real values
    extra = {f"{name}.frac_bits": np.asarray(probe_frac_bits(m.net, name)) for name in names
             if name not in ("head.spikes", "head.logits")} if fixed else {}
    title = (f"{m.what}, backend {backend}: first {PLOT_CHANNELS} channels per token "
             f"({len(prompt)} prompt + {len(gen.tokens)} new tokens)")
    with atomic_outputs(npz, png) as (npz_tmp, png_tmp):  # both files or neither
        with open(npz_tmp, "wb") as f:
            np.savez(f, tokens=np.asarray(tokens), token_index=np.arange(n), prompt_length=np.asarray(len(prompt)),
             **{name: np.asarray(gen.probes[name]) for name in names},
                     **{f"{name}.real": np.asarray(real[name]) for name in names}, **extra)
        _plot_probes(png_tmp, {name: real[name] for name in names}, len(prompt), title)
    print(tokens and m.tokenizer.decode(tokens).translate(PRINTABLE))
    print(f"backend {backend}: {len(names)} probes over {n} tokens in {gen.seconds:.3f} s{_lava_stats(gen)}; "
          f"wrote {npz} and {png}", file=err)
    return 0


def _parse_overrides(items) -> dict:
    import dataclasses

    from lava_matmulfree.config import FixedPointConfig

    types = {f.name: f.type for f in dataclasses.fields(FixedPointConfig)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep:
            raise ValueError(f"--set {item!r}: expected KNOB=VALUE")
        if key not in types:
            raise ValueError(f"--set {item!r}: unknown fixed-point knob {key!r} (known: {', '.join(types)})")
        typ = str(getattr(types[key], "__name__", types[key]))
        try:
            if typ == "bool":
                if text.lower() not in TRUE_WORDS + FALSE_WORDS:
                    raise ValueError
                out[key] = text.lower() in TRUE_WORDS
            else:
                out[key] = {"int": int, "float": float}.get(typ, str)(text)
        except ValueError:
            raise ValueError(f"--set {item!r}: {key} takes a {typ}") from None
    return out


def _model_cfg(args, ckpt):
    """The ModelConfig of --checkpoint / --config without loading any weights (for size checks)."""
    if ckpt is not None:
        from lava_matmulfree.io.checkpoint import read_config_json

        return read_config_json(ckpt)
    from lava_matmulfree.config import load_model_config

    return load_model_config(args.config or DEFAULT_CONFIG)


def _float_checkpoint(args, command):
    ckpt = _checkpoint_arg(args)
    if ckpt is not None and ckpt.is_file():
        raise ValueError(f"{command} needs the float weights of a Hugging Face folder, not the compiled file {ckpt}")
    return ckpt


def _read_text(path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None


def cmd_eval(args) -> int:
    from lava_matmulfree.evaluation.accuracy import DEFAULT_EVAL_LENGTH, DEFAULT_EVAL_SEQUENCES, evaluate

    ckpt = _float_checkpoint(args, "eval")
    overrides = _parse_overrides(args.overrides)
    text = _read_text(args.text) if args.text is not None else None
    if args.json is not None:
        check_output_file(args.json)
    num, length = args.sequences or DEFAULT_EVAL_SEQUENCES, args.length or DEFAULT_EVAL_LENGTH
    check_tokens(_model_cfg(args, ckpt), num * length, f"--sequences {num} x --length {length}")
    report, _ = evaluate(args.config, args.seed, ckpt, overrides=overrides, num_sequences=num, length=length,
                         text=text, progress=True, calibration=args.calibrate)
    print(report.table())
    if args.json is not None:
        write_text(args.json, report.to_json())
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_compile(args) -> int:
    from lava_matmulfree.evaluation.accuracy import DEFAULT_CALIB_LENGTH, DEFAULT_CALIB_SEQUENCES

    ckpt = _float_checkpoint(args, "compile")
    overrides = _parse_overrides(args.overrides)
    out = check_output_file(args.out)
    kwargs = {"calib_length": args.calib_length, "calibration": args.calibrate}
    if args.calib_text is not None:
        from lava_matmulfree.evaluation.accuracy import DEFAULT_TEXT_CALIB_LENGTH

        length = args.calib_length or DEFAULT_TEXT_CALIB_LENGTH
        tok = _tokenizer(ckpt)
        ids = tok.encode(_read_text(args.calib_text), add_bos=tok.bos_token_id >= 0)
        if len(ids) <= (tok.bos_token_id >= 0):  # nothing but the begin-of-sequence token
            raise ValueError(f"{args.calib_text}: holds no text to calibrate on")
        seqs = [ids[i:i + length] for i in range(0, len(ids), length)]
        kwargs.update(calib_sequences=seqs, calib_source=f"text: {len(seqs)} windows of {length} tokens of "
                                                         f"{Path(args.calib_text).name}")
    else:
        length = args.calib_length or DEFAULT_CALIB_LENGTH
        check_tokens(_model_cfg(args, ckpt), DEFAULT_CALIB_SEQUENCES * length, f"--calib-length {length}")
    m = _load_model(args, "reference", use_compiled=False, overrides=overrides, **kwargs)
    with atomic_outputs(out) as (tmp,):
        m.net.save(tmp)
    print(f"compiled {m.what} (calibrated on {m.net.calibration.source}) -> {out}", file=sys.stderr)
    return 0


def cmd_estimate(args) -> int:
    from lava_matmulfree.config import load_model_config

    load_model_config(args.config)  # a run config or a TOML without [model] is an error, not the 370M defaults
    try:
        from lava_matmulfree.loihi.cost_model import estimate_main
    except ImportError as e:
        raise ValueError(f"the cost model is not available ({e})") from None
    overrides = {}
    for item in args.overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = _estimate_value(value.strip())
    json_path = check_output_file(args.json) if args.json else None
    out = check_output_dir(args.out)
    estimate_main(args.config, out, preset=args.preset, json_path=json_path, **overrides)
    if args.sensitivity:
        from lava_matmulfree.loihi.sensitivity import sensitivity_main

        print()
        sensitivity_main(args.config, out, **overrides)
    return 0


def _estimate_value(text: str):
    """A --set value of the cost model: bool, int, float, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _describe_ports(proc) -> list:
    def fmt(members):
        return ", ".join(f"{v.name}{list(v.shape)}" for v in members) or "-"

    return [f"  in ports:  {fmt(proc.in_ports.members)}", f"  out ports: {fmt(proc.out_ports.members)}",
            f"  vars:      {fmt(proc.vars.members)}"]


def cmd_train(args) -> int:
    from lava_matmulfree.train.options import parse

    parsed = parse(args.train_args, parser_class=_Parser)  # --help and bad options need no torch
    try:
        from lava_matmulfree.train.trainer import main as train_main
    except ImportError as e:
        raise ValueError(str(e)) from None
    return train_main(args.train_args, args=parsed)


def cmd_info(args) -> int:
    from lava_matmulfree.graph.backends import GRAPH_KIND
    from lava_matmulfree.graph.builder import build_graph

    m = _load_model(args, "reference", num_calib=INFO_CALIB_SEQUENCES, calib_length=INFO_CALIB_LENGTH)
    c = m.cfg
    print(f"model: {m.what}")
    print(f"  {c.num_layers} layers, hidden {c.hidden_size}, intermediate {c.intermediate_size}, "
          f"vocabulary {c.vocab_size}")
    print(f"{'backend':<11}{'leaf processes':>16}{'steps/token/layer':>19}{'decode loop depth':>19}")
    graph = None
    for backend in ("sim", "sim-mixers", "sim-fused", "sim-stack"):
        g = build_graph(m.net, GRAPH_KIND[backend], capacity=2)
        print(f"{backend:<11}{g.leaf_process_count():>16}{g.block_hops:>19}{g.loop_depth:>19}")
        if graph is None:
            graph = g
    top = [graph.source, *graph.blocks, graph.final_norm, *graph.head_norm, graph.lm_head, graph.sink]
    print("processes: " + " -> ".join(p.name for p in top) + " (-> embedding: the sampled token)")
    print(f"block 0 ({type(graph.blocks[0]).__name__}):")
    print("\n".join(_describe_ports(graph.blocks[0])))
    try:
        from lava_matmulfree.loihi.mapping import build_mapping
    except ImportError:
        return 0
    mp = build_mapping(c)
    print(f"Loihi 2 mapping (cost model): {mp.cores} cores on {mp.chips} chip(s)")
    return 0


# ----------------------------------------------------------------------------------------- entry point
class _StderrHandler(logging.Handler):
    """Package warnings (e.g. ignored checkpoint tensors) as ``warning: ...`` lines on the current stderr."""

    def emit(self, record):
        print("warning: " + record.getMessage(), file=sys.stderr)


def _show_warnings():
    pkg = logging.getLogger("lava_matmulfree")
    if not any(isinstance(h, _StderrHandler) for h in pkg.handlers):
        h = _StderrHandler(level=logging.WARNING)
        pkg.addHandler(h)


def _fail(message: str) -> NoReturn:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv=None) -> int:
    """Console entry point; returns 0 on success, raises SystemExit(2) after one ``error:`` line otherwise."""
    _show_warnings()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # never die on a character the terminal's encoding lacks
        reconfigure(errors="backslashreplace")
    from lava_matmulfree.graph.runtime import Terminated, termination_signals

    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        with termination_signals():  # SIGTERM / SIGHUP unwind like Ctrl-C: the Lava runtime is always stopped
            if argv[:1] == ["train"]:  # every option belongs to the trainer's own parser (train.py)
                return cmd_train(argparse.Namespace(train_args=argv[1:]))
            args = build_parser().parse_args(argv)
            return args.func(args)
    except _UsageError as e:
        _fail(str(e))
    except (LmfError, ValueError) as e:
        _fail(str(e))
    except MemoryError:
        _fail("out of memory: the request is too large for this machine")
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
    except Terminated as e:
        print(f"stopped by {e.name}", file=sys.stderr)
        raise SystemExit(e.exit_status)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly (and keep the interpreter's final flush quiet)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise SystemExit(0)
    except OSError as e:  # a file the code above did not check itself: still one line naming it
        _fail(f"{e.filename}: {e.strerror}" if e.filename is not None else str(e))


if __name__ == "__main__":
    sys.exit(main())
