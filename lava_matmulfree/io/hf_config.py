"""A Hugging Face ``config.json`` read: the :class:`~lava_matmulfree.config.ModelConfig` it names (by
``ModelConfig.from_hf``), its keys' spelling checked against the keys that method reads (docs/reliability.md)."""
from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from lava_matmulfree.config import HF_NAME_KEY, HF_SHAPE_KEYS, ModelConfig
from lava_matmulfree.errors import ConfigError

log = logging.getLogger(__name__)

# Every config.json key ModelConfig.from_hf reads: a typo in one of them was silently ignored and its default used.
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
HF_KEY_ALIASES = {"num_layers": "num_hidden_layers"}  # this package's TOML names for a config.json key
KEY_MATCH_CUTOFF = 0.75  # difflib similarity above which an unknown key is taken for a misspelled known one
_warned_keys: set[tuple[str, str]] = set()  # (file, key): a file read several times by one command warns once


def read_hf_config(path: str | Path) -> tuple[ModelConfig, dict]:
    """(the :class:`ModelConfig`, the JSON object) of a Hugging Face ``config.json``: what a checkpoint folder,
    a shipped model and ``estimate --config`` read, its keys' spelling checked (:func:`check_hf_key_spelling`)."""
    try:
        hf = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(hf, dict):
        raise ConfigError(f"{path}: must hold a JSON object, got {type(hf).__name__}")
    if hf.get("model_type") == "hgrn_bit":  # another model's config is refused by from_hf, whatever its keys
        check_hf_key_spelling(hf, path)
    return ModelConfig.from_hf(hf, source=str(path)), hf


def check_hf_key_spelling(hf: Mapping[str, Any], path) -> None:
    """An unknown config.json key that resembles a key the model reads and the file lacks: a misspelled required
    (shape) key is an error naming both; a misspelled optional key a warning naming both (its default is used).
    Other unknown keys are Hugging Face's own business and pass silently."""
    absent = [k for k in READ_HF_KEYS if k not in hf]
    for key in hf:
        if key in READ_HF_KEYS or key in OTHER_HF_KEYS or not isinstance(key, str):
            continue
        if key in HF_KEY_ALIASES:
            known = HF_KEY_ALIASES[key] if HF_KEY_ALIASES[key] in absent else None
        else:
            known = next(iter(difflib.get_close_matches(key.lower(), absent, n=1, cutoff=KEY_MATCH_CUTOFF)), None)
        if known is None:
            continue
        if known in HF_SHAPE_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}, and {known!r} is missing: did you mean {known!r}? (a "
                              f"model's config.json names its shape: {', '.join(HF_SHAPE_KEYS)})")
        if (str(path), key) not in _warned_keys:
            _warned_keys.add((str(path), key))
            log.warning("%s: unknown key %r is ignored: did you mean %r? (without it the default is used)", path,
                        key, known)
