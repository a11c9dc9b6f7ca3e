"""The compiled network as data: :class:`QuantisedNetwork` and its parts (:class:`QNorm`, :class:`QProj`,
:class:`QLayer`), held as integers (quantise.py's docstring lists every format; docs/fixed_point.md), and its
file: one safetensors file of tensors plus a JSON meta header, checked tensor by tensor when loaded
(docs/reliability.md).

quantise.py compiles a float model into one of these and is where users import them from.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from lava_matmulfree.config import FixedPointConfig, ModelConfig
from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.io.checkpoint import _describe, make_readable
from lava_matmulfree.model.calibration import Calibration
from lava_matmulfree.model.compiled_formats import (LAYER_NORM_CONSUMERS, HEAD_CONSUMERS, MetaError,
                                                    check_compiled_formats, dict_value, meta_calibration,
                                                    meta_config, meta_consumers, meta_int, meta_number, meta_str)
from lava_matmulfree.model.fixed_point import invsqrt_seed_lut, sigmoid_lut

FORMAT_VERSION = 1


@dataclass
class QNorm:
    """One RMS aggregation round and the int8 spikes it produces for each consumer BitLinear."""

    v_frac: int  # channel value v in Q(v_frac)
    u_frac: int
    inner_m: np.ndarray  # u = sat(mul_shift(v, inner_m, inner_k), norm_square_bits)
    inner_k: int
    t_frac: int
    t_k: int  # t = mul_shift(v, r, t_k)
    gain_m: dict = field(default_factory=dict)  # consumer -> per-channel mantissa; a = sat8(mul_shift(t, m, k))
    gain_k: dict = field(default_factory=dict)
    clip: dict = field(default_factory=dict)  # consumer -> static activation clip (real units; informative)


@dataclass
class QProj:
    """Ternary synapses W (int8 [out, in]) and the requantisation of their integer output."""

    w: np.ndarray
    out_m: int  # next value = mul_shift(acc, out_m, out_k)
    out_k: int
    scale: float  # real value of one unit of acc (informative: clip / (127 * s))


@dataclass
class QLayer:
    attn: QNorm
    i: QProj
    f: QProj
    g: QProj
    pre_frac: dict  # i, f, g -> fraction bits of the requantised pre-activation
    lb: np.ndarray  # forget-gate lower bound, Q(gate_frac_bits)
    h_frac: int
    gz_frac: int
    gate: QNorm
    o: QProj  # requantised into the residual format
    mlp: QNorm
    gate_w: np.ndarray  # [2I, d] ternary; first half u, second half v
    u_m: int
    u_k: int
    v_m: int
    v_k: int
    u_frac: int
    v_frac: int
    y_frac: int
    down_norm: QNorm
    down: QProj  # requantised into the residual format


@dataclass
class QuantisedNetwork:
    cfg: ModelConfig
    fp: FixedPointConfig
    x_frac: int
    embed: np.ndarray  # [V, d] residual format, int32 (state_bits <= 32)
    layers: list
    head: QNorm
    lm_head: np.ndarray  # [V, d] ternary
    logit_scale: float  # real value of one logit unit (host-side sampling only)
    sigmoid_lut: np.ndarray
    invsqrt_lut: np.ndarray
    calibration: Calibration = field(default_factory=Calibration)
    fingerprint: str = ""  # checkpoint.fingerprint of the weights it was compiled from ("" in older files)

    def __post_init__(self):
        # the table's values are state_bits (<= 32) wide: int32 holds them in half of int64's memory (131 MiB less
        # at 370M, in the golden model's process and in the one Lava's workers are forked from); files of older
        # versions hold int64
        self.embed = np.asarray(self.embed).astype(np.int32, copy=False)

    def pack_weights(self) -> "QuantisedNetwork":
        """Hold every ternary matrix only packed (2 bits per weight, ``ternary.PackedTernary``) in place of its int8
        array, which is dropped unless something else references it (a float model built from the same weights):
        at 370M, 81 MiB instead of 325 + 81. Arithmetic is unchanged (the kernels always used the packed codes);
        numpy reads of a weight unpack a temporary copy. Returns self."""
        from lava_matmulfree.model.float_model import ternary_matrix
        from lava_matmulfree.model.ternary import PackedTernary, TernaryMatrix

        def packed(w):
            if isinstance(w, PackedTernary):
                return w
            tm = ternary_matrix(w)
            return PackedTernary(tm if tm is not None else TernaryMatrix(w))  # TernaryMatrix names a bad matrix

        for q in self.layers:
            for proj in (q.i, q.f, q.g, q.o, q.down):
                proj.w = packed(proj.w)
            q.gate_w = packed(q.gate_w)
        self.lm_head = packed(self.lm_head)
        release_freed_memory()
        return self

    # ------------------------------------------------------------------ save / load (one safetensors file)
    def save(self, path: str | Path, extra_header: dict[str, str] | None = None) -> None:
        """One safetensors file; ``extra_header``: more string entries of its header (e.g. the tokenizer the CLI's
        compile carries along, io/tokenizer.py), which ``load`` leaves alone."""
        tensors, meta = {}, {}
        _flatten(self, "", tensors, meta)
        header = {**(extra_header or {}), "format_version": str(FORMAT_VERSION),
                  "meta": json.dumps(meta, sort_keys=True)}
        try:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=header)
        except Exception as e:  # the writer's own error type: a failed write (a full disk) is an OSError naming path
            code = re.search(r"\(os error (\d+)\)", str(e))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None
        make_readable(path)

    @classmethod
    def load(cls, path: str | Path) -> "QuantisedNetwork":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such compiled model file")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                header = fh.metadata() or {}
        except Exception as e:  # the safetensors parser's own error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
        _check_header(path, header)
        try:
            tensors = load_file(str(path))  # only once the header says it is one: a float checkpoint can be GBs
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
        try:
            meta = json.loads(header["meta"])
        except ValueError as e:
            raise CheckpointError(f"{path}: its meta header is not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: its meta header is not a JSON object")
        try:  # each key's type and structure as it is read (compiled_formats.py): a MetaError names the key
            cfg = _unflatten_value("ModelConfig", "cfg.", tensors, meta)
            fp = _unflatten_value("FixedPointConfig", "fp.", tensors, meta)
            validate_tensors(path, cfg, fp, tensors)  # before the structure: a tensor error names the tensor
            layers = meta_int("layers.#len", _meta(meta, "layers.#len"))
            if layers != cfg.num_layers:
                raise CheckpointError(f"{path}: meta lists {layers} layers, its cfg.num_layers says "
                                      f"{cfg.num_layers}")
            net = _unflatten(cls, "", tensors, meta)
        except (_Missing, MetaError) as e:
            raise CheckpointError(f"{path}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: malformed meta header ({e})") from None
        check_compiled_formats(net, path)  # values no compiler writes (their types were checked as they were read)
        return net


def _check_header(path: Path, header: dict) -> None:
    """The safetensors header of a compiled file: this format's version and a meta; else an error saying what was
    found."""
    version, has_meta = header.get("format_version"), "meta" in header
    if version == str(FORMAT_VERSION) and has_meta:
        return
    if version is None and not has_meta:
        hint = ""
        if (path.parent / "config.json").is_file():  # a checkpoint's float weights: its folder is the checkpoint
            hint = f"; {path.parent} holds a config.json: give the folder as the checkpoint"
        raise CheckpointError(f"{path}: not a lava-matmulfree compiled model (its safetensors header has no "
                              f"format_version and no meta){hint}")
    if version is None:
        raise CheckpointError(f"{path}: its header has a meta but no format_version (this version reads compiled "
                              f"format {FORMAT_VERSION})")
    if version != str(FORMAT_VERSION):
        newer = version.isdigit() and int(version) > FORMAT_VERSION
        why = "written by a newer lava-matmulfree? upgrade, or " if newer else ""
        raise CheckpointError(f"{path}: compiled format_version {version!r}, but this lava-matmulfree reads format "
                              f"{FORMAT_VERSION} only ({why}recompile it from its checkpoint)")
    raise CheckpointError(f"{path}: its header has format_version {version!r} but no meta")


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; nothing elsewhere). Arrays of a few MiB, like
    the int8 weights of a loaded network, live on malloc's heap once its mmap threshold has grown: freeing them
    keeps their pages resident (measured at 370M: 145 of the 325 MiB came back without this, all with it)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


# ----------------------------------------------------------------------------------- validation
def expected_compiled_tensors(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, kind) of every tensor of a compiled network of ``cfg``; kinds: ``ternary`` int8
    weights in {-1, 0, 1}, ``mantissa`` rescale multipliers (|m| < 2**mantissa_bits), ``state`` values of
    the residual format, ``gate`` forget-gate lower bounds in [0, 1], ``lut`` tables rebuilt from the knobs."""
    d, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    want = {"embed": ((V, d), "state"), "lm_head": ((V, d), "ternary"), "head.inner_m": ((d,), "mantissa"),
            "sigmoid_lut": ((), "lut"), "invsqrt_lut": ((), "lut")}
    want.update({f"head.gain_m.{c}": ((d,), "mantissa") for c in HEAD_CONSUMERS})
    for l in range(cfg.num_layers):
        p = f"layers.{l}."
        for stage, consumers in LAYER_NORM_CONSUMERS.items():
            n = I if stage == "down_norm" else d
            want[f"{p}{stage}.inner_m"] = ((n,), "mantissa")
            for c in consumers:
                want[f"{p}{stage}.gain_m.{c}"] = ((n,), "mantissa")
        for proj in ("i", "f", "g", "o"):
            want[f"{p}{proj}.w"] = ((d, d), "ternary")
        want[f"{p}gate_w"] = ((2 * I, d), "ternary")
        want[f"{p}down.w"] = ((d, I), "ternary")
        want[f"{p}lb"] = ((d,), "gate")
    return want


