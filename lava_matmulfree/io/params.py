"""The tensor layout of an HGRN-Bit checkpoint (names and shapes, weights [out, in]) and random weights.

One place for the tensor names: checkpoint I/O, the compiler and the tests all read them from here.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lava_matmulfree.config import ModelConfig, check_values, glu_intermediate_size

LAYER_NORMS = ("attn_norm", "attn.g_norm", "mlp_norm")
ATTN_PROJS = ("i_proj", "f_proj", "g_proj", "o_proj")


EMBED_WEIGHT = "model.embeddings.weight"
HEAD_WEIGHT = "lm_head.weight"  # the LM head's BitLinear (over EMBED_WEIGHT in a tied checkpoint)


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a checkpoint of this config must hold, with its shape."""
    d, I, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_layers
    t: dict[str, tuple[int, ...]] = {EMBED_WEIGHT: (V, d)}
    if cfg.use_lower_bound:
        t["model.lower_bounds"] = (L, d)
    for l in range(L):
        p = f"model.layers.{l}."
        for n in LAYER_NORMS:
            t[p + n + ".weight"] = (d,)
        for n in ATTN_PROJS:
            t[p + f"attn.{n}.weight"] = (d, d)
            t[p + f"attn.{n}.norm.weight"] = (d,)
        t[p + "mlp.gate_proj.weight"] = (2 * I, d)
        t[p + "mlp.gate_proj.norm.weight"] = (d,)
        t[p + "mlp.down_proj.weight"] = (d, I)
        t[p + "mlp.down_proj.norm.weight"] = (I,)
    t["model.norm.weight"] = (d,)
    t[HEAD_WEIGHT] = (V, d)
    t["lm_head.norm.weight"] = (d,)
    return t


def random_params(cfg: ModelConfig, seed: int = 0, dtype=np.float32, std: float = 0.02) -> dict[str, np.ndarray]:
    """Random weights with the shapes and rough statistics of a trained checkpoint.

    Norm gains are 1 + 0.1 N(0,1) (not all ones, so every gain matters in tests); projections N(0, std). A model
    too large for the memory available is refused first (:func:`check_model_memory`)."""
    check_values(cfg, f"model config {cfg.name!r}")
    check_model_memory(cfg, f"model config {cfg.name!r}", "for its random weights",
                       per_param=2 * np.dtype(dtype).itemsize)  # and the float64 draw of one tensor
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_tensors(cfg).items():
        if name.endswith("norm.weight") or name.endswith("_norm.weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name == "model.lower_bounds":
            a = rng.standard_normal(shape)
        elif name == EMBED_WEIGHT:
            a = rng.standard_normal(shape)
        else:
            a = std * rng.standard_normal(shape)
        out[name] = a.astype(dtype)
    return out


# ------------------------------------------------------------------------------------- sizes
#: Peak bytes per parameter while a model is built from its float weights (measured 15.8-17.3 with
#: ``build_evaluation`` from 13M to 168M parameters): the float32 weights (4), the float64 float model (8), the
#: calibration's activations and the compiled network with its packed weights.
BUILD_BYTES_PER_PARAM = 18
#: Bytes per parameter of the float32 weights alone (a checkpoint read into memory).
WEIGHT_BYTES_PER_PARAM = 4
BYTES_PER_LAYER = 64 << 10  # the per-layer Python objects of the float model, the network and their formats
SIZE_KEYS = ("vocab_size", "hidden_size", "num_layers", "intermediate_size")
#: The keys of a Hugging Face config.json that set the ModelConfig fields above
HF_SIZE_KEYS = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
                "intermediate_size": "intermediate_size"}


def param_count(cfg: ModelConfig) -> int:
    """Parameters of a model (the sum over :func:`expected_tensors`, without listing every layer's tensors)."""
    d, I, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_layers
    per_layer = 4 * d * d + 3 * d * I + 8 * d + I  # 4 projections, gate (2I x d), down (d x I) and their norms
    return 2 * V * d + L * per_layer + (L * d if cfg.use_lower_bound else 0) + 2 * d


def model_bytes(cfg: ModelConfig, per_param: int = BUILD_BYTES_PER_PARAM) -> int:
    return param_count(cfg) * per_param + cfg.num_layers * BYTES_PER_LAYER


def check_model_memory(cfg: ModelConfig, source: str, what: str = "to build", per_param: int = BUILD_BYTES_PER_PARAM,
                       hf: bool = False) -> None:
    """Refuse, before any allocation, a model whose weights cannot fit the memory available now: a SizeError
    naming ``source`` (the config file, or a checkpoint's config.json: ``hf`` names its keys) and the size key
    that makes it large (the one whose default value would shrink it most)."""
    from lava_matmulfree.utils.limits import SizeError, available_memory, describe_bytes

    need, have = model_bytes(cfg, per_param), available_memory()
    if need <= have:
        return
    defaults = ModelConfig()
    derived = cfg.intermediate_size == glu_intermediate_size(cfg.hidden_size)  # not set: follows hidden_size

    def without(k):  # the model with key k at its default (an intermediate size that follows d, re-derived)
        changes = {k: getattr(defaults, k)}
        if k == "hidden_size" and derived:
            changes["intermediate_size"] = glu_intermediate_size(defaults.hidden_size)
        return model_bytes(dataclasses.replace(cfg, **changes), per_param)

    shrink = {k: without(k) for k in SIZE_KEYS if getattr(cfg, k) > getattr(defaults, k)}
    key = min(shrink, key=shrink.get) if shrink else max(SIZE_KEYS, key=lambda k: getattr(cfg, k))
    name = HF_SIZE_KEYS[key] if hf else f"[model] {key}"
    sizes = ", ".join(f"{HF_SIZE_KEYS[k] if hf else k} {getattr(cfg, k)}" for k in SIZE_KEYS)
    raise SizeError(f"{source}: {name} = {getattr(cfg, key)} makes a model of {param_count(cfg):.3g} parameters "
                    f"({sizes}) that needs about {describe_bytes(need)} of memory {what}, more than the "
                    f"{describe_bytes(have)} available")
