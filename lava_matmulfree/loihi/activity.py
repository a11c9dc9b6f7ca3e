"""A measured activity profile for the cost model (docs/activity.md): how often each connection's input is a
non-zero graded spike, per connection type and layer, as ``lava-matmulfree profile`` writes it.

:func:`load_activity` reads and validates a profile file (every error one line naming the file and the key);
:meth:`ActivityProfile.density` is what :mod:`.cost_model` multiplies a connection's messages and synaptic
operations by, instead of the one scalar ``MappingOptions.activation_density`` (docs/activity.md, "How they map").
:func:`default_activity` says which profile stands in for a config: a shipped model's own measured profile
when the config has its shape; otherwise (the 370M, which has no trained weights) the deep model's per-type
averages, shown beside the dense assumption but not used for the headline figures.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from lava_matmulfree.config import DATA_DIR, HF_CONFIG_FILE, SHIPPED_MODELS, load_config
from lava_matmulfree.io.hf_config import read_hf_config
from lava_matmulfree.loihi.hardware import CostModelError

FORMAT = "lava-matmulfree activity profile 1"
#: the ternary connections of a layer (the mapping's MatrixMap names) and of the head
LAYER_CONNECTIONS = ("i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj")
HEAD_CONNECTION = "lm_head"
CONNECTION_KEYS = ("density", "spikes_per_token", "bits_per_token", "synops_per_token", "inputs",
                   "weight_nonzero_fraction")
FRACTIONS = ("density", "weight_nonzero_fraction")
#: the shipped models (config.SHIPPED_MODELS, in config.DATA_DIR); their profiles are written by the profile command
SHIPPED = SHIPPED_MODELS
STAND_IN = "deep"  # the 370M's stand-in: the deepest trained model's per-type averages
PROFILE_FILE = "activity.json"
DENSE = ("", "dense", "none")  # activity values that mean the dense assumption (activation_density)
#: the fewest tokens a profile the cost model takes was measured over: at 64 tokens every per-layer density of the
#: shipped deep model is within 6% of its 256-token profile, at 32 within 13% (docs/activity.md, section 4)
MIN_PROFILE_TOKENS = 64
# how a profile is labelled where it is used (docs/activity.md, section 4)
OWN, STAND_IN_LABEL = "measured", "stand-in"
DENSE_ACTIVITY = "dense assumption"  # a deployment's activity label without a profile


class ActivityProfile:
    """A validated profile. ``connections`` are the per-type averages over layers; ``layers`` one entry per
    layer (used when the model has as many layers); ``head`` the LM head's connection."""

    def __init__(self, raw: Mapping[str, Any], path: str = "<dict>"):
        self.path = str(path)
        self.raw = dict(raw)
        self.model = raw["model"]
        self.source = raw["source"]
        self.tokens = int(raw["tokens"])
        self.act_bits = int(raw["act_bits"])
        self.connections: dict[str, dict] = dict(raw["connections"])
        self.layers: list[dict] = list(raw.get("layers") or [])
        # the layers it was measured on (kept when averaged() drops the per-layer entries)
        self.measured_layers = int(raw.get("measured_layers", len(self.layers)))
        head = (raw.get("head") or {}).get("connections", {})
        if HEAD_CONNECTION in head:
            self.connections.setdefault(HEAD_CONNECTION, head[HEAD_CONNECTION])
            self.head = head[HEAD_CONNECTION]
        else:
            self.head = self.connections.get(HEAD_CONNECTION)

    @property
    def description(self) -> str:
        """The file, the model and the text it was measured on, and its spike width."""
        return (f"{self.path} (model {self.model}, {self.tokens} tokens of {self.source}, {self.act_bits}-bit "
                f"spikes)")

    def per_layer(self, num_layers: int) -> bool:
        """Whether the per-layer densities apply (the profile has exactly the model's layers)."""
        return len(self.layers) == num_layers

    def density(self, name: str, layer: int, num_layers: int) -> float:
        """The measured fraction of ``name``'s input messages that are non-zero graded spikes in ``layer``:
        per layer when the profile has ``num_layers`` layers, else the per-type average."""
        if name == HEAD_CONNECTION:
            if self.head is None:
                raise CostModelError(f"{self.path}: head.connections.lm_head: missing (the LM head is on chip)")
            return float(self.head["density"])
        if self.per_layer(num_layers) and 0 <= layer < num_layers:
            return float(self.layers[layer]["connections"][name]["density"])
        return float(self.connections[name]["density"])

    def weight_nonzero(self) -> dict[str, float]:
        return {k: float(v.get("weight_nonzero_fraction", math.nan)) for k, v in self.connections.items()}

    def averaged(self) -> "ActivityProfile":
        """The same profile with the per-layer entries dropped (what stands in for another model)."""
        raw = {**self.raw, "layers": [], "measured_layers": self.measured_layers}
        return ActivityProfile(raw, self.path + " (per-type averages)")

    @property
    def shape(self) -> tuple[int | None, int, int | None]:
        """(d, layers, I) of the model it was measured on: d and I are the inputs of i_proj and down_proj (None
        where the profile does not say)."""
        def inputs(name):
            v = self.connections.get(name, {}).get("inputs")
            return None if v is None else int(v)
        return inputs("i_proj"), self.measured_layers, inputs("down_proj")

    def of_model(self, cfg) -> bool:
        """Whether it was measured on a model of ``cfg``'s shape (d, layers, I), rather than standing in."""
        return self.shape == (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size)

    def caveats(self, cfg, act_bits: int) -> list[str]:
        """What differs between the profile and a deployment of ``cfg`` with ``act_bits``-bit spikes: another
        model's shape, another spike width (the share of zero spikes falls as the spikes widen)."""
        out = []
        if not self.of_model(cfg):
            d, layers, i = self.shape
            out.append(f"measured on another model ({self.model.split(' (')[0]}: d {d}, {layers} layers, I {i})")
        if self.act_bits != act_bits:
            out.append(f"{self.act_bits}-bit spikes measured, {act_bits}-bit spikes costed")
        return out

    def densities(self, name: str, num_layers: int) -> dict[str, Any]:
        """``name``'s density over a model of ``num_layers`` layers (mean, min, max), whether per layer, and the
        non-zero fraction of its weights."""
        L = num_layers
        per = [self.density(name, l, L) for l in range(L)] if name != HEAD_CONNECTION else [self.density(name, L, L)]
        return {"mean": sum(per) / len(per), "min": min(per), "max": max(per),
                "per_layer": self.per_layer(L) and name != HEAD_CONNECTION,
                "weight_nonzero_fraction": self.weight_nonzero().get(name)}

    def kind(self, cfg) -> str:
        """'measured' for a profile of ``cfg``'s shape, 'stand-in' for another model's."""
        return OWN if self.of_model(cfg) else STAND_IN_LABEL

    def label(self, cfg, act_bits: int) -> str:
        """The label of the profile where it costs a deployment of ``cfg`` with ``act_bits``-bit spikes: its
        :meth:`kind`, with the :meth:`caveats`: 'stand-in profile (... 8-bit spikes measured, 16-bit spikes
        costed)'."""
        caveats = self.caveats(cfg, act_bits)
        return f"{self.kind(cfg)} profile" + (f" ({'; '.join(caveats)})" if caveats else "")