def validate_tensors(path, cfg: ModelConfig, fp: FixedPointConfig, tensors: dict) -> None:
    """Every tensor present with its shape, dtype and range for the meta's model and knobs, nothing else;
    else a CheckpointError naming ``path`` and the tensor or key."""
    for what, obj in (("cfg", cfg), ("fp", fp)):
        bad = obj._check()
        if bad:
            raise CheckpointError(f"{path}: meta {what}.{bad[0][0]} {bad[0][1]}")
    want = expected_compiled_tensors(cfg)
    luts = {"sigmoid_lut": sigmoid_lut(fp.sigmoid_lut_size, fp.sigmoid_lut_range, fp.gate_frac_bits),
            "invsqrt_lut": invsqrt_seed_lut(fp.invsqrt_seed_bits)}
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor {extra[0]!r} for a model of {_describe(cfg)}")
    state_max = 1 << (fp.state_bits - 1)
    for name, (shape, kind) in want.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: missing tensor {name!r}, needed by a model of {_describe(cfg)}")
        a = tensors[name]
        if kind == "lut":
            shape = luts[name].shape
        if tuple(a.shape) != shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(a.shape)}, expected {shape} for a "
                                  f"model of {_describe(cfg)}")
        if a.dtype.kind not in "iu" or (kind == "ternary" and a.dtype != np.int8):
            need = "int8" if kind == "ternary" else "an integer dtype"
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {a.dtype}, expected {need}")
        if a.size == 0:
            continue
        lo, hi = int(a.min()), int(a.max())
        ok = {"ternary": -1 <= lo and hi <= 1, "mantissa": -(1 << fp.mantissa_bits) < lo and hi < 1 << fp.mantissa_bits,
              "state": -state_max <= lo and hi < state_max, "gate": 0 <= lo and hi <= 1 << fp.gate_frac_bits,
              "lut": kind == "lut" and np.array_equal(a, luts.get(name, a))}[kind]
        if not ok:
            why = ("differs from the table its [fixed_point] knobs give" if kind == "lut"
                   else f"holds values in [{lo}, {hi}], outside the range of a {kind} tensor")
            raise CheckpointError(f"{path}: tensor {name!r} {why}")


