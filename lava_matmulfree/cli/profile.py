"""``profile``: the network's activity over a text (docs/graph.md, "Activity counters"): per layer and connection
type the spike density, SynOps and messages per token, counted by the golden model (whose counts the Lava
graphs' counters equal: tests/test_activity.py). Writes PREFIX.json (the format the cost model reads) and
PREFIX.png."""
from __future__ import annotations

import sys
from pathlib import Path

from lava_matmulfree.cli.arguments import _add_model_command, _positive_int
from lava_matmulfree.cli.common import _checkpoint_arg, _inputs, _load_model, _prompt_text, _read_text
from lava_matmulfree.utils.atomic import atomic_outputs, check_output_file, writing

DEFAULT_PROFILE_TOKENS = 256
DEFAULT_PROFILE_OUT = "activity"
PLOT_SIZE_IN = (11.0, 4.2)


def add_parser(sub):
    p = _add_model_command(sub, "profile", cmd_profile,
                           help="measure spikes, SynOps and messages per token per layer (.json + .png)",
                           description="Run the golden fixed-point model over a text and count, per layer and "
                                       "connection, the graded spikes sent (non-zero messages), their bits and the "
                                       "synaptic events; per neuron group, updates and aggregator rounds. Prints a "
                                       "table; writes PREFIX.json (read by `estimate --activity`) and PREFIX.png "
                                       "(density per connection type across layers; SynOps per token by layer "
                                       "part).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", help="measure on this text")
    src.add_argument("--text", metavar="FILE", help="measure on the text of this UTF-8 file")
    p.add_argument("--tokens", type=_positive_int, default=DEFAULT_PROFILE_TOKENS, metavar="N",
                   help=f"measure the first N tokens of the text (default: {DEFAULT_PROFILE_TOKENS}; without "
                        "--prompt or --text, of the shipped corpus's validation split)")
    p.add_argument("--out", default=DEFAULT_PROFILE_OUT, metavar="PREFIX",
                   help=f"output prefix: PREFIX.json and PREFIX.png (default: {DEFAULT_PROFILE_OUT})")
    p.add_argument("--no-plot", action="store_true", help="write PREFIX.json only")


def _corpus_tokens(args, tokenizer, n: int):
    """The first ``n`` tokens of the shipped corpus's validation split (the split the model folder was trained
    with, when it says), and their description."""
    import numpy as np

    from lava_matmulfree.io.corpus import CORPUS_NAME, SplitConfig, load_corpus, split_from_training_json, split_stream

    ckpt = _checkpoint_arg(args)
    split = SplitConfig()
    if ckpt is not None and ckpt.is_dir():
        try:
            split = split_from_training_json(ckpt)[0]
        except (FileNotFoundError, ValueError, KeyError):
            pass  # a folder not trained here: the default split
    _, val = split_stream(load_corpus(tokenizer).tokens, split)
    tokens = np.concatenate(val)[:n]
    return tokens, (f"{CORPUS_NAME} validation split (every {split.val_every}th block of {split.block_tokens} "
                    f"tokens), first {len(tokens)} tokens")


def _text(args) -> tuple[str, str]:
    """The text of --prompt or --text and its name (read before any work: a bad file is a quick error)."""
    if args.prompt is not None:
        return _prompt_text(args), "--prompt"
    return _read_text(args.text), f"file {args.text}"


def _text_tokens(text: str, what: str, tokenizer, n: int):
    if not tokenizer.encode(text):  # a begin-of-sequence token alone measures nothing of the text
        raise ValueError(f"{what} holds no token")
    tokens = tokenizer.encode(text, add_bos=True)[:n]
    return tokens, f"{what}, first {len(tokens)} tokens"


