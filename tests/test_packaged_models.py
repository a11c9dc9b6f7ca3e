"""The packaged trained models (lava_matmulfree/data/demo_model, deep_model): complete, their compiled networks
made from their own weights, and the Lava graph gives the golden model's text on them."""
from __future__ import annotations

import json

import pytest

from lava_matmulfree.io.checkpoint import fingerprint, load_checkpoint
from lava_matmulfree.cli import main
from lava_matmulfree.io.packaged import DEEP_MODEL_DIR, DEMO_MODEL_DIR
from lava_matmulfree.model.quantise import QuantisedNetwork

MODELS = {"demo": DEMO_MODEL_DIR, "deep": DEEP_MODEL_DIR}


@pytest.mark.parametrize("name", list(MODELS))
def test_a_packaged_model_ships_whole(name):
    folder = MODELS[name]
    for f in ("config.json", "model.safetensors", "compiled.safetensors", "training.json"):
        assert (folder / f).is_file(), f
    net = QuantisedNetwork.load(folder / "compiled.safetensors")
    assert net.fingerprint == fingerprint(*load_checkpoint(folder))  # compiled from these very weights
    training = json.loads((folder / "training.json").read_text())
    assert "command" in training and "split" in training


@pytest.mark.uses_demo
@pytest.mark.lava
@pytest.mark.timeout(300)
def test_the_deep_model_generates_the_golden_text_through_lava(capsys):
    args = ["generate", "--model", "deep", "--prompt", "A class", "--max-new-tokens", "12", "--temperature", "0"]
    assert main(args + ["--backend", "reference"]) == 0
    ref = capsys.readouterr().out
    assert main(args + ["--backend", "sim-fused"]) == 0
    assert capsys.readouterr().out == ref and len(ref) > len("A class")
