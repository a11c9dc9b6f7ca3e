"""What the subcommands share: the model of ``--checkpoint`` / ``--model`` / ``--config``, the files a command
reads, and the generation run of ``generate`` and ``probe`` (the argument parser and types: arguments.py).

Light to import (no numpy, safetensors or lava at module level): ``lava-matmulfree --help`` and a user error
cost no heavy import. Names with a leading underscore are private to the ``cli`` package.
"""
from __future__ import annotations

import sys
from pathlib import Path

from lava_matmulfree.config import BACKEND_NAMES, FLOAT_LAVA_BACKENDS, LAVA_BACKEND_NAMES
from lava_matmulfree.errors import LmfError
from lava_matmulfree.io.packaged import COMPILED_FILE, DEEP_MODEL_DIR, DEMO_MODEL_DIR, is_installed, packaged_model

DEFAULT_CONFIG = "tiny"
SAMPLER_SEED_HELP = "seed of the sampler and of the random weights"  # --seed of the commands that sample
DEFAULT_FLOAT_DTYPE = "float32"
# Terminal control characters (C0 except tab and newline, DEL, C1) that a random or badly trained model may
# emit are shown as U+FFFD rather than sent to the terminal.
KEEP_CONTROLS = "\t\n"
CONTROL_CHARS = [c for c in range(0x20) if chr(c) not in KEEP_CONTROLS] + list(range(0x7F, 0xA0))
PRINTABLE = str.maketrans({c: "\ufffd" for c in CONTROL_CHARS})

BACKEND_CHOICES = BACKEND_NAMES
LAVA_BACKENDS = LAVA_BACKEND_NAMES
DEFAULT_BACKEND = "sim-fused"
#: backends whose models read the ternary weights only through the packed kernel (QuantisedNetwork.pack_weights)
PACKED_WEIGHT_BACKENDS = ("reference", "sim-fused", "sim-stack")
COMPILED_SUFFIX = ".safetensors"
FLOAT_BYTES_PER_PARAM = 12  # the float backend: float32 weights, the float model's own copy, one float64 tensor
COMPILED_LOAD_FACTOR = 3  # loading a compiled network: its tensors, their checks and the packed weights


# ----------------------------------------------------------------------------------------- models
class _Model:
    """What a subcommand runs: the compiled network and/or the float model, the tokenizer, a description."""

    def __init__(self, cfg, net, float_model, tokenizer, what):
        self.cfg, self.net, self.float_model, self.tokenizer, self.what = cfg, net, float_model, tokenizer, what


def _packaged_model(name: str) -> Path:
    # this module's DEMO_MODEL_DIR / DEEP_MODEL_DIR, read at call time: the tests point them at empty folders
    here = {"demo": DEMO_MODEL_DIR, "deep": DEEP_MODEL_DIR}
    return packaged_model(name, here.get(name))


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
    if args.config is None and is_installed(DEMO_MODEL_DIR):
        return DEMO_MODEL_DIR
    return None


def _float_checkpoint(args, command):
    """The checkpoint of a command that needs float weights (eval, compile): a folder or None, not a compiled file."""
    ckpt = _checkpoint_arg(args)
    if ckpt is not None and ckpt.is_file():
        raise ValueError(f"{command} needs the float weights of a Hugging Face folder, not the compiled file {ckpt}")
    return ckpt


def _compiled_file(ckpt: Path | None):
    """The compiled network a checkpoint argument names (a .safetensors file, or compiled.safetensors in
    the folder), else None."""
    if ckpt is None:
        return None
    if ckpt.is_file():
        if ckpt.suffix != COMPILED_SUFFIX:
            raise ValueError(f"{ckpt}: --checkpoint takes a Hugging Face folder or a compiled {COMPILED_SUFFIX} file")
        return ckpt
    from lava_matmulfree.io.checkpoint import present

    inside = ckpt / COMPILED_FILE
    return inside if present(inside) else None  # a folder or a broken link there is an error, not "none"


