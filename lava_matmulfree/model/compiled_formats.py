"""A compiled network's meta within what its arithmetic can mean (docs/reliability.md): its structure and types
when a file is loaded, its formats' values whether it was loaded or compiled just now.

Types and structure (:func:`meta_int`, :func:`meta_number`, :func:`meta_consumers`, :func:`meta_config`,
:func:`meta_calibration`, called by ``QuantisedNetwork.load`` as it reads each key): formats, shifts and
multipliers are integers, scales and clips numbers, the configs' fields of their types, every norm's dicts
keyed by exactly the consumers the model indexes them by (a missing one crashed the golden model with a
KeyError, a string scale numpy's multiply). :class:`MetaError` names the key; the loader adds the file.

Values (:func:`check_compiled_formats` on a loaded file, :func:`check_compiled_network` on a network
``compile_network`` has just made): a fraction-bit count or shift is used as a shift of int64 arithmetic (a
meta that said 1,000,000 fraction bits was used as it was), a mantissa must lie below ``2**mantissa_bits`` like
the mantissa tensors, and scales and clips must be finite and positive. Weights far from a trained model's
scale (x1e30, or denormal x1e-40) calibrate to such formats: the compiler refuses them, naming the calibrated
range or the weight tensor that set the format, instead of running garbage.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.model.calibration import TOKEN_MIXER_INPUTS, Calibration

#: The widest shift int64 arithmetic can take: a format or shift beyond it cannot come from the compiler
MAX_SHIFT_BITS = 62
SHIFT_SUFFIXES = ("_frac", "_k")  # fraction bits of a Q format, right shifts of a rescale
MANTISSA_SUFFIX = "_m"
POSITIVE_FLOATS = ("scale", "logit_scale", "clip")
SKIPPED = ("cfg", "fp", "calibration", "fingerprint")  # checked by the loader itself

#: The consumers of each norm stage (a layer's QNorm fields, and the head): the keys of its gain_m, gain_k and
#: clip dicts, by which the golden model and the Lava models index them.
LAYER_NORM_CONSUMERS = {"attn": TOKEN_MIXER_INPUTS, "gate": ("o",), "mlp": ("gate",), "down_norm": ("down",)}
HEAD_CONSUMERS = ("lm_head",)
PRE_FRAC_KEYS = TOKEN_MIXER_INPUTS  # a layer's pre_frac: the projections with a pre-activation format
QNORM_DICTS = ("gain_m", "gain_k", "clip")


class MetaError(ValueError):
    """A compiled file's meta key holds something the model cannot use; ``str()`` names the key."""

    def __init__(self, key: str, why: str):
        super().__init__(f"meta key {key!r} {why}")
        self.key = key


