"""The trained models shipped inside the package (lava_matmulfree/data) and the compiled network a checkpoint
folder may carry: what the command line's ``--model`` / ``--checkpoint`` and the lm-eval adapter's
``pretrained=`` both resolve (docs/architecture.md)."""
from __future__ import annotations

from pathlib import Path

from lava_matmulfree.config import DATA_DIR, HF_CONFIG_FILE, SHIPPED_MODELS
from lava_matmulfree.io.hf_layout import WEIGHTS_FILE

PACKAGED_MODELS = {name: DATA_DIR / folder for name, folder in SHIPPED_MODELS.items()}
DEMO_MODEL_DIR = PACKAGED_MODELS["demo"]  # 3 layers: the default model of the command line
DEEP_MODEL_DIR = PACKAGED_MODELS["deep"]  # 12 layers
MODEL_FILES = (HF_CONFIG_FILE, WEIGHTS_FILE)  # a packaged model is installed when its folder holds these
COMPILED_FILE = "compiled.safetensors"  # a compiled network inside a checkpoint folder is used as is


def is_installed(folder: Path) -> bool:
    """Whether ``folder`` holds a packaged model's config and float weights (the package data may be left out)."""
    return all((folder / f).is_file() for f in MODEL_FILES)


def packaged_model(name: str, folder: Path | None = None) -> Path:
    """The folder of the packaged model ``name`` (a key of :data:`PACKAGED_MODELS`), or ``folder`` where the
    caller keeps its own; a ValueError when the model is not installed there."""
    folder = PACKAGED_MODELS[name] if folder is None else folder
    if not is_installed(folder):
        raise ValueError(f"--model {name}: the packaged model is not installed ({folder} lacks "
                         f"{' or '.join(MODEL_FILES)})")
    return folder