class _Missing(Exception):
    """A key of the meta header is missing."""


# ----------------------------------------------------------------------------------- flatten helpers
def _flatten(obj, prefix, tensors, meta):
    from lava_matmulfree.model.ternary import PackedTernary  # here, not at module level: numba only where the kernels are used

    if isinstance(obj, (ModelConfig, FixedPointConfig)):
        meta[prefix[:-1]] = dataclasses.asdict(obj)
    elif isinstance(obj, Calibration):
        meta[prefix[:-1]] = json.loads(obj.to_json())
    elif dataclasses.is_dataclass(obj):
        for f in fields(obj):
            _flatten(getattr(obj, f.name), f"{prefix}{f.name}.", tensors, meta)
    elif isinstance(obj, np.ndarray):
        tensors[prefix[:-1]] = obj
    elif isinstance(obj, PackedTernary):
        tensors[prefix[:-1]] = np.asarray(obj)  # saved as the int8 matrix, as always
    elif isinstance(obj, list):
        meta[prefix + "#len"] = len(obj)
        for i, o in enumerate(obj):
            _flatten(o, f"{prefix}{i}.", tensors, meta)
    elif isinstance(obj, dict):
        meta[prefix + "#keys"] = list(obj)
        for k, o in obj.items():
            _flatten(o, f"{prefix}{k}.", tensors, meta)
    else:
        meta[prefix[:-1]] = obj


