"""The ``lava-matmulfree`` command line.

    lava-matmulfree generate [--checkpoint FOLDER | --config NAME] [--prompt TEXT] [--max-new-tokens N]
                             [--temperature T] [--top-k K] [--seed S] [--backend float]

The generated text streams to stdout (prompt first); the timing line goes to stderr so that stdout holds
only text. Every user error (:class:`LmfError`, bad argument values) prints one ``error: ...`` line to
stderr and exits with status 2, without a traceback. Heavy modules (numpy, safetensors, lava) are imported
only by the subcommand that needs them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from .errors import LmfError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention

DEFAULT_CONFIG = "tiny"
DEFAULT_PROMPT = "The neuromorphic chip"
DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_SEED = 0
DEFAULT_FLOAT_DTYPE = "float32"
FLOAT_DTYPES = ("float32", "float64")
# Terminal control characters (C0 except tab and newline, DEL, C1) that a random or badly trained model may
# emit are shown as U+FFFD rather than sent to the terminal.
KEEP_CONTROLS = "\t\n"
CONTROL_CHARS = [c for c in range(0x20) if chr(c) not in KEEP_CONTROLS] + list(range(0x7F, 0xA0))
PRINTABLE = str.maketrans({c: "\ufffd" for c in CONTROL_CHARS})


# ----------------------------------------------------------------------------------------- backends
class FloatBackend:
    """The float reference model (float_model.FloatModel) with its recurrent state, as the sampling loop wants it."""

    name = "float"

    def __init__(self, cfg, params, args):
        import numpy as np

        from .float_model import FloatModel

        self.model = FloatModel(cfg, params, dtype=np.dtype(args.float_dtype).type)
        self.state = None

    def prefill(self, tokens) -> "np.ndarray":
        logits, self.state = self.model.prefill(tokens, self.state)
        return logits[-1]

    def step(self, token: int):
        logits, self.state = self.model.step(token, self.state)
        return logits


# backend name -> factory(cfg, params, args) returning an object with prefill(tokens) and step(token)
BACKENDS = {"float": FloatBackend}


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


def _non_negative_float(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


_non_negative_int.__name__ = "non-negative integer"  # argparse names the type in its messages
_non_negative_float.__name__ = "non-negative number"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lava-matmulfree",
                description="A MatMul-free language model (HGRN-Bit / MMfreeLM) as a Lava process graph for Loihi 2.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    g = sub.add_parser("generate", help="generate text from a prompt",
                       description="Generate text. Without --checkpoint, a seeded random model of --config is used.")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", metavar="FOLDER",
                     help="Hugging Face HGRN-Bit folder (config.json, model.safetensors, tokenizer.json if any)")
    src.add_argument("--config", metavar="NAME_OR_TOML", default=None,
                     help=f"model config for a random model when no checkpoint is given (default: {DEFAULT_CONFIG})")
    g.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    g.add_argument("--max-new-tokens", type=_non_negative_int, default=DEFAULT_MAX_NEW_TOKENS, metavar="N",
                   help=f"tokens to generate (default: {DEFAULT_MAX_NEW_TOKENS})")
    g.add_argument("--temperature", type=_non_negative_float, default=DEFAULT_TEMPERATURE, metavar="T",
                   help=f"sampling temperature, 0 = greedy (default: {DEFAULT_TEMPERATURE})")
    g.add_argument("--top-k", type=_non_negative_int, default=DEFAULT_TOP_K, metavar="K",
                   help=f"sample among the K most likely tokens, 0 = all (default: {DEFAULT_TOP_K})")
    g.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of the sampler and of the random model (default: {DEFAULT_SEED})")
    g.add_argument("--backend", choices=sorted(BACKENDS), default="float", help="backend (default: float)")
    g.add_argument("--float-dtype", choices=FLOAT_DTYPES, default=DEFAULT_FLOAT_DTYPE,
                   help=f"arithmetic of the float backend (default: {DEFAULT_FLOAT_DTYPE})")
    g.set_defaults(func=cmd_generate)
    return p


# ----------------------------------------------------------------------------------------- commands
def _model_source(args):
    """(config, params, tokenizer, description) from --checkpoint or a random model of --config."""
    from .tokenizer import ByteTokenizer, load_tokenizer

    if args.checkpoint is not None:
        from .checkpoint import load_checkpoint

        cfg, params = load_checkpoint(args.checkpoint)
        return cfg, params, load_tokenizer(args.checkpoint), f"checkpoint {args.checkpoint}"
    from .config import load_config
    from .params import random_params

    cfg = load_config(args.config or DEFAULT_CONFIG).model
    return cfg, random_params(cfg, seed=args.seed), ByteTokenizer(), f"random weights of config {cfg.name!r} (seed {args.seed})"


def cmd_generate(args, out=None, err=None) -> int:
    from .sampling import Sampler, generate

    out = out or sys.stdout
    err = err or sys.stderr
    cfg, params, tok, what = _model_source(args)
    if tok.vocab_size > cfg.vocab_size:
        raise ValueError(f"the tokenizer has {tok.vocab_size} tokens but the model only {cfg.vocab_size}")
    backend = BACKENDS[args.backend](cfg, params, args)
    del params
    prompt = tok.encode(args.prompt, add_bos=True)
    if not prompt:
        raise ValueError("the prompt is empty and the tokenizer has no begin-of-sequence token")
    sampler = Sampler(temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    stream = tok.stream_decoder()
    eos = cfg.eos_token_id if cfg.eos_token_id >= 0 else tok.eos_token_id  # the model's config.json first

    def on_token(t: int):
        text = stream.push(t)
        if text:
            out.write(text.translate(PRINTABLE))
            out.flush()

    print(f"[{what}, backend {args.backend}]", file=err)
    out.write(args.prompt.translate(PRINTABLE))
    out.flush()
    t0 = time.perf_counter()
    first = []
    timed_prefill = backend.prefill

    def prefill(tokens):
        logits = timed_prefill(tokens)
        first.append(time.perf_counter())
        return logits

    new = generate(backend.step, prefill, prompt, args.max_new_tokens, sampler, eos_token_id=eos, on_token=on_token)
    t1 = time.perf_counter()
    out.write(stream.flush().translate(PRINTABLE) + "\n")
    out.flush()
    t_prefill = (first[0] if first else t1) - t0
    t_decode = t1 - t0 - t_prefill
    # the first new token comes from the prefill logits; the others each cost one step
    steps = max(len(new) - 1, 0)
    rate = f"{steps / t_decode:.1f} tokens/s" if steps and t_decode > 0 else "n/a tokens/s"
    print(f"{len(prompt)} prompt tokens in {t_prefill:.3f} s, {len(new)} new tokens, decode {rate}", file=err)
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


def _fail(message: str) -> "NoReturn":
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv=None) -> int:
    """Console entry point; returns 0 on success, raises SystemExit(2) after one ``error:`` line otherwise."""
    _show_warnings()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # never die on a character the terminal's encoding lacks
        reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except _UsageError as e:
        _fail(str(e))
    except (LmfError, ValueError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly (and keep the interpreter's final flush quiet)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