def activity_label(prof: ActivityProfile | None, cfg, act_bits: int) -> str:
    """How a deployment's activity is labelled wherever it is used (the report, the verdict, Lava's profiler;
    docs/activity.md, section 4): the dense assumption, or the profile's :meth:`ActivityProfile.label`."""
    return DENSE_ACTIVITY if prof is None else prof.label(cfg, act_bits)


def _number(v, where: str, lo: float = 0.0, hi: float = math.inf) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi or v != v:
        bound = f"in [{lo:g}, {hi:g}]" if hi != math.inf else f">= {lo:g}"
        raise CostModelError(f"{where}: must be a number {bound}, got {v!r}")


def _connections(conns, where: str, required) -> None:
    if not isinstance(conns, Mapping):
        raise CostModelError(f"{where}: must be an object of connections, got {type(conns).__name__}")
    for name in required:
        if name not in conns:
            raise CostModelError(f"{where}.{name}: missing (need {', '.join(required)})")
    for name, entry in conns.items():
        if name not in LAYER_CONNECTIONS and name != HEAD_CONNECTION:
            raise CostModelError(f"{where}.{name}: unknown connection (known: "
                                 f"{', '.join(LAYER_CONNECTIONS + (HEAD_CONNECTION,))})")
        if not isinstance(entry, Mapping):
            raise CostModelError(f"{where}.{name}: must be an object, got {type(entry).__name__}")
        if "density" not in entry:
            raise CostModelError(f"{where}.{name}.density: missing")
        for k, v in entry.items():
            if k in CONNECTION_KEYS:
                _number(v, f"{where}.{name}.{k}", 0.0, 1.0 if k in FRACTIONS else math.inf)


