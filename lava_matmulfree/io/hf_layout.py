"""A Hugging Face checkpoint folder's layout (its file names) and what a folder's names resemble when they are not
the ones read: a tensor name misspelled or saved without the causal LM's ``model.`` prefix, pickled weights instead
of safetensors (io/checkpoint.py reads the folder and words its errors with these; io/hf_config.py reads config.json
and checks its keys' spelling)."""
from __future__ import annotations

import re
from pathlib import Path

from lava_matmulfree.config import HF_CONFIG_FILE

CONFIG_FILE = HF_CONFIG_FILE
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SHARD_NAME = "model-{index:05d}-of-{count:05d}.safetensors"
SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")

TENSOR_MATCH_CUTOFF = 0.9  # difflib similarity above which an unread stored tensor name is taken for a missing one
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MODEL_PREFIX = "model."  # HGRNBitForCausalLM's names of the base model's tensors


def _closest(text: str, candidates, cutoff: float) -> str | None:
    """The candidate most like ``text`` by difflib's similarity, if it reaches ``cutoff``."""
    import difflib

    found = difflib.get_close_matches(text, candidates, n=1, cutoff=cutoff)
    return found[0] if found else None


def pickle_hint(folder: Path) -> str:
    """What to do with a folder that holds PyTorch's pickled weights only ('' where it holds none)."""
    found = [n for n in PICKLE_WEIGHT_FILES if (folder / n).exists()]
    if not found:
        return ""
    how = ("convert it once, e.g. with torch and safetensors: save_file({k: v.contiguous() for k, v in "
           f"torch.load('{found[0]}', map_location='cpu').items()}}, '{WEIGHTS_FILE}')")
    if found[0] != PICKLE_WEIGHT_FILES[0]:  # sharded
        how = ("convert each shard it names the same way, or re-save the model with transformers' "
               "save_pretrained(folder, safe_serialization=True)")
    return (f"; it holds {found[0]}, PyTorch's pickle format, which is not read here (loading a pickle can run "
            f"code): {how}")


def name_hint(name: str, stored: list) -> str:
    """A name among ``stored`` (those the model does not read) that ``name`` (missing) resembles: the same name
    without the causal LM's 'model.' prefix (weights saved from the base model), or a close spelling ('' where
    none is close)."""
    bare = name.removeprefix(MODEL_PREFIX)
    if bare != name and bare in stored:
        return (f"; the file names its tensors without the '{MODEL_PREFIX}' prefix ({bare!r}): weights saved "
                "from the base model, not the causal LM that holds the head")
    found = _closest(name, stored, TENSOR_MATCH_CUTOFF)
    if found is None:
        return ""
    if re.sub(r"\d+", "#", found) == re.sub(r"\d+", "#", name):  # only a number differs: model.layers.<n>
        return f"; it holds {found!r}, a layer the config does not have: are its layers numbered as the config's?"
    return f"; it holds {found!r}: a misspelling?"
