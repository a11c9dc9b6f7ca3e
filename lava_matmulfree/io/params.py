"""The tensor layout of an HGRN-Bit checkpoint (names and shapes, weights [out, in]) and random weights.

One place for the tensor names: checkpoint I/O, the compiler and the tests all read them from here.
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.config import ModelConfig

LAYER_NORMS = ("attn_norm", "attn.g_norm", "mlp_norm")
ATTN_PROJS = ("i_proj", "f_proj", "g_proj", "o_proj")


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a checkpoint of this config must hold, with its shape."""
    d, I, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_layers
    t: dict[str, tuple[int, ...]] = {"model.embeddings.weight": (V, d)}
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
    t["lm_head.weight"] = (V, d)
    t["lm_head.norm.weight"] = (d,)
    return t


def random_params(cfg: ModelConfig, seed: int = 0, dtype=np.float32, std: float = 0.02) -> dict[str, np.ndarray]:
    """Random weights with the shapes and rough statistics of a trained checkpoint.

    Norm gains are 1 + 0.1 N(0,1) (not all ones, so every gain matters in tests); projections N(0, std)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_tensors(cfg).items():
        if name.endswith("norm.weight") or name.endswith("_norm.weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name == "model.lower_bounds":
            a = rng.standard_normal(shape)
        elif name == "model.embeddings.weight":
            a = rng.standard_normal(shape)
        else:
            a = std * rng.standard_normal(shape)
        out[name] = a.astype(dtype)
    return out
