"""Typed configs read from TOML (the shipped ``configs/*.toml`` or a path) or from a Hugging Face ``config.json``.

Every value the model, the fixed-point contract or a backend uses is a field here, defined once.
Unknown keys, wrong types and impossible values raise :class:`ConfigError` naming the key and the file.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import tomli

from lava_matmulfree.errors import ConfigError

# the package's own files, installed with it (pyproject's package-data)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the shipped configs, read by name
DATA_DIR = Path(__file__).resolve().parent / "data"  # the shipped models, a Hugging Face folder each
SHIPPED_MODELS = {"demo": "demo_model", "deep": "deep_model"}  # name -> folder in DATA_DIR
HF_CONFIG_FILE = "config.json"  # a Hugging Face checkpoint folder's config (a shipped model's too)


def glu_intermediate_size(hidden_size: int) -> int:
    """Released HGRN-Bit rule: I = 256 * ceil(int(d * 4 * 2/3) / 256)."""
    return 256 * math.ceil(int(hidden_size * 4 * 2 / 3) / 256)


#: The keys of a Hugging Face config.json that fix the model's shape: required, not defaulted.
HF_SHAPE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers")
HF_NAME_KEY = "_name_or_path"  # read back as the config's name


@dataclass(frozen=True)
class ModelConfig:
    """Shape and float hyper-parameters of an HGRN-Bit model (docs/model.md)."""

    name: str = "unnamed"
    vocab_size: int = 32000
    hidden_size: int = 1024
    num_layers: int = 24
    intermediate_size: int = 0  # 0: the released rule, glu_intermediate_size(hidden_size)
    rms_norm_eps: float = 1e-6  # block norms (attn_norm, g_norm, mlp_norm, final norm)
    bitlinear_eps: float = 1e-6  # the RMSNorm inside every BitLinear
    use_lower_bound: bool = True
    bos_token_id: int = 1
    eos_token_id: int = 2

    def __post_init__(self):
        if self.intermediate_size == 0:
            object.__setattr__(self, "intermediate_size", glu_intermediate_size(self.hidden_size))

    def _check(self) -> list[tuple[str, str]]:
        bad = []
        for k in ("vocab_size", "hidden_size", "num_layers", "intermediate_size"):
            if getattr(self, k) <= 0:
                bad.append((k, f"must be positive, got {getattr(self, k)}"))
        for k in ("rms_norm_eps", "bitlinear_eps"):
            v = getattr(self, k)
            if not (v > 0 and math.isfinite(v)):
                bad.append((k, f"must be a positive finite number, got {v}"))
        for k in ("bos_token_id", "eos_token_id"):
            v = getattr(self, k)
            if not (-1 <= v < self.vocab_size):
                bad.append((k, f"must be -1 (none) or a token id below vocab_size={self.vocab_size}, got {v}"))
        return bad

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], source: str = HF_CONFIG_FILE) -> "ModelConfig":
        """Map a Hugging Face ``hgrn_bit`` config.json onto this config."""
        mt = hf.get("model_type")
        if mt != "hgrn_bit":
            raise ConfigError(f"{source}: model_type must be 'hgrn_bit', got {mt!r}")
        if not isinstance(hf.get("tie_word_embeddings", False), bool):  # io.checkpoint reads the head by it
            raise ConfigError(f"{source}: tie_word_embeddings must be true or false, got "
                              f"{hf['tie_word_embeddings']!r}")
        for k, want in (("num_heads", 1), ("expand_ratio", 1), ("use_short_conv", False)):
            if k in hf and hf[k] not in (want, None):
                raise ConfigError(f"{source}: {k}={hf[k]!r} is not supported (the released models use {want!r})")
        missing = [k for k in HF_SHAPE_KEYS if k not in hf]
        if missing:  # Hugging Face's class defaults (a 1.3B's shape) would stand in, and the weights then mismatch
            raise ConfigError(f"{source}: missing key{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} (a "
                              f"model's config.json names its shape: {', '.join(HF_SHAPE_KEYS)})")
        if hf.get("hidden_act") not in (None, "swish", "silu"):
            raise ConfigError(f"{source}: hidden_act={hf['hidden_act']!r} is not supported (the GLU is the "
                              "released models' swish)")
        raw = {
            "name": hf.get(HF_NAME_KEY) or "hf",
            "vocab_size": hf.get("vocab_size", 32000),
            "hidden_size": hf.get("hidden_size", 2048),
            "num_layers": hf.get("num_hidden_layers", 24),
            "intermediate_size": hf.get("intermediate_size") or 0,
            "rms_norm_eps": hf.get("rms_norm_eps", 1e-6),
            "use_lower_bound": hf.get("use_lower_bound", True),
            "bos_token_id": -1 if hf.get("bos_token_id") is None else hf["bos_token_id"],
            "eos_token_id": -1 if hf.get("eos_token_id") is None else hf["eos_token_id"],
        }
        if hf.get("hidden_ratio") not in (None, 4) and not hf.get("intermediate_size"):
            h = hf["hidden_ratio"]
            raw["intermediate_size"] = 256 * math.ceil(int(raw["hidden_size"] * h * 2 / 3) / 256)
        try:
            return _build(cls, raw, source, "config.json")
        except ConfigError as e:  # named as the file names it
            raise ConfigError(str(e).replace("] num_layers ", "] num_hidden_layers ")) from None

    def to_hf(self) -> dict:
        """The Hugging Face config.json of this model (what the released checkpoints carry)."""
        return {
            "model_type": "hgrn_bit",
            "architectures": ["HGRNBitForCausalLM"],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "intermediate_size": self.intermediate_size,
            "attn_mode": "fused_recurrent",
            "num_heads": 1,
            "expand_ratio": 1,
            "use_short_conv": False,
            "use_lower_bound": self.use_lower_bound,
            "hidden_ratio": 4,
            "hidden_act": "swish",
            "rms_norm_eps": self.rms_norm_eps,
            "bos_token_id": None if self.bos_token_id < 0 else self.bos_token_id,
            "eos_token_id": None if self.eos_token_id < 0 else self.eos_token_id,
            "tie_word_embeddings": False,
        }


# 65,536 LUT entries of 16 bits are 128 KB, all the memory of one Loihi 2 neuro core (the cost model's
# core_memory_bytes, a low-confidence secondary figure): no larger table can be placed on a core.
SIGMOID_LUT_MAX_SIZE = 1 << 16
# The aggregator's sum S is a register of state_bits, and the inverse square root normalises sums below 2**24
# (docs/fixed_point.md): wider state registers would hand it sums it cannot take.
MAX_STATE_BITS = 25


@dataclass(frozen=True)
class FixedPointConfig:
    """The knobs of the fixed-point contract (docs/fixed_point.md); formats per tensor come from calibration.

    Changing any of these changes the golden model, the Lava models and the accuracy report together."""

    state_bits: int = 24  # neuron state registers and the dendritic accumulator (Loihi 2)
    act_bits: int = 8  # graded spikes entering ternary synapses
    headroom_bits: int = 1  # state formats keep this many bits above the calibrated maximum
    mantissa_bits: int = 15  # integer rescale multipliers: |m| < 2**mantissa_bits
    gate_frac_bits: int = 16  # sigmoid / gate values f, 1-f, sigma in Q0.gate_frac_bits
    sigmoid_lut_size: int = 1024  # entries of the sigmoid LUT (power of two)
    sigmoid_lut_range: float = 8.0  # LUT covers [-range, range) (power of two)
    norm_square_bits: int = 12  # |u| < 2**(bits-1) for the x^2 messages to the aggregator (u^2 fits 24 bits)
    invsqrt_seed_bits: int = 6  # inverse-sqrt LUT seed: 3 * 2**(bits-2) entries
    invsqrt_newton_steps: int = 2  # integer Newton-Raphson steps after the seed
    act_clip_percentile: float = 99.99  # static activation clip: this percentile of |value| on calibration
    pow2_act_scales: bool = False  # round every static activation clip up to a power of two

    def _check(self) -> list[tuple[str, str]]:
        s = self.state_bits
        bad = _out_of_range(self, (("state_bits", 16, MAX_STATE_BITS), ("act_bits", 2, 16), ("headroom_bits", 0, 8),
                                   ("mantissa_bits", 4, s - 1, "state_bits-1"),
                                   ("gate_frac_bits", 4, s - 2, "state_bits-2")))
        n, r = self.sigmoid_lut_size, self.sigmoid_lut_range
        if n < 4 or n & (n - 1) or n > SIGMOID_LUT_MAX_SIZE:
            bad.append(("sigmoid_lut_size", f"must be a power of two in [4, {SIGMOID_LUT_MAX_SIZE}], got {n}"))
        elif not (r > 0 and math.log2(r).is_integer() and math.log2(n / (2 * r)).is_integer()):
            bad.append(("sigmoid_lut_range", f"must be a power of two with size/(2*range) a power of two, got {r}"))
        return bad + _out_of_range(self, (("norm_square_bits", 4, (s + 1) // 2, "(state_bits+1)//2"),
                                          ("invsqrt_seed_bits", 2, 12), ("invsqrt_newton_steps", 0, 6),
                                          ("act_clip_percentile", 50, 100)))


def check_values(obj, what: str) -> None:
    """A ModelConfig, FixedPointConfig or RunConfig made in Python (not read from a file) checked as a file's
    would be: ConfigError naming ``what`` and every field out of its range."""
    bad = obj._check()
    if bad:
        raise ConfigError(f"{what}: {_problems(bad)}")


def _problems(bad: list[tuple[str, str]]) -> str:
    """Every field out of its range, in one line: the limits a change moves were met one error at a time
    (state_bits=16 was refused for gate_frac_bits, then, once that was set, for norm_square_bits)."""
    return "; ".join(f"{k} {why}" for k, why in bad)


def _out_of_range(obj, limits) -> list[tuple[str, str]]:
    """(field, why) for each field of ``obj`` outside its closed range, in the order given. ``limits``: tuples
    (field, low, high[, how the high end reads in the message when another field sets it])."""
    bad = []
    defaults = {f.name: f.default for f in fields(obj)} if dataclasses.is_dataclass(obj) else {}
    for name, lo, hi, *says in limits:
        v = getattr(obj, name)
        if not lo <= v <= hi:
            why = f"must be in [{lo}, {f'{says[0]} = {hi}' if says else hi}], got {v}"
            if says and v == defaults.get(name):  # another field moved the bound: the user never set this one
                why += f" (its default: set it too, e.g. {name}={min(max(v, lo), hi)})"
            bad.append((name, why))
    return bad


BACKEND_NAMES = ("float", "reference", "sim", "sim-mixers", "sim-fused", "sim-stack", "sim-float",
                 "sim-float-decomposed", "loihi2")
LAVA_BACKEND_NAMES = tuple(b for b in BACKEND_NAMES if b.startswith("sim") or b == "loihi2")
#: The Lava backends of the floating_pt models: they run the float model's weights, not the compiled network's.
FLOAT_LAVA_BACKENDS = ("sim-float", "sim-float-decomposed")
#: Python models of Lava's Dense on the fixed-point simulator backends (processes/connections.py).
DENSE_MODEL_NAMES = ("packed", "lava")
#: The shortest time limit of a Lava run. The limit counts from the run's start, and forking the runtime's
#: workers alone takes about a second for the tiny model (0.04-1 s, docs/performance.md) while the watchdog looks
#: every 0.2 s: a shorter limit could only stop healthy runs in the middle of their start-up.
MIN_TIMEOUT_S = 1.0


def threads_problem(threads: int, backend: str) -> str | None:
    """Why ``threads`` cannot run ``backend`` (None where it can): only the reference backend has a team."""
    if threads != 1 and backend != "reference":
        return (f"threads = {threads} applies to the reference backend (the golden model's kernel on a team of "
                f"threads), not to {backend}")
    return None


@dataclass(frozen=True)
class RunConfig:
    """How to run: which backend, and the limits of a Lava run (configs/sim.toml, sim-fused.toml ...)."""

    backend: str = "sim-fused"
    timeout_s: float = 900.0  # a Lava run longer than this is stopped (a model error can deadlock lava)
    record_logits: bool = True  # the sink keeps every token's logits (Var.get costs ~15 us per element)
    dense_model: str = "packed"  # Python model of Lava's Dense: "packed" (the ternary kernel) or "lava" (bit-accurate)
    threads: int = 1  # the reference backend's threads: its whole-model kernel on a team (model/thread_team.py)

    def _check(self) -> list[tuple[str, str]]:
        bad = []
        if self.dense_model not in DENSE_MODEL_NAMES:
            bad.append(("dense_model", f"must be one of {', '.join(DENSE_MODEL_NAMES)}, got {self.dense_model!r}"))
        if self.backend not in BACKEND_NAMES:
            bad.append(("backend", f"must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}"))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            bad.append(("threads", f"must be a whole number >= 1, got {self.threads!r}"))
        elif (why := threads_problem(self.threads, self.backend)) is not None:
            bad.append(("threads", why.removeprefix("threads ")))
        if not (self.timeout_s >= MIN_TIMEOUT_S and math.isfinite(self.timeout_s)):
            bad.append(("timeout_s", f"must be a number of seconds >= {MIN_TIMEOUT_S:g} (a Lava run's start-up "
                                     f"alone takes about that long), got {self.timeout_s!r}"))
        return bad


@dataclass(frozen=True)
class Config:
    """A whole config file, one field per TOML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    fixed_point: FixedPointConfig = field(default_factory=FixedPointConfig)
    run: RunConfig = field(default_factory=RunConfig)
    source: str = "<defaults>"