def validate(raw, path: str = "<dict>") -> ActivityProfile:
    """Check a parsed profile against the format (docs/activity.md); a CostModelError names file and key."""
    if not isinstance(raw, Mapping):
        raise CostModelError(f"{path}: an activity profile is a JSON object, got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise CostModelError(f"{path}: format: expected {FORMAT!r}, got {raw.get('format')!r}")
    for k in ("model", "source"):
        if not isinstance(raw.get(k), str):
            raise CostModelError(f"{path}: {k}: must be a string, got {raw.get(k)!r}")
    for k in ("tokens", "act_bits"):
        v = raw.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CostModelError(f"{path}: {k}: must be an integer >= 1, got {v!r}")
    if raw["tokens"] < MIN_PROFILE_TOKENS:
        raise CostModelError(f"{path}: tokens: {raw['tokens']} measured, fewer than the {MIN_PROFILE_TOKENS} a "
                             f"profile needs to stand for the model's activity (docs/activity.md, section 4)")
    _connections(raw.get("connections"), f"{path}: connections", LAYER_CONNECTIONS)
    layers = raw.get("layers", [])
    if not isinstance(layers, list):
        raise CostModelError(f"{path}: layers: must be a list, got {type(layers).__name__}")
    for i, lay in enumerate(layers):
        if not isinstance(lay, Mapping) or lay.get("layer") != i:
            raise CostModelError(f"{path}: layers[{i}].layer: must be {i} (layers in order)")
        _connections(lay.get("connections"), f"{path}: layers[{i}].connections", LAYER_CONNECTIONS)
    head = raw.get("head")
    if head is not None:
        if not isinstance(head, Mapping):
            raise CostModelError(f"{path}: head: must be an object, got {type(head).__name__}")
        _connections(head.get("connections", {}), f"{path}: head.connections", ())
    return ActivityProfile(raw, path)


_CACHE: dict[tuple[str, float], ActivityProfile] = {}


def load_activity(path: str | Path) -> ActivityProfile:
    """Read and validate a profile file (cached by path and modification time)."""
    p = Path(path)
    if not p.is_file():
        raise CostModelError(f"{p}: no such activity profile (write one with `lava-matmulfree profile`)")
    key = (str(p.resolve()), p.stat().st_mtime)
    if key not in _CACHE:
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CostModelError(f"{p}: not a JSON activity profile ({e})") from None
        _CACHE[key] = validate(raw, str(p))
    return _CACHE[key]


def resolve_activity(activity) -> ActivityProfile | None:
    """A MappingOptions.activity value as a profile: None / '' / 'dense' -> None (the scalar
    activation_density), a path -> its profile, a profile or a parsed dict as is."""
    if activity is None or isinstance(activity, ActivityProfile):
        return activity
    if isinstance(activity, Mapping):
        return validate(activity)
    if isinstance(activity, (str, Path)):
        return None if str(activity).lower() in DENSE else load_activity(activity)
    raise CostModelError(f"activity must be a profile file, 'dense' or None, got {type(activity).__name__}")


def model_config(name_or_path, data_dir: Path | None = None):
    """The model config of ``estimate --config``: a shipped model's name ('demo', 'deep': its config.json, so
    its measured profile is the default), a checkpoint folder or its config.json (:func:`hf_config_file`), else
    a config name or TOML (``config.load_config``)."""
    if str(name_or_path) in SHIPPED:
        conf = (data_dir or DATA_DIR) / SHIPPED[str(name_or_path)] / HF_CONFIG_FILE
        if not conf.is_file():
            raise CostModelError(f"{conf}: the shipped {name_or_path} model is not installed")
        return read_hf_config(conf)[0]
    conf = hf_config_file(name_or_path)
    if conf is not None:
        return read_hf_config(conf)[0]
    return load_config(name_or_path, require="model").model


def hf_config_file(name_or_path) -> Path | None:
    """The Hugging Face config.json ``estimate --config`` was given: a checkpoint folder's, or the file itself
    (None for a config name or TOML)."""
    p = Path(name_or_path)
    if p.is_dir() and (p / HF_CONFIG_FILE).is_file():
        return p / HF_CONFIG_FILE
    return p if p.suffix == ".json" and p.is_file() else None


def shipped_profile_path(name: str, data_dir: Path | None = None) -> Path:
    return (data_dir or DATA_DIR) / SHIPPED[name] / PROFILE_FILE


def _shape(d: Mapping) -> tuple:
    return (d.get("hidden_size"), d.get("num_hidden_layers", d.get("num_layers")), d.get("intermediate_size"),
            d.get("vocab_size"))


def default_activity(cfg, data_dir: Path | None = None) -> tuple[ActivityProfile | None, str, bool]:
    """(profile, why, is_headline) for ``cfg`` when no profile is given (docs/activity.md, "Which profile").

    A config with a shipped model's shape: that model's measured profile, used for the headline figures. Any
    other config (the 370M has no trained weights): the deep model's per-type averages as a stand-in, shown
    beside the dense assumption but not the headline (the paper's anchors and the calibration are dense).
    (None, why, False) when no profile file exists yet."""
    shape = (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.vocab_size)
    for name, folder in SHIPPED.items():
        conf = (data_dir or DATA_DIR) / folder / HF_CONFIG_FILE
        if conf.is_file() and _shape(json.loads(conf.read_text(encoding="utf-8"))) == shape:
            p = shipped_profile_path(name, data_dir)
            if p.is_file():
                return load_activity(p), f"the {name} model's measured profile ({p})", True
            return None, f"the {name} model has no profile yet ({p}: run `lava-matmulfree profile`)", False
    p = shipped_profile_path(STAND_IN, data_dir)
    if p.is_file():
        return (load_activity(p).averaged(),
                f"no trained weights for this config: the {STAND_IN} model's per-type averages stand in "
                f"({p}); replace with --activity", False)
    return None, f"no profile: the {STAND_IN} model's ({p}) is written by `lava-matmulfree profile`", False


def choose_activity(arg, cfg, act_bits: int | None = None) -> tuple[ActivityProfile | None, ActivityProfile | None,
                                                                   str]:
    """(headline profile, profile shown beside the dense assumption, why) of ``estimate --activity ARG``: a given
    profile is the headline; 'auto' takes :func:`default_activity` (a shipped model's own profile is its headline
    where the deployment sends spikes of the profile's width, ``act_bits``: wider spikes are nearly all non-zero,
    docs/activity.md, section 5; the 370M's stand-in is only shown beside); 'dense' keeps the headline dense with
    the default profile beside."""
    if isinstance(arg, str) and arg.lower() in DENSE + ("auto",):
        prof, why, is_headline = default_activity(cfg)
        if arg.lower() == "auto" and is_headline and act_bits not in (None, prof.act_bits):
            return None, prof, (f"headline on the dense assumption: the preset sends {act_bits}-bit spikes, and "
                                f"densities measured at {prof.act_bits} bits do not hold for them (docs/activity.md, "
                                f"section 5); beside it: {why}")
        if arg.lower() == "auto" and is_headline:
            return prof, None, why
        return None, prof, ("dense assumption (--activity dense); beside it: " if arg.lower() != "auto" else
                            "headline on the dense assumption; beside it: ") + why
    prof = resolve_activity(arg)
    why = f"given: {prof.description}"
    if not prof.of_model(cfg):
        d, layers, i = prof.shape
        why += (f"; a profile of another model (d {d}, {layers} layers, I {i}; this one d {cfg.hidden_size}, "
                f"{cfg.num_layers} layers, I {cfg.intermediate_size}): a stand-in")
    if prof.layers and not prof.per_layer(cfg.num_layers):
        why += (f"; measured on {len(prof.layers)} layers, this model has {cfg.num_layers}: its per-type averages "
                "over layers apply, not its per-layer densities")
    return prof, None, why