def _unflatten(cls, prefix, tensors, meta):
    kw = {}
    for f in fields(cls):
        if f.name not in meta and f.type == "str" and f.default is not dataclasses.MISSING:
            continue  # a field newer than the file keeps its default
        kw[f.name] = _unflatten_value(f.type, f"{prefix}{f.name}.", tensors, meta)
    return cls(**kw)


def _meta(meta, key):
    if key not in meta:
        raise _Missing(f"missing meta key {key!r}")
    return meta[key]


def _tensor(tensors, key):
    if key not in tensors:
        raise _Missing(f"missing tensor {key!r}")
    return tensors[key]


_TYPES = {"QNorm": QNorm, "QProj": QProj, "QLayer": QLayer}


def _unflatten_value(typ, prefix, tensors, meta):
    """The field of type ``typ`` stored at ``prefix``, each meta value checked for its type (compiled_formats.py)."""
    name = prefix[:-1]
    if typ in ("ModelConfig", "FixedPointConfig"):
        return meta_config(ModelConfig if typ == "ModelConfig" else FixedPointConfig, name, _meta(meta, name))
    if typ == "Calibration":
        return meta_calibration(name, _meta(meta, name))
    if typ in _TYPES:
        return _unflatten(_TYPES[typ], prefix, tensors, meta)
    if typ == "np.ndarray":
        return _tensor(tensors, name)
    if typ == "list":  # the layers (their count checked against the config first)
        count = meta_int(prefix + "#len", _meta(meta, prefix + "#len"))
        return [_unflatten(QLayer, f"{prefix}{i}.", tensors, meta) for i in range(count)]
    if typ == "dict":
        out = {}
        for k in meta_consumers(name, _meta(meta, prefix + "#keys")):
            key = f"{prefix}{k}"
            out[k] = tensors[key] if key in tensors else dict_value(name, key, _meta(meta, key))
        return out
    value = _meta(meta, name)
    if typ == "int":
        return meta_int(name, value)
    if typ == "float":
        return meta_number(name, value)
    if typ == "str":
        return meta_str(name, value)
    return value
