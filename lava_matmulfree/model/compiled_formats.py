"""The integer formats of a compiled network within what its arithmetic can mean (docs/reliability.md).

``QuantisedNetwork.load`` checks that the meta's formats, multipliers and shifts are integers; this checks their
values. A fraction-bit count or shift is used as a shift of int64 arithmetic (a meta that said 1,000,000
fraction bits was used as it was, issue 27), a mantissa must lie below ``2**mantissa_bits`` like the mantissa
tensors, and scales and clips must be finite and positive.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

from lava_matmulfree.errors import CheckpointError

#: The widest shift int64 arithmetic can take: a format or shift beyond it cannot come from the compiler
MAX_SHIFT_BITS = 62
SHIFT_SUFFIXES = ("_frac", "_k")  # fraction bits of a Q format, right shifts of a rescale
MANTISSA_SUFFIX = "_m"
POSITIVE_FLOATS = ("scale", "logit_scale", "clip")
SKIPPED = ("cfg", "fp", "calibration", "fingerprint")  # checked by the loader itself


def check_compiled_formats(net, path="the compiled network") -> None:
    """Raise CheckpointError naming ``path`` and the meta key whose value no compiler could have written."""
    limit = 1 << net.fp.mantissa_bits
    for key, value in _scalars(net, ""):
        name = key.rsplit(".", 1)[-1]
        base = name.split("[", 1)[0]
        if isinstance(value, bool):
            continue
        if isinstance(value, numbers.Integral):
            if base.endswith(SHIFT_SUFFIXES) and not -MAX_SHIFT_BITS <= value <= MAX_SHIFT_BITS:
                raise CheckpointError(f"{path}: meta key {key!r} is {value}: a format or shift must lie within "
                                      f"[-{MAX_SHIFT_BITS}, {MAX_SHIFT_BITS}] bits (int64 arithmetic)")
            if base.endswith(MANTISSA_SUFFIX) and not -limit < value < limit:
                raise CheckpointError(f"{path}: meta key {key!r} is {value}: a mantissa must lie below "
                                      f"2**mantissa_bits = {limit} in magnitude")
        elif isinstance(value, numbers.Real) and base in POSITIVE_FLOATS:
            if not (math.isfinite(value) and value > 0):
                raise CheckpointError(f"{path}: meta key {key!r} is {value!r}: it must be a positive finite number")


def _scalars(obj, prefix):
    """(dotted key, value) of every scalar in a compiled network's tree of dataclasses, lists and dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if prefix == "" and f.name in SKIPPED:
                continue
            yield from _scalars(getattr(obj, f.name), f"{prefix}{f.name}.")
    elif isinstance(obj, list):
        for i, o in enumerate(obj):
            yield from _scalars(o, f"{prefix}{i}.")
    elif isinstance(obj, dict):
        for k, o in obj.items():
            if isinstance(o, (numbers.Number,)):
                yield f"{prefix[:-1]}[{k!r}]", o
            else:
                yield from _scalars(o, f"{prefix}{k}.")
    elif isinstance(obj, numbers.Number):
        yield prefix[:-1], obj
