"""A Hugging Face checkpoint folder's layout (its file names, the config.json keys the model reads) and what a
folder's names resemble when they are not the ones read: a misspelled config.json key, a tensor name misspelled or
saved without the causal LM's ``model.`` prefix, pickled weights instead of safetensors (io/checkpoint.py reads the
folder and words its errors with these)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from lava_matmulfree.config import HF_SHAPE_KEYS
from lava_matmulfree.errors import ConfigError

log = logging.getLogger("lava_matmulfree.io.checkpoint")  # the loader's warnings, under its name

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SHARD_NAME = "model-{index:05d}-of-{count:05d}.safetensors"
SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
HF_NAME_KEY = "_name_or_path"

# The config.json keys ModelConfig.from_hf reads (config.py): a typo in one of them was silently ignored and its
# default used. HF_SHAPE_KEYS are required; the rest have defaults.
READ_HF_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "hidden_ratio",
                "rms_norm_eps", "use_lower_bound", "bos_token_id", "eos_token_id", "num_heads", "expand_ratio",
                "use_short_conv", "hidden_act", "tie_word_embeddings", HF_NAME_KEY)
# Keys Hugging Face config.json files carry that this package does not read: never taken for typos. Any other
# unknown key is left alone too, unless it resembles a key of READ_HF_KEYS that the file lacks.
OTHER_HF_KEYS = frozenset((
    "architectures", "attn_mode", "auto_map", "conv_size", "share_conv_kernel", "max_position_embeddings",
    "use_cache", "pad_token_id", "sep_token_id", "decoder_start_token_id", "initializer_range", "fuse_cross_entropy",
    "torch_dtype", "transformers_version", "rope_theta", "rope_scaling", "num_attention_heads", "num_key_value_heads",
    "head_dim", "layer_norm_eps", "attention_bias", "attention_dropout", "hidden_dropout", "tokenizer_class",
    "quantization_config", "is_encoder_decoder", "output_attentions", "output_hidden_states", "return_dict",
    "id2label", "label2id", "problem_type", "max_length", "hidden_activation"))
# the names this package's own TOML configs use for a config.json key
HF_KEY_ALIASES = {"num_layers": "num_hidden_layers"}
KEY_MATCH_CUTOFF = 0.75  # difflib similarity above which an unknown key is taken for a misspelled known one
TENSOR_MATCH_CUTOFF = 0.9  # and an unread stored tensor name for a misspelled missing one
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MODEL_PREFIX = "model."  # HGRNBitForCausalLM's names of the base model's tensors
_warned_keys: set[tuple[str, str]] = set()  # (file, key): a file read several times by one command warns once


def _resembles(key: str, candidates) -> str | None:
    if key in HF_KEY_ALIASES:
        return HF_KEY_ALIASES[key] if HF_KEY_ALIASES[key] in candidates else None
    return _closest(key.lower(), candidates, KEY_MATCH_CUTOFF)


def _closest(text: str, candidates, cutoff: float) -> str | None:
    """The candidate most like ``text`` by difflib's similarity, if it reaches ``cutoff``."""
    import difflib

    found = difflib.get_close_matches(text, candidates, n=1, cutoff=cutoff)
    return found[0] if found else None


def check_key_spelling(hf: dict, path: Path) -> None:
    """An unknown config.json key that resembles a key the model reads and the file lacks: a misspelled required
    (shape) key is an error naming both; a misspelled optional key a warning naming both (its default is used).
    Other unknown keys are Hugging Face's own business and pass silently."""
    absent = [k for k in READ_HF_KEYS if k not in hf]
    for key in hf:
        if key in READ_HF_KEYS or key in OTHER_HF_KEYS or not isinstance(key, str):
            continue
        known = _resembles(key, absent)
        if known is None:
            continue
        if known in HF_SHAPE_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}, and {known!r} is missing: did you mean {known!r}? (a "
                              f"model's config.json names its shape: {', '.join(HF_SHAPE_KEYS)})")
        if (str(path), key) not in _warned_keys:
            _warned_keys.add((str(path), key))
            log.warning("%s: unknown key %r is ignored: did you mean %r? (without it the default is used)", path,
                        key, known)


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