def _compiled_from(net, compiled: Path, ckpt: Path) -> bool:
    """Whether a compiled network found inside a checkpoint folder was compiled from that folder's weights
    (its fingerprint); if not, say so: the caller recompiles from the weights."""
    from lava_matmulfree.io.checkpoint import compiled_mismatch

    why = compiled_mismatch(net.fingerprint, ckpt) if ckpt.is_dir() else None  # a compiled file named directly
    if why is None:
        return True
    print(f"warning: {compiled} {why}; ignoring it and compiling the checkpoint "
          f"(`lava-matmulfree compile --checkpoint {ckpt} --out {compiled}` makes a matching one)", file=sys.stderr)
    return False


def _tokenizer(ckpt: Path | None):
    """The tokenizer of a checkpoint folder; of a compiled file, the one it carries (`compile` writes the
    checkpoint's into it), else a tokenizer.json beside it, else bytes."""
    from lava_matmulfree.io.tokenizer import ByteTokenizer, compiled_file_tokenizer, load_tokenizer

    if ckpt is None:
        return ByteTokenizer()
    tok = (compiled_file_tokenizer(ckpt) or load_tokenizer(ckpt.parent)) if ckpt.is_file() else load_tokenizer(ckpt)
    if isinstance(tok, ByteTokenizer) and ckpt.is_dir():  # a compiled file of random weights carries none, rightly
        tok.stands_in_for = ckpt  # _check_vocab says so where the model's vocabulary is not the bytes'
    return tok


def _check_vocab(tok, cfg):
    """``tok``, which must not name tokens beyond the model's vocabulary; a byte tokenizer standing in for a
    checkpoint's missing one, with another vocabulary, is named once (the text in and out would be meaningless)."""
    if tok.vocab_size > cfg.vocab_size:
        which = getattr(tok, "path", None) or "the byte tokenizer"
        raise ValueError(f"{which}: the tokenizer has {tok.vocab_size} tokens but the model only "
                         f"{cfg.vocab_size} (vocab_size)")
    ckpt = getattr(tok, "stands_in_for", None)
    if ckpt is not None and tok.vocab_size != cfg.vocab_size:
        print(f"warning: {ckpt}: no tokenizer.json; the byte tokenizer stands in, whose {tok.vocab_size} ids are not "
              f"this model's vocabulary of {cfg.vocab_size}: text in and out (and text calibration) will be "
              "meaningless; put the model's tokenizer.json beside its weights", file=sys.stderr)
        tok.stands_in_for = None
    return tok


def _float_model(args, ckpt: Path | None, backend: str = "float", dtype=None) -> _Model:
    """The float model of --checkpoint (its float weights) or of --config / --seed (random weights); ``dtype``
    None: --float-dtype."""
    from lava_matmulfree.io.checkpoint import WEIGHTS_FILE, has_float_weights

    if ckpt is not None and not has_float_weights(ckpt):
        what = "is a compiled (fixed-point) network" if ckpt.is_file() else f"holds no float weights ({WEIGHTS_FILE})"
        raise ValueError(f"{ckpt} {what}: the {backend} backend runs the float model, from the float weights of a "
                         "Hugging Face folder or a --config's random weights; use --backend reference, sim or "
                         "sim-fused for a compiled network")
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
    tok = _check_vocab(_tokenizer(ckpt), cfg)
    dtype = dtype or np.dtype(getattr(args, "float_dtype", None) or DEFAULT_FLOAT_DTYPE).type
    return _Model(cfg, None, FloatModel(cfg, params, dtype=dtype), tok, what)


