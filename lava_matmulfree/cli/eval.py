"""``eval``: the accuracy of the golden fixed-point model against the float model (docs/fixed_point.md)."""
from __future__ import annotations

import sys

from lava_matmulfree.cli.arguments import _add_calibrate_arg, _add_model_command, _add_overrides_arg, _positive_int
from lava_matmulfree.cli.common import _check_vocab, _float_checkpoint, _inputs, _model_cfg, _read_text, _tokenizer
from lava_matmulfree.config import parse_fixed_point_overrides
from lava_matmulfree.io.packaged import COMPILED_FILE
from lava_matmulfree.utils.atomic import check_output_file, write_text
from lava_matmulfree.utils.limits import check_tokens

MIN_TEXT_TOKENS = 2  # a perplexity predicts each token from the ones before it


def add_parser(sub):
    e = _add_model_command(sub, "eval", cmd_eval, float_weights=True,
                           help="accuracy of the fixed-point model against the float model",
                           description="Calibrate, compile and compare the golden fixed-point model with the float "
                                       "model: per-layer relative errors, logits, top-1 agreement, KL, clipping and "
                                       "overflows; with --text also the perplexity of both models on that text.")
    e.add_argument("--text", metavar="FILE", help="a text file for perplexity (tokenised by the checkpoint's "
                                                  "tokenizer, bytes for random weights)")
    _add_overrides_arg(e, "override a fixed-point knob (a [fixed_point] field such as act_bits=6); repeatable")
    e.add_argument("--sequences", type=_positive_int, default=None, metavar="N",
                   help="sample sequences: windows of held-out text for a checkpoint, random token ids for random "
                        "weights")
    e.add_argument("--length", type=_positive_int, default=None, metavar="N", help="tokens per sample sequence")
    e.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    _add_calibrate_arg(e, "calibration sample: text = the shipped corpus through the checkpoint's tokenizer (default "
                          "for a checkpoint), random = random token ids (default for random weights)")


def cmd_eval(args) -> int:
    from lava_matmulfree.evaluation.accuracy import DEFAULT_EVAL_LENGTH, DEFAULT_EVAL_SEQUENCES, evaluate

    ckpt = _float_checkpoint(args, "eval")
    overrides = parse_fixed_point_overrides(args.overrides)
    text = _read_text(args.text) if args.text is not None else None
    if text is not None:  # a text too short for a perplexity is found before calibrating, naming the file
        tok = _tokenizer(ckpt)
        if len(tok.encode(text, add_bos=tok.bos_token_id >= 0)) < MIN_TEXT_TOKENS:
            raise ValueError(f"--text {args.text}: holds no text to measure a perplexity on (it needs at least "
                             f"{MIN_TEXT_TOKENS} tokens)")
    if args.json is not None:
        check_output_file(args.json, "--json", _inputs(args, compiled=False))  # nor --text, nor a checkpoint file
    num, length = args.sequences or DEFAULT_EVAL_SEQUENCES, args.length or DEFAULT_EVAL_LENGTH
    cfg = _model_cfg(args, ckpt)
    check_tokens(cfg, num * length, f"--sequences {num} x --length {length}")
    held_out = None
    if ckpt is not None:
        tok = _tokenizer(ckpt)
        _check_vocab(tok, cfg)  # before calibrating on text through it
        # the held-out windows it measures on, taken before calibrating: a --length they cannot hold is refused at once
        from lava_matmulfree.model.calibration import text_calibration_sequences

        held_out = text_calibration_sequences(tok, cfg.vocab_size, num, length, held_out=True)
        compiled = ckpt / COMPILED_FILE
        if ckpt.is_dir() and compiled.is_file():  # what generate runs is not what eval measures: say so (a broken
            # file there is not eval's business: it never reads it)
            print(f"note: eval calibrates and compiles {ckpt}'s weights itself; {compiled}, the network generate "
                  "runs, is not the one measured here", file=sys.stderr)
    report, _ = evaluate(args.config, args.seed, ckpt, overrides=overrides, num_sequences=num, length=length,
                         text=text, progress=True, calibration=args.calibrate, sequences=held_out)
    print(report.table())
    if args.json is not None:
        write_text(args.json, report.to_json())
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