# ----------------------------------------------------------------------------------- structure and types
def meta_int(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetaError(key, f"must be an integer, got {value!r}")
    return value


def meta_number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetaError(key, f"must be a number, got {value!r}")
    return float(value)


def meta_str(key: str, value) -> str:
    if not isinstance(value, str):
        raise MetaError(key, f"must be a string, got {value!r}")
    return value


def dict_keys_for(prefix: str) -> tuple[str, ...] | None:
    """The keys a compiled network's dict at meta ``prefix`` (``layers.0.attn.gain_m``) must have, or None for
    a dict this module does not know."""
    parts = prefix.split(".")
    if parts[-1] == "pre_frac":
        return PRE_FRAC_KEYS
    if parts[-1] in QNORM_DICTS and len(parts) >= 2:
        if parts[-2] == "head" and len(parts) == 2:
            return HEAD_CONSUMERS
        return LAYER_NORM_CONSUMERS.get(parts[-2])
    return None


def meta_consumers(prefix: str, keys) -> list[str]:
    """The ``#keys`` list of the dict at ``prefix``, checked to name exactly the consumers the model has (in the
    model's order)."""
    key = f"{prefix}.#keys"
    want = dict_keys_for(prefix)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise MetaError(key, f"must be a list of names, got {keys!r}")
    if want is None:
        return keys
    if sorted(keys) != sorted(want):
        what = "its projections" if prefix.endswith("pre_frac") else f"the consumers of norm {prefix.rsplit('.', 1)[0]}"
        raise MetaError(key, f"must list {what}, {', '.join(map(repr, want))}, each once; got {keys!r}")
    return list(want)


def dict_value(prefix: str, key: str, value):
    """A value of a compiled network's dict (``gain_k`` shifts and ``pre_frac`` formats are integers, ``clip``s
    numbers); ``gain_m`` values are tensors, checked by the loader's tensor checks."""
    name = prefix.rsplit(".", 1)[-1]
    if name in ("gain_k", "pre_frac"):
        return meta_int(key, value)
    if name == "clip":
        return meta_number(key, value)
    return value


def meta_config(cls, key: str, raw):
    """A ModelConfig / FixedPointConfig from its meta object: known fields of their types (a missing one, from a
    file older than the field, keeps its default); ranges are checked by the loader (``cls._check``)."""
    if not isinstance(raw, dict):
        raise MetaError(key, f"must be a JSON object of {cls.__name__} fields, got {raw!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        if k not in known:
            raise MetaError(f"{key}.{k}", f"is not a field of {cls.__name__} (known: {', '.join(sorted(known))})")
        typ = known[k].type
        if typ in ("int", int):
            v = meta_int(f"{key}.{k}", v)
        elif typ in ("float", float):
            v = meta_number(f"{key}.{k}", v)
        elif typ in ("bool", bool) and not isinstance(v, bool):
            raise MetaError(f"{key}.{k}", f"must be true or false, got {v!r}")
        elif typ in ("str", str):
            v = meta_str(f"{key}.{k}", v)
        kwargs[k] = v
    return cls(**kwargs)


def meta_calibration(key: str, raw):
    """The Calibration stored under ``key``: {stats: {name: number}, num_tokens: int, percentile: number,
    source: str}."""
    if not isinstance(raw, dict):
        raise MetaError(key, f"must be a JSON object (the calibration's statistics), got {raw!r}")
    for k in ("stats", "num_tokens", "percentile"):
        if k not in raw:
            raise MetaError(f"{key}.{k}", "is missing")
    stats = raw["stats"]
    if not isinstance(stats, dict):
        raise MetaError(f"{key}.stats", f"must be a JSON object of statistics, got {stats!r}")
    return Calibration(stats={k: meta_number(f"{key}.stats.{k}", v) for k, v in stats.items()},
                       num_tokens=meta_int(f"{key}.num_tokens", raw["num_tokens"]),
                       percentile=meta_number(f"{key}.percentile", raw["percentile"]),
                       source=meta_str(f"{key}.source", raw.get("source", "")))


# ----------------------------------------------------------------------------------- values
def format_problem(net) -> tuple[str, object, str] | None:
    """(dotted key, value, why) of the first format, shift, mantissa or scale of ``net`` that its arithmetic
    cannot mean; None when all can."""
    limit = 1 << net.fp.mantissa_bits
    for key, value in _scalars(net, ""):
        name = key.rsplit(".", 1)[-1]
        base = name.split("[", 1)[0]
        if isinstance(value, bool):
            continue
        if isinstance(value, numbers.Integral):
            if base.endswith(SHIFT_SUFFIXES) and not -MAX_SHIFT_BITS <= value <= MAX_SHIFT_BITS:
                return key, value, (f"a format or shift must lie within [-{MAX_SHIFT_BITS}, {MAX_SHIFT_BITS}] bits "
                                    "(int64 arithmetic)")
            if base.endswith(MANTISSA_SUFFIX) and not -limit < value < limit:
                return key, value, f"a mantissa must lie below 2**mantissa_bits = {limit} in magnitude"
        elif isinstance(value, numbers.Real) and base in POSITIVE_FLOATS:
            if not (math.isfinite(value) and value > 0):
                return key, value, "it must be a positive finite number"
    return None


def check_compiled_formats(net, path="the compiled network") -> None:
    """Raise CheckpointError naming ``path`` and the meta key whose value no compiler could have written."""
    bad = format_problem(net)
    if bad is not None:
        key, value, why = bad
        raise CheckpointError(f"{path}: meta key {key!r} is {value!r}: {why}")


def check_compiled_network(net, peak_weight: tuple[float, str] | None = None) -> None:
    """The checks :func:`check_compiled_formats` makes of a loaded file, on a network just compiled from float
    weights: a CheckpointError saying which calibrated range or weight tensor set the format that cannot be run.
    ``peak_weight``: (|largest weight|, its tensor), as ``FloatModel.peak_weight`` holds it."""
    check_calibration_finite(net.calibration, peak_weight)
    stats = net.calibration.stats
    bad = format_problem(net)
    if bad is None:
        return
    key, value, why = bad
    raise CheckpointError(f"cannot compile these weights: {key} would be {value!r} ({why}); it is set by "
                          f"{format_cause(key, stats)}{_peak(peak_weight)}: weights this far from a trained "
                          f"model's scale have no fixed-point formats")


def check_calibration_finite(cal, peak_weight: tuple[float, str] | None = None) -> None:
    """A calibration's statistics are finite numbers (an infinite range would give a format as if it were empty)."""
    for name in sorted(cal.stats):
        if not math.isfinite(cal.stats[name]):
            raise CheckpointError(f"cannot compile these weights: the calibration statistic {name!r} is "
                                  f"{cal.stats[name]!r} (the float model overflowed on the calibration text)"
                                  f"{_peak(peak_weight)}")


def _peak(peak_weight) -> str:
    if not peak_weight or not peak_weight[1]:
        return ""
    return f"; the largest weight is |{peak_weight[0]:.3g}| in tensor {peak_weight[1]!r}"


# stage field of a layer -> (calibration stage suffix, the checkpoint's norm weight tensor of the stage)
_STAGES = {"attn": ("attn", "attn_norm.weight"), "gate": ("gate", "attn.g_norm.weight"),
           "mlp": ("mlp", "mlp_norm.weight"), "down_norm": ("down", None)}
# projection field of a layer -> its checkpoint weight tensor (under model.layers.L.)
_PROJ_TENSORS = {"i": "attn.i_proj", "f": "attn.f_proj", "g": "attn.g_proj", "o": "attn.o_proj",
                 "down": "mlp.down_proj", "gate": "mlp.gate_proj", "lm_head": "lm_head"}


def format_cause(key: str, stats: dict) -> str:
    """What in the float weights sets the compiled network's scalar ``key`` (``layers.0.attn.u_frac``): a
    calibrated range (with its value), or a weight tensor's scale."""
    def stat(name, what):
        value = stats.get(name)
        return f"the calibrated range of {what} (statistic {name!r}" + \
            ("" if value is None else f" = {value:.3g}") + ")"

    def proj_tensor(l, p):
        t = _PROJ_TENSORS[p]
        return f"{t}.weight" if l is None else f"model.layers.{l}.{t}.weight"

    parts = key.replace("['", ".").replace("']", "").split(".")
    resid = stat("resid", "the residual stream, the embeddings 'model.embeddings.weight' and every layer's output")
    if parts == ["x_frac"]:
        return resid
    if parts == ["logit_scale"]:
        return f"the scale (mean |W|) of tensor 'lm_head.weight' and {stat('head.lm_head.clip', 'its input')}"
    if parts[0] == "head":
        stage, norm, l, rest = "head", "model.norm.weight", None, parts[1:]
    elif parts[0] == "layers" and len(parts) >= 3:
        l, field, rest = int(parts[1]), parts[2], parts[3:]
        layer = f"layer {l}"
        simple = {"h_frac": (f"l{l}.h", f"{layer}'s hidden state h"),
                  "gz_frac": (f"l{l}.gate.v", f"{layer}'s g * SiLU(h)"),
                  "u_frac": (f"l{l}.u", f"{layer}'s GLU input u, an output of '{proj_tensor(l, 'gate')}'"),
                  "v_frac": (f"l{l}.v", f"{layer}'s GLU input v, an output of '{proj_tensor(l, 'gate')}'"),
                  "y_frac": (f"l{l}.down.v", f"{layer}'s GLU output SiLU(u) * v")}
        if field in simple and not rest:
            return stat(*simple[field])
        if field == "pre_frac" and rest:
            return stat(f"l{l}.pre_{rest[0]}", f"the output of '{proj_tensor(l, rest[0])}'")
        if field in ("u_m", "u_k", "v_m", "v_k"):
            field, rest = "gate", ["out_k"]
        if field in _PROJ_TENSORS and rest and rest[0] in ("out_m", "out_k", "scale"):
            clip = {"i": "attn", "f": "attn", "g": "attn", "o": "gate", "gate": "mlp", "down": "down"}[field]
            return (f"the scale (mean |W|) of tensor '{proj_tensor(l, field)}' and "
                    f"{stat(f'l{l}.{clip}.{field}.clip', 'its input')}")
        if field not in _STAGES:
            return f"the weights of layer {l}"
        stage, norm = f"l{l}.{_STAGES[field][0]}", _STAGES[field][1]
        norm = norm and f"model.layers.{l}.{norm}"
    else:
        return "the weights"
    what = "the final norm" if stage == "head" else f"norm {stage}"
    gain = f"the norm weight {norm!r}" if norm else "the unit gain"
    name = rest[0] if rest else ""
    if name == "v_frac":
        return resid if stage == "head" or stage.endswith((".attn", ".mlp")) else \
            stat(f"{stage}.v", f"the values {what} normalises")
    if name == "u_frac":
        return stat(f"{stage}.sum_sq", f"the sum of squares of {what}, weighted by {gain}")
    if name == "t_frac":
        return stat(f"{stage}.unit", f"the unit values of {what}")
    if name in ("inner_k", "inner_m", "t_k"):
        return f"{gain} of {what} and {stat(f'{stage}.sum_sq', 'its sum of squares')}"
    consumer = rest[1] if len(rest) > 1 else ""
    if name in ("gain_k", "clip") and consumer in _PROJ_TENSORS:
        t = proj_tensor(l, consumer).replace(".weight", ".norm.weight")
        gains = f"the norm weights {norm!r} and {t!r}" if norm else f"the norm weight {t!r}"
        to = _PROJ_TENSORS[consumer].rsplit(".", 1)[-1]
        return f"{gains}, and {stat(f'{stage}.{consumer}.clip', f'the input {what} sends to {to}')}"
    return f"the weights of {what}"


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