def _load_model(args, backend: str, use_compiled: bool = True, **build_kwargs) -> _Model:
    """The model of --checkpoint / --config / --seed for ``backend``: a float model for ``float``, else the
    compiled network (loaded, or calibrated and compiled with a progress bar)."""
    ckpt = _checkpoint_arg(args)
    compiled = _compiled_file(ckpt) if use_compiled else None
    if backend == "float":
        _model_cfg(args, ckpt, FLOAT_BYTES_PER_PARAM)
        return _float_model(args, ckpt)
    if compiled is not None:
        from lava_matmulfree.model.quantise import QuantisedNetwork
        from lava_matmulfree.utils.limits import require_memory

        require_memory(compiled.stat().st_size * COMPILED_LOAD_FACTOR, f"{compiled}: loading this compiled network")
        net = QuantisedNetwork.load(compiled)  # checked: types, shapes and values no compiler writes
        if backend in PACKED_WEIGHT_BACKENDS:
            net.pack_weights()  # no float model shares the int8 arrays here: the weights then live once, packed
        if _compiled_from(net, compiled, ckpt):
            tok = _check_vocab(_tokenizer(ckpt), net.cfg)
            if backend not in FLOAT_LAVA_BACKENDS:
                return _Model(net.cfg, net, None, tok, f"compiled network {compiled}")
            # the floating_pt models run the float weights next to it (float64, as a calibrated build holds them)
            import numpy as np

            _model_cfg(args, ckpt, FLOAT_BYTES_PER_PARAM)
            fm = _float_model(args, ckpt, backend, np.float64).float_model
            return _Model(net.cfg, net, fm, tok, f"compiled network {compiled} and the float weights of {ckpt}")
    from lava_matmulfree.evaluation.accuracy import build_evaluation

    cfg = _model_cfg(args, ckpt)  # a model too large for this machine is refused before any allocation
    tok = _tokenizer(ckpt)  # before calibrating: a bad tokenizer is a quick error
    if cfg is not None:
        _check_vocab(tok, cfg)  # one larger than the model's vocabulary too (calibration would trip over its ids)
    setup = build_evaluation(args.config, args.seed, ckpt, progress=True, **build_kwargs)
    _check_vocab(tok, setup.cfg)
    return _Model(setup.cfg, setup.net, setup.float_model, tok, setup.source)


def _model_cfg(args, ckpt, per_param: int | None = None):
    """The ModelConfig of --checkpoint / --config without loading any weights, after checking that a model of
    its size can be built here (``per_param`` bytes per parameter; default: what calibrating and compiling it
    take): else a SizeError naming the file and the key."""
    from lava_matmulfree.io.params import BUILD_BYTES_PER_PARAM, check_model_memory

    if ckpt is not None and ckpt.is_file():  # a compiled network: its own file says how large it is
        return None
    if ckpt is not None:
        from lava_matmulfree.io.checkpoint import CONFIG_FILE, read_config_json

        cfg, source, hf = read_config_json(ckpt), str(ckpt / CONFIG_FILE), True
    else:
        from lava_matmulfree.config import load_config, resolve_config_path

        name = args.config or DEFAULT_CONFIG
        cfg, source, hf = load_config(name, require="model").model, str(resolve_config_path(name)), False
    check_model_memory(cfg, source, per_param=per_param or BUILD_BYTES_PER_PARAM, hf=hf)
    return cfg


def _inputs(args, compiled: bool = True) -> list:
    """(option, value, file) of each file the command of ``args`` reads, which no output may be (check_output_file):
    the checkpoint's (a folder's config, weights, tokenizer, training record, if ``compiled`` compiled file; a compiled
    file and the tokenizer beside it), the --config / --run-config TOML, --calib-text and --text."""
    from lava_matmulfree.config import CONFIG_DIR
    from lava_matmulfree.io import checkpoint as ck, corpus, tokenizer as tk

    named = [(o, getattr(args, o[2:].replace("-", "_"), None)) for o in ("--config", "--run-config", "--calib-text",
                                                                          "--text")]
    found = [(o, v, f) for o, v in named if v is not None
             for f in (Path(v),) + ((CONFIG_DIR / f"{v}.toml",) if o.endswith("config") else ())]
    ckpt = _checkpoint_arg(args) if hasattr(args, "checkpoint") else None
    if ckpt is not None:
        where = ("--checkpoint", args.checkpoint) if args.checkpoint is not None else ("--model", args.model or "demo")
        names = [tk.TOKENIZER_FILE, *tk.TOKENIZER_CONFIG_FILES] + ([] if ckpt.is_file() else [
            ck.CONFIG_FILE, ck.WEIGHTS_FILE, ck.INDEX_FILE, corpus.TRAINING_FILE] + [COMPILED_FILE] * compiled)
        folder = ckpt if ckpt.is_dir() else ckpt.parent
        files = [f for f in folder.iterdir() if ck.SHARD_PATTERN.match(f.name)] if ckpt.is_dir() else [ckpt]
        found += [(*where, f) for f in files + [folder / n for n in names]]
    return found


