"""Shared fixtures: the tiny config, its seeded random weights and a checkpoint folder written from them."""
from __future__ import annotations

import numpy as np
import pytest

from lava_matmulfree.io.checkpoint import save_checkpoint
from lava_matmulfree.config import ModelConfig, load_config
from lava_matmulfree.io.params import random_params

PARAMS_SEED = 1234


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    """configs/tiny.toml: 3 layers, d=72, I=200, the 259-token byte vocabulary."""
    return load_config("tiny").model


@pytest.fixture(scope="session")
def _tiny_params_session(tiny_cfg) -> dict[str, np.ndarray]:
    return random_params(tiny_cfg, seed=PARAMS_SEED)


@pytest.fixture
def tiny_params(_tiny_params_session) -> dict[str, np.ndarray]:
    """Seeded random float32 weights of the tiny config (a fresh copy per test, so tests may modify it)."""
    return {k: v.copy() for k, v in _tiny_params_session.items()}


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_cfg, tiny_params):
    """A float32 single-file Hugging Face checkpoint folder of the tiny model."""
    folder = tmp_path / "tiny-ckpt"
    save_checkpoint(folder, tiny_cfg, tiny_params)
    return folder
