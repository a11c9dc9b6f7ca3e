"""``probe``: generate like ``generate`` on a fixed-point backend and record internal variables per token
(docs/graph.md, 'Probes') into PREFIX.npz and a plot PREFIX.png."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from lava_matmulfree.cli.arguments import _add_generation_args, _add_model_command
from lava_matmulfree.cli.common import (DEFAULT_BACKEND, LAVA_BACKENDS, PRINTABLE, SAMPLER_SEED_HELP, _checkpoint_arg,
                                        _lava_stats, _inputs, _load_model, _model_cfg, _prompt_text, _refuse_lava_run,
                                        _run_choice, _run_generation, count)
from lava_matmulfree.utils.atomic import atomic_outputs, check_output_file, writing

PROBE_BACKENDS = ("reference",) + LAVA_BACKENDS
FLOAT_BACKENDS = ("float", "sim-float", "sim-float-decomposed")  # their probes are real values already
DEFAULT_PROBE_NEW_TOKENS = 8
DEFAULT_PROBE_OUT = "probe"
PLOT_TITLE_CHARS = 110  # the probe plot's title is wrapped at this width
PLOT_CHANNELS = 64  # channels per probe shown in the PNG
PLOT_WIDTH_IN = 10.0
PLOT_ROW_HEIGHT_IN = 2.2


def add_parser(sub):
    pr = _add_model_command(sub, "probe", cmd_probe, SAMPLER_SEED_HELP,
                            help="record internal variables per token (.npz + .png)",
                            description="Generate like `generate` on a fixed-point backend and record variables "
                                        "per token: PREFIX.npz holds one array [tokens, ...] per probe plus `tokens` "
                                        "(prompt and new ids) and `token_index`; PREFIX.png shows the first "
                                        f"{PLOT_CHANNELS} channels of each probe over the tokens.")
    _add_generation_args(pr, PROBE_BACKENDS, DEFAULT_BACKEND, max_new_tokens=DEFAULT_PROBE_NEW_TOKENS)
    pr.add_argument("--vars", "--probes", dest="vars", metavar="NAMES",   # --probes: the Python API's word
                    help="comma-separated probes (docs/graph.md, 'Probes'): l<layer>.<x|r|h|y|x_out|"
                         "attn_sum_sq|...|attn_inv_rms|...>, head.<x|sum_sq|inv_rms|spikes|logits>, embedding.x_out "
                         "(default: every layer's h)")
    pr.add_argument("--out", default=DEFAULT_PROBE_OUT, metavar="PREFIX",
                    help=f"output prefix: PREFIX.npz and PREFIX.png (default: {DEFAULT_PROBE_OUT})")


def _probe_names(text, num_layers: int, backend: str) -> list:
    """--vars's names, checked for ``backend``'s graph before any run (a stack keeps fewer)."""
    from lava_matmulfree.graph.builder import GRAPH_KIND, check_probe_names

    if text is None:
        return [f"l{l}.h" for l in range(num_layers)]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--vars names no probe")
    try:
        check_probe_names(names, num_layers, stack=GRAPH_KIND.get(backend) == "stack")
    except ValueError as e:
        raise ValueError(f"--vars: {e}") from None
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
    _prompt_text(args)  # before any work
    backend, run = _run_choice(args)
    if backend not in PROBE_BACKENDS:
        raise ValueError(f"probes are recorded on {', '.join(PROBE_BACKENDS)}, not on {backend}")
    if args.max_new_tokens < 1:
        raise ValueError("probe needs --max-new-tokens >= 1")
    if str(args.out).endswith(("/", os.sep)) or Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: is a folder; --out takes a prefix of file names (PREFIX.npz and "
                         "PREFIX.png), e.g. --out out/probe")
    npz, png = Path(f"{args.out}.npz"), Path(f"{args.out}.png")
    inputs = _inputs(args)
    for path in (npz, png):  # a bad output path (or one the run reads) is found before the run, not after it
        check_output_file(path, "--out", inputs)
    probes = len(args.vars.split(",")) if args.vars else None
    cfg = _model_cfg(args, _checkpoint_arg(args))
    if cfg is not None:
        _refuse_lava_run(args, backend, run, args.max_new_tokens, len(args.prompt.encode("utf-8")) + 1,
                         probes if probes is not None else cfg.num_layers, stream=False)
    m = _load_model(args, backend)
    names = _probe_names(args.vars, m.cfg.num_layers, backend)
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
    # the archive is built in memory, then written: a full disk is then one error, not also a ZipFile left
    # half-open that complains when collected
    archive = io.BytesIO()
    np.savez(archive, tokens=np.asarray(tokens), token_index=np.arange(n), prompt_length=np.asarray(len(prompt)),
             **{name: np.asarray(gen.probes[name]) for name in names},
             **{f"{name}.real": np.asarray(real[name]) for name in names}, **extra)
    with atomic_outputs(npz, png) as (npz_tmp, png_tmp):  # both files or neither
        with writing(npz_tmp):
            npz_tmp.write_bytes(archive.getbuffer())
        del archive
        with writing(png_tmp):
            _plot_probes(png_tmp, {name: real[name] for name in names}, len(prompt), title)
    print(tokens and m.tokenizer.decode(tokens).translate(PRINTABLE))
    print(f"backend {backend}: {count(len(names), 'probe')} over {n} tokens in {gen.seconds:.3f} s{_lava_stats(gen)}; "
          f"wrote {npz} and {png}", file=err)
    return 0