def _read_text(path) -> str:
    """A text file of --text (eval, profile, compile --calibrate-text): UTF-8, or an error naming the first byte
    that is not (bytes that are not text were replaced without a word: a perplexity of 2.5e6 on U+FFFD)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); the "
                         "tokenizers read UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as a text-mode read gives


# ----------------------------------------------------------------------------------------- generation
def _run_choice(args, default_backend: str = DEFAULT_BACKEND):
    """(backend, RunConfig) from --backend or --run-config, keeping no logits whatever the run config says (the
    commands show none, and a Lava graph's are read back one element per message after the last token: 38 s of a
    0.6 s generation at a vocabulary of 32000); loihi2 without lava-loihi fails here, early."""
    from lava_matmulfree.config import RunConfig, load_run_config, replace

    if args.run_config is not None:
        run = load_run_config(args.run_config)
    else:
        run = RunConfig(backend=args.backend or default_backend)
    threads = getattr(args, "threads", None)
    if threads is not None:
        run = replace(run, threads=threads)
    run = replace(_with_timeout(run, args), record_logits=False)
    if run.threads != 1:
        from lava_matmulfree.model.thread_team import check_threads

        try:
            check_threads(run.threads)
        except ValueError as e:
            where = "--threads" if threads is not None else f"--run-config {args.run_config}"
            raise ValueError(f"{where}: {e}") from None
    if run.backend == "loihi2":
        from lava_matmulfree.graph.backends import lava_run_config

        lava_run_config("loihi2")
    return run.backend, run


def _with_timeout(run, args):
    """``run`` with --timeout's limit, where it was given."""
    from lava_matmulfree.config import replace

    return run if getattr(args, "timeout", None) is None else replace(run, timeout_s=args.timeout)


def _refuse_lava_run(args, backend: str, run, new_tokens: int, prompt_tokens: int, probes: int = 0,
                     stream: bool = True, reference: bool = True) -> None:
    """Before the model is built: a Lava run this machine cannot hold (processes, memory) is refused, naming a
    backend that fits (graph/plan.py; generate() checks again, and warns about a slow run, before the runtime)."""
    if backend not in LAVA_BACKENDS or backend == "loihi2":
        return
    cfg = _model_cfg(args, _checkpoint_arg(args))
    if cfg is None:  # a compiled file: generate() checks it once loaded
        return
    from lava_matmulfree.graph.plan import check_run

    check_run(backend, cfg, prompt_tokens, new_tokens, run.record_logits, probes, stream, run.timeout_s, warn=False,
              reference=reference)


def count(n: int, noun: str) -> str:
    """'1 probe', '3 probes'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _lava_stats(gen) -> str:
    if gen.steps is None:
        return ""
    fused = " (fused blocks: a token crosses every layer in the step it arrives)" if gen.steps_per_layer == 0 else ""
    return (f"; {gen.steps} time steps, {gen.steps_per_layer:g} step(s) per token per layer{fused}, "
            f"{gen.leaf_processes} leaf processes")


def not_utf8(text: str) -> str | None:
    """Where ``text`` is not UTF-8 ("byte e9 at character 3"), else None: bytes of a command line or of stdin that
    are not UTF-8 arrive as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"byte {text[e.start:e.end].encode('utf-8', 'surrogateescape')[:1].hex()} at character {e.start}"
    return None


def _prompt_text(args) -> str:
    """--prompt, which must be text."""
    where = not_utf8(args.prompt)
    if where:
        raise ValueError(f"--prompt is not UTF-8 text ({where})")
    return args.prompt


def _prompt_ids(args, m) -> list:
    prompt = m.tokenizer.encode(_prompt_text(args), add_bos=True)
    if not prompt:
        raise ValueError("the prompt is empty and the tokenizer has no begin-of-sequence token")
    return prompt


def _run_generation(args, backend, run, m, probes=(), on_token=None, on_prompt=None, prompt=None):
    """(prompt ids, Generation) of --prompt (``prompt``: its ids, where the caller has them already)."""
    from lava_matmulfree.graph.backends import generate

    prompt = _prompt_ids(args, m) if prompt is None else prompt
    return prompt, generate(backend, m.net, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed,
                            probes=probes, run=run, float_model=m.float_model, on_token=on_token,
                            on_prompt=on_prompt)