# TOML section -> dataclass; every section is optional
SECTIONS = {"model": ModelConfig, "fixed_point": FixedPointConfig, "run": RunConfig}


def _type_ok(value, typ) -> bool:
    if typ in ("int", int):
        return isinstance(value, int) and not isinstance(value, bool)
    if typ in ("float", float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ in ("bool", bool):
        return isinstance(value, bool)
    if typ in ("str", str):
        return isinstance(value, str)
    return True


class _ConfigKeyError(ConfigError):
    """A ConfigError about one key of one section: load_config adds the key's line in the file to it."""

    def __init__(self, source: str, section: str, key: str | None, what: str):
        super().__init__(f"{source}: [{section}] {what}")
        self.source, self.section, self.key, self.what = source, section, key, what


def _build(cls, raw: Mapping[str, Any], source: str, section: str):
    known = {f.name: f for f in fields(cls)}
    for k in raw:
        if k not in known:
            raise _ConfigKeyError(source, section, k, f"unknown key {k!r} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for k, v in raw.items():
        t = known[k].type
        if not _type_ok(v, t):
            raise _ConfigKeyError(source, section, k, f"{k} must be of type {t}, got {v!r}")
        kwargs[k] = float(v) if t in ("float", float) else v
    obj = cls(**kwargs)
    check = getattr(obj, "_check", None)
    if check is not None:
        bad = check()
        if bad:
            raise _ConfigKeyError(source, section, bad[0][0], _problems(bad))
    return obj


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """The line (from 1) of ``key = ...`` in ``[section]`` of a TOML text, or of the section's header where
    ``key`` is None; None where the file writes it otherwise (a dotted key, an inline table)."""
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = stripped[1:stripped.find("]")].strip().strip('"')
            if key is None and current == section:
                return n
        elif key is not None and current == section and stripped.split("=", 1)[0].strip().strip('"\'') == key:
            return n
    return None


def resolve_config_path(name_or_path: str | Path, require: str | None = None) -> Path:
    """The file of a config name or path; ``require`` (a section) names only configs of that kind when none fits."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such config file")
        if not p.is_file():
            raise ConfigError(f"{p}: is a folder, not a config file")
        return p
    cand = CONFIG_DIR / f"{name_or_path}.toml"
    if not cand.exists():
        kind = {"model": "model config", "run": "run config"}.get(require, "config")
        raise ConfigError(f"no {kind} named {name_or_path!r} (have: {', '.join(config_names(require))}; or give a "
                          ".toml path)")
    return cand


def config_names(section: str | None = None) -> list[str]:
    """The names of the shipped configs (configs/*.toml), those with a ``[section]`` where one is given."""
    names = []
    for q in sorted(CONFIG_DIR.glob("*.toml"), key=lambda q: q.stem):
        try:
            if section is None or section in tomli.loads(q.read_text(encoding="utf-8")):
                names.append(q.stem)
        except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
            continue
    return names


# what each kind of config is for, in the message when its section is missing
SECTION_USE = {"model": "a model config (tiny, 370m, ... or a TOML with [model])",
               "run": "a run config (sim, sim-fused, reference, ... or a TOML with [run])"}


def load_config(name_or_path: str | Path, require: str | None = None, only: bool = False) -> Config:
    """Read a config by name (``tiny``, ``370m`` ...) or path; every section is validated. With ``require``
    (a section name), a file without that section is an error rather than silently the defaults; with ``only``
    too, a file with any other section (which its reader would ignore)."""
    path = resolve_config_path(name_or_path, require)
    try:
        raw = tomli.loads(path.read_text(encoding="utf-8"))
    except tomli.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8 TOML) file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    if require is not None and require not in raw:
        have = ", ".join(f"[{k}]" for k in raw) or "no section"
        raise ConfigError(f"{path}: has no [{require}] section ({have}); expected {SECTION_USE[require]}")
    try:
        cfg = config_from_dict(raw, str(path))
    except _ConfigKeyError as e:  # named by its line too, as a TOML syntax error is
        line = _line_of(path.read_text(encoding="utf-8"), e.section, e.key)
        if line is None:
            raise
        raise ConfigError(f"{path}:{line}: [{e.section}] {e.what}") from None
    others = [k for k in raw if k != require] if only else []
    if others:
        raise ConfigError(f"{path}: a {require} config holds only [{require}]; {', '.join(f'[{k}]' for k in others)} "
                          "would be ignored (the model and its fixed-point knobs come from --checkpoint / --model / "
                          "--config and compile --set)")
    return cfg


def load_run_config(name_or_path: str | Path) -> "RunConfig":
    """The [run] section of a run config, which must have one and nothing else: a [model] or [fixed_point] there
    would be read by nothing (the model comes from its own options), so it is refused rather than ignored."""
    return load_config(name_or_path, require="run", only=True).run


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """The [model] section of a config, which must have one."""
    return load_config(name_or_path, require="model").model


def config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Config:
    for sec in raw:
        if sec not in SECTIONS:
            raise _ConfigKeyError(source, sec, None, f"unknown section (known: {', '.join(sorted(SECTIONS))})")
        if not isinstance(raw[sec], Mapping):
            raise ConfigError(f"{source}: {sec} must be a [section] table")
    built = {sec: _build(cls, raw.get(sec, {}), source, sec) for sec, cls in SECTIONS.items()}
    return Config(source=source, **built)


def replace(obj, **changes):
    """dataclasses.replace that re-validates: the names and types of the changes too (``overrides={"act_bits":
    "16"}`` was a TypeError deep in a check, ``{"actbits": 16}`` dataclasses' own)."""
    import numbers

    known = {f.name: str(getattr(f.type, "__name__", f.type)) for f in fields(obj)}
    kinds = {"int": numbers.Integral, "float": numbers.Real, "bool": bool, "str": str}
    for k, v in changes.items():
        if k not in known:
            raise ConfigError(f"{type(obj).__name__}: unknown field {k!r} (known: {', '.join(known)})")
        kind = kinds.get(known[k])
        if kind is not None and (not isinstance(v, kind) or (known[k] != "bool" and isinstance(v, bool))):
            raise ConfigError(f"{type(obj).__name__}: {k} takes a value of type {known[k]}, got {v!r}")
    new = dataclasses.replace(obj, **changes)
    check = getattr(new, "_check", None)
    if check is not None and check():
        raise ConfigError(_problems(check()))
    return new


TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def parse_fixed_point_overrides(items, option: str = "--set") -> dict:
    """``KNOB=VALUE`` strings (the command line's ``--set``, the lm-eval adapter's ``--model_args``: ``option``) as
    a dict of :class:`FixedPointConfig` fields, each value converted to the field's type; a ValueError names the
    option and the bad item. The values themselves are checked when the config is built (:func:`replace`)."""
    types = {f.name: f.type for f in fields(FixedPointConfig)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep:
            raise ValueError(f"{option} {item!r}: expected KNOB=VALUE")
        if key not in types:
            raise ValueError(f"{option} {item!r}: unknown fixed-point knob {key!r} (known: {', '.join(types)})")
        typ = str(getattr(types[key], "__name__", types[key]))
        try:
            if typ == "bool":
                if text.lower() not in TRUE_WORDS + FALSE_WORDS:
                    raise ValueError
                out[key] = text.lower() in TRUE_WORDS
            else:
                out[key] = {"int": int, "float": float}.get(typ, str)(text)
        except ValueError:
            raise ValueError(f"{option} {item!r}: {key} takes {'an' if typ[0] in 'aeiou' else 'a'} {typ}") from None
    return out