def table(prof: dict) -> str:
    """The per-layer table: spike density, spikes (non-zero graded messages) and SynOps per token by connection
    type (the names of docs/activity.md, section 1)."""
    rows = [f"{'layer':>5}  {'connection':<10} {'inputs':>6} {'density':>8} {'spikes/token':>12} "
            f"{'SynOps/token':>13} {'bits/token':>11}"]
    entries = [(str(layer["layer"]), layer["connections"]) for layer in prof["layers"]]
    entries += [("head", prof["head"]["connections"]), ("mean", prof["connections"])]
    for where, conns in entries:
        for name, c in conns.items():
            rows.append(f"{where:>5}  {name:<10} {c['inputs']:>6d} {c['density']:>8.3f} "
                        f"{c['spikes_per_token']:>12.1f} {c['synops_per_token']:>13.1f} {c['bits_per_token']:>11.1f}")
    return "\n".join(rows)


def _plot(path, prof: dict, by_part: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    layers = [layer["layer"] for layer in prof["layers"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=PLOT_SIZE_IN)
    for name in prof["connections"]:
        ax1.plot(layers, [layer["connections"][name]["density"] for layer in prof["layers"]], marker="o", label=name)
    ax1.set_xlabel("layer")
    ax1.set_ylabel("spike density (non-zero fraction of input messages)")
    ax1.set_ylim(0, 1.02)
    ax1.legend(fontsize="small")
    bottom = np.zeros(len(layers))
    for part, values in by_part.items():
        ax2.bar(layers, values, bottom=bottom, label=part)
        bottom += np.asarray(values)
    ax2.set_xlabel("layer")
    ax2.set_ylabel("SynOps per token")
    ax2.set_ylim(0, 1.3 * max(bottom.max(), 1))  # headroom above the bars for the legend
    ax2.legend(fontsize="small", title="layer part", ncol=3, loc="upper center")
    for ax in (ax1, ax2):
        ax.set_xticks(layers)  # whole layers (matplotlib put ticks at 0.25, 0.5 for a 3-layer model)
    fig.suptitle(title, fontsize="medium")
    try:
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def cmd_profile(args, out=None, err=None) -> int:
    import json

    from lava_matmulfree.model.activity import ActivityRecorder, profile, synops_by_part
    from lava_matmulfree.model.golden_fast import FastGoldenModel

    out, err = out or sys.stdout, err or sys.stderr
    text = None if args.prompt is None and args.text is None else _text(args)  # before any work
    json_path, png_path = Path(f"{args.out}.json"), Path(f"{args.out}.png")
    inputs = _inputs(args)
    for path in (json_path,) if args.no_plot else (json_path, png_path):
        check_output_file(path, "--out", inputs)
    m = _load_model(args, "reference")
    if text is None:
        tokens, source = _corpus_tokens(args, m.tokenizer, args.tokens)
    else:
        tokens, source = _text_tokens(*text, m.tokenizer, args.tokens)
    g = FastGoldenModel(m.net)
    g.activity = ActivityRecorder()
    g.prefill(tokens)  # one sequence from the zero state
    n = len(tokens)
    import lava_matmulfree

    root = str(Path(lava_matmulfree.__file__).resolve().parent.parent) + "/"  # a shipped model: a relative path
    what = m.what.replace(root, "") if args.model is None else f"{args.model} model ({m.what.replace(root, '')})"
    prof = profile(g.activity, n, m.cfg.num_layers, m.net.fp.act_bits, what, source)
    print(table(prof), file=out)
    paths = [json_path] if args.no_plot else [json_path, png_path]
    with atomic_outputs(*paths) as tmps:
        with writing(tmps[0]):
            tmps[0].write_text(json.dumps(prof, indent=1) + "\n", encoding="utf-8")
        if not args.no_plot:
            with writing(tmps[1]):
                _plot(tmps[1], prof, synops_by_part(g.activity, n, m.cfg.num_layers),
                      f"{what}: activity over {n} tokens")
    print(f"measured {n} tokens of {source} on {what}; wrote {', '.join(map(str, paths))}", file=err)
    from lava_matmulfree.loihi.activity import MIN_PROFILE_TOKENS

    if n < MIN_PROFILE_TOKENS:
        print(f"note: {n} tokens are fewer than the {MIN_PROFILE_TOKENS} `estimate --activity` takes "
              f"(docs/activity.md, section 4)", file=err)
    return 0
