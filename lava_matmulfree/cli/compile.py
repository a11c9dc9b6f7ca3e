"""``compile``: calibrate a model and write its fixed-point network to one .safetensors file, which
``--checkpoint`` then loads without recalibrating (docs/fixed_point.md)."""
from __future__ import annotations

import sys
from pathlib import Path

from lava_matmulfree.cli.arguments import _add_calibrate_arg, _add_model_command, _add_overrides_arg, _positive_int
from lava_matmulfree.cli.common import (COMPILED_SUFFIX, _float_checkpoint, _inputs, _load_model, _model_cfg,
                                        _read_text, _tokenizer)
from lava_matmulfree.config import parse_fixed_point_overrides
from lava_matmulfree.utils.atomic import atomic_outputs, check_output_file
from lava_matmulfree.utils.limits import check_tokens


def add_parser(sub):
    c = _add_model_command(sub, "compile", cmd_compile, float_weights=True,
                           help="calibrate and compile a model into one .safetensors file",
                           description="Calibrate the float model (a checkpoint on real text: the shipped corpus "
                                       "through its tokenizer; random weights on random token ids; or the tokens of "
                                       "--calib-text cut into sequences of --calib-length) and write the compiled "
                                       "fixed-point network, which --checkpoint then loads without recalibrating.")
    c.add_argument("--out", required=True, metavar="FILE", help=f"the compiled network ({COMPILED_SUFFIX})")
    c.add_argument("--calib-text", metavar="FILE", help="calibrate on the tokens of this text file")
    c.add_argument("--calib-length", type=_positive_int, default=None, metavar="N",
                   help="tokens per calibration sequence")
    _add_calibrate_arg(c, "without --calib-text: text (default for a checkpoint) or random token ids")
    _add_overrides_arg(c, "override a fixed-point knob; repeatable")


def _text_windows(ckpt, path, length: int) -> list:
    """The tokens of the text file ``path`` (the checkpoint's tokenizer) cut into sequences of ``length``."""
    tok = _tokenizer(ckpt)
    ids = tok.encode(_read_text(path), add_bos=tok.bos_token_id >= 0)
    if len(ids) <= (tok.bos_token_id >= 0):  # nothing but the begin-of-sequence token
        raise ValueError(f"{path}: holds no text to calibrate on")
    return [ids[i:i + length] for i in range(0, len(ids), length)]


def cmd_compile(args) -> int:
    from lava_matmulfree.evaluation.accuracy import DEFAULT_CALIB_LENGTH, DEFAULT_CALIB_SEQUENCES

    ckpt = _float_checkpoint(args, "compile")
    overrides = parse_fixed_point_overrides(args.overrides)
    out = check_output_file(args.out, "--out", _inputs(args, compiled=False))  # not the checkpoint's own files
    cfg = _model_cfg(args, ckpt)  # a model too large for this machine: refused before any work
    kwargs = {"calib_length": args.calib_length, "calibration": args.calibrate}
    if args.calib_text is not None:
        from lava_matmulfree.evaluation.accuracy import DEFAULT_TEXT_CALIB_LENGTH

        length = args.calib_length or DEFAULT_TEXT_CALIB_LENGTH
        seqs = _text_windows(ckpt, args.calib_text, length)
        kwargs.update(calib_sequences=seqs, calib_source=f"text: {len(seqs)} windows of {length} tokens of "
                                                         f"{Path(args.calib_text).name}")
    else:
        length = args.calib_length or DEFAULT_CALIB_LENGTH
        check_tokens(cfg, DEFAULT_CALIB_SEQUENCES * length, f"--calib-length {length}")
    m = _load_model(args, "reference", use_compiled=False, overrides=overrides, **kwargs)
    from lava_matmulfree.io.tokenizer import TOKENIZER_META_KEY, tokenizer_record

    record = tokenizer_record(m.tokenizer)  # the file alone then encodes prompts as the checkpoint does
    with atomic_outputs(out) as (tmp,):
        m.net.save(tmp, None if record is None else {TOKENIZER_META_KEY: record})
    carried = f", with its tokenizer ({m.tokenizer.vocab_size} tokens)" if record is not None else ""
    print(f"compiled {m.what} (calibrated on {m.net.calibration.source}){carried} -> {out}", file=sys.stderr)
    return 0
