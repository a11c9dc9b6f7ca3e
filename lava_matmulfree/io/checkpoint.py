"""Hugging Face HGRN-Bit checkpoint folders: read (and, for tests and tools, write) without torch.

A folder holds ``config.json`` (model_type ``hgrn_bit``) and the weights, either one ``model.safetensors``
or shards listed by ``model.safetensors.index.json`` (``weight_map``: tensor name -> shard file). Tensors
may be stored as float32, float16, bfloat16 (or float64); they are returned as float32 numpy arrays.

numpy has no bfloat16, and safetensors' numpy reader refuses it without the optional ``ml_dtypes``
package, so bfloat16 tensors are read as raw little-endian 16-bit words through ``safetensors.deserialize``
and widened exactly: a bfloat16 is the high half of the float32 with the same value, so ``bits << 16``.
Writing narrows float32 to bfloat16 with round-to-nearest-even (NaN kept NaN).

Every tensor of :func:`lava_matmulfree.io.params.expected_tensors` must be present with its shape, a float
dtype and finite values, else :class:`CheckpointError` names the tensor and the file. A tensor the model does
not use is refused by :func:`load_checkpoint` (naming it and the file); :func:`read_checkpoint` returns their
names. A config.json whose model could not fit the memory available is refused before any tensor is read.
With ``tie_word_embeddings`` true the LM head's BitLinear reads the embedding matrix (``lm_head.weight`` need not
be stored; a stored one must equal it), as ``HGRNBitForCausalLM`` ties them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from lava_matmulfree.config import HF_NAME_KEY, ModelConfig
from lava_matmulfree.io.hf_config import read_hf_config
from lava_matmulfree.errors import CheckpointError, ConfigError
from lava_matmulfree.io.hf_layout import (CONFIG_FILE, INDEX_FILE, SHARD_NAME, SHARD_PATTERN,  # noqa: F401
                                          WEIGHTS_FILE, name_hint, pickle_hint)
from lava_matmulfree.io.params import (EMBED_WEIGHT, HEAD_WEIGHT, WEIGHT_BYTES_PER_PARAM, check_model_memory,
                                       expected_tensors)

# The header metadata transformers expects of a PyTorch-layout safetensors file.
HEADER_METADATA = {"format": "pt"}

# safetensors dtype code -> numpy dtype, for the codes numpy reads natively
NUMPY_FLOAT_CODES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2")}
BF16_CODE = "BF16"
FLOAT_CODES = tuple(NUMPY_FLOAT_CODES) + (BF16_CODE,)

# save dtype name -> (safetensors TensorSpec dtype, numpy storage dtype)
SAVE_DTYPES = {
    "float32": ("float32", np.dtype("<f4")),
    "float16": ("float16", np.dtype("<f2")),
    "bfloat16": ("bfloat16", np.dtype("<u2")),
}

# bfloat16 is the high half of a float32: sign, 8 exponent bits, 7 mantissa bits.
BF16_SHIFT = 16
BF16_ROUND_BIAS = 0x7FFF  # added (plus the kept lowest bit) before truncation: round to nearest even
BF16_QUIET_NAN = 0x7FC0
BF16_SIGN = 0x8000

MAX_NAMES_IN_MESSAGE = 5  # how many unexpected tensor names a log message lists


# ------------------------------------------------------------------------------------- bfloat16 codec
def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Exact widening of bfloat16 words (uint16) to float32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << BF16_SHIFT).view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Narrow float32 to bfloat16 words (uint16), round to nearest, ties to even; NaN stays NaN."""
    x = np.asarray(x, dtype=np.float32, order="C")
    u = x.view(np.uint32).astype(np.uint64)  # room for the carry of the rounding bias
    lsb = (u >> BF16_SHIFT) & 1
    out = ((u + BF16_ROUND_BIAS + lsb) >> BF16_SHIFT).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        sign = ((u >> BF16_SHIFT).astype(np.uint16) & BF16_SIGN)
        out = np.where(nan, sign | BF16_QUIET_NAN, out).astype(np.uint16)
    return out


# ------------------------------------------------------------------------------------- reading
@dataclass
class LoadedCheckpoint:
    """What :func:`read_checkpoint` found: the config, the float32 tensors the model uses, and the rest."""

    config: ModelConfig
    params: dict[str, np.ndarray]
    unexpected: list[str] = field(default_factory=list)  # stored tensors the model does not use (ignored)
    files: list[str] = field(default_factory=list)  # weight files read, in order
    dtypes: dict[str, str] = field(default_factory=dict)  # tensor name -> stored safetensors dtype code


def present(path: Path) -> bool:
    """Whether ``path`` is a regular file (through symlinks); False when nothing is there. Something else there
    (a folder, a dangling link, a symlink loop, a device) is a CheckpointError naming it: it is not missing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise CheckpointError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist") from None
        return False
    except OSError as e:  # ELOOP (a symlink loop), EACCES, ENAMETOOLONG ...
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: is not a regular file")
    return True


def read_config_json(folder: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` of a checkpoint folder's ``config.json``."""
    return _config_json(folder)[0]


def _config_json(folder: str | Path) -> tuple[ModelConfig, dict]:
    """(:func:`read_config_json`'s config, the file's JSON object: the keys the config does not keep)."""
    path = Path(folder) / CONFIG_FILE
    if not present(path):
        raise CheckpointError(f"{path}: not found (a Hugging Face checkpoint folder needs {CONFIG_FILE})")
    return read_hf_config(path)


def _read_index(folder: Path) -> dict[str, str]:
    """tensor name -> shard file name, from the index file."""
    path = folder / INDEX_FILE
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict):
        raise CheckpointError(f"{path}: needs a 'weight_map' object (tensor name -> shard file)")
    for name, shard in wm.items():
        if not isinstance(shard, str) or Path(shard).name != shard or not shard:
            raise CheckpointError(f"{path}: weight_map[{name!r}] must be a file name in the same folder, "
                                  f"got {shard!r}")
    return dict(wm)


def _open(path: Path):
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="numpy")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None


def _bf16_tensors(path: Path, names: set[str]) -> dict[str, np.ndarray]:
    """The named bfloat16 tensors of one file, widened to float32, via safetensors' raw-bytes API."""
    from safetensors import SafetensorError, deserialize

    try:
        raw = deserialize(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None
    out = {}
    while raw:  # pop as we go so the raw copies are freed one by one
        name, view = raw.pop()
        if name in names:
            bits = np.frombuffer(view["data"], dtype="<u2").reshape(view["shape"])
            out[name] = bf16_bits_to_float32(bits)
    return out


def _describe(cfg: ModelConfig) -> str:
    return (f"{cfg.num_layers} layers, hidden_size={cfg.hidden_size}, intermediate_size={cfg.intermediate_size}, "
            f"vocab_size={cfg.vocab_size}")


def read_checkpoint(folder: str | Path) -> LoadedCheckpoint:
    """Read and validate a Hugging Face HGRN-Bit checkpoint folder (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    cfg, hf = _config_json(folder)
    check_model_memory(cfg, str(folder / CONFIG_FILE), "to read its weights", per_param=WEIGHT_BYTES_PER_PARAM,
                       hf=True)
    want = expected_tensors(cfg)
    # HGRNBitForCausalLM ties its head's BitLinear to the embedding matrix: a stored copy must be the same
    tied = hf.get("tie_word_embeddings", False)  # a bool: ModelConfig.from_hf checked it

    # where each stored tensor lives
    if present(folder / WEIGHTS_FILE):
        files = [WEIGHTS_FILE]
        with _open(folder / WEIGHTS_FILE) as f:
            location = {name: WEIGHTS_FILE for name in f.keys()}
        listing = folder / WEIGHTS_FILE
    elif present(folder / INDEX_FILE):
        location = _read_index(folder)
        files = sorted(set(location.values()))
        for shard in files:
            if not present(folder / shard):
                raise CheckpointError(f"{folder / shard}: shard named in {INDEX_FILE} is missing")
        listing = folder / INDEX_FILE
    else:
        raise CheckpointError(f"{folder}: holds neither {WEIGHTS_FILE} nor {INDEX_FILE}{pickle_hint(folder)}")
    if tied and HEAD_WEIGHT not in location:
        del want[HEAD_WEIGHT]

    missing = [n for n in want if n not in location]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{listing}: missing tensor {missing[0]!r}{more}, needed by a model of "
                              f"{_describe(cfg)}{name_hint(missing[0], [n for n in location if n not in want])}")
    unexpected = sorted(n for n in location if n not in want)

    # headers first (dtype, shape), so a bad tensor is reported before any large read
    params: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for fname in files:
        path = folder / fname
        names = [n for n in want if location[n] == fname]
        if not names:
            continue
        with _open(path) as f:
            stored = set(f.keys())
            for n in names:
                if n not in stored:
                    raise CheckpointError(f"{path}: lacks tensor {n!r} that {INDEX_FILE} places there")
                sl = f.get_slice(n)
                code, shape = sl.get_dtype(), tuple(sl.get_shape())
                if code not in FLOAT_CODES:
                    raise CheckpointError(f"{path}: tensor {n!r} has dtype {code}, expected a float dtype "
                                          f"({', '.join(FLOAT_CODES)})")
                if shape != want[n]:
                    raise CheckpointError(f"{path}: tensor {n!r} has shape {shape}, expected {want[n]} for a "
                                          f"model of {_describe(cfg)}")
                dtypes[n] = code
            for n in names:
                if dtypes[n] in NUMPY_FLOAT_CODES:
                    params[n] = np.asarray(f.get_tensor(n), dtype=np.float32)
        bf16 = {n for n in names if dtypes[n] == BF16_CODE}
        if bf16:
            params.update(_bf16_tensors(path, bf16))
        for n in names:
            a = params[n]
            if not a.flags.writeable:
                a = params[n] = a.copy()
            bad = ~np.isfinite(a)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise CheckpointError(f"{path}: tensor {n!r} holds {int(bad.sum())} non-finite value(s) "
                                      f"(NaN or Inf), the first at index {first}")

    if tied and HEAD_WEIGHT not in params:
        params[HEAD_WEIGHT], dtypes[HEAD_WEIGHT] = params[EMBED_WEIGHT].copy(), dtypes[EMBED_WEIGHT]
    elif tied and not np.array_equal(params[HEAD_WEIGHT], params[EMBED_WEIGHT]):
        raise CheckpointError(f"{listing}: {HEAD_WEIGHT!r} differs from {EMBED_WEIGHT!r}, which config.json ties it "
                              "to (tie_word_embeddings=true): store one, or set tie_word_embeddings to false")
    params = {n: params[n] for n in expected_tensors(cfg)}  # the canonical order
    return LoadedCheckpoint(cfg, params, unexpected, files, dtypes)


def load_checkpoint(folder: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """(config, float32 tensors) of a Hugging Face HGRN-Bit checkpoint folder.

    A tensor the model does not use is refused, as compiled files refuse theirs: an HGRN-Bit checkpoint holds
    exactly :func:`expected_tensors`, and weights silently dropped (a short convolution, a bias of another
    variant) would make the model compute something else than the checkpoint. :func:`read_checkpoint` lists
    them instead (``unexpected``), for tools that inspect such folders."""
    ck = read_checkpoint(folder)
    if ck.unexpected:
        shown = ", ".join(repr(n) for n in ck.unexpected[:MAX_NAMES_IN_MESSAGE])
        extra = len(ck.unexpected) - MAX_NAMES_IN_MESSAGE
        more = f" and {extra} more" if extra > 0 else ""
        where = ck.files[0] if len(ck.files) == 1 else INDEX_FILE
        raise CheckpointError(f"{Path(folder) / where}: {len(ck.unexpected)} tensor(s) that an HGRN-Bit model of "
                              f"{_describe(ck.config)} does not have: {shown}{more} (another architecture or "
                              f"variant? its weights would be ignored)")
    return ck.config, ck.params


def fingerprint(cfg: ModelConfig, params: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of what a model computes: its architecture fields and every tensor (name, shape, float32
    bytes). A compiled network stores the fingerprint of the checkpoint it came from, so one copied next to
    another checkpoint is recognised (docs/reliability.md)."""
    h = hashlib.sha256()
    arch = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "name"}  # a display name changes nothing
    h.update(json.dumps(arch, sort_keys=True).encode())
    for n in sorted(params):
        a = np.ascontiguousarray(params[n], dtype="<f4")
        h.update(f"{n}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def has_float_weights(folder: str | Path) -> bool:
    """Whether ``folder`` is a checkpoint folder with float weights (model.safetensors, or its shards' index)."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / f).is_file() for f in (WEIGHTS_FILE, INDEX_FILE))


def compiled_mismatch(compiled_fingerprint: str | None, folder: str | Path) -> str | None:
    """Why a compiled network found in the checkpoint ``folder`` is not that folder's (None where it is, or where
    the folder holds no float weights to compare): one left from other weights (`train --overwrite`, a copy)
    would otherwise be run or scored in their place."""
    if not has_float_weights(folder):
        return None
    if compiled_fingerprint and compiled_fingerprint == fingerprint(*load_checkpoint(folder)):
        return None
    return ("carries no fingerprint of the weights it was compiled from" if not compiled_fingerprint
            else f"was compiled from other weights than those in {folder}")


# ------------------------------------------------------------------------------------- writing
def _encode(name: str, value, dtype: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise CheckpointError(f"tensor {name!r} has dtype {a.dtype}, only float tensors can be saved")
    if dtype == "bfloat16":
        out = float32_to_bf16_bits(a)
        widened = bf16_bits_to_float32(out)
    else:
        with np.errstate(over="ignore"):
            out = np.asarray(a, dtype=SAVE_DTYPES[dtype][1], order="C")
        widened = out
    overflow = np.isinf(widened) & np.isfinite(a)
    if overflow.any():
        raise CheckpointError(f"tensor {name!r} holds values beyond the {dtype} range (e.g. "
                              f"{float(a[overflow].flat[0])})")
    return out


def save_checkpoint(folder: str | Path, cfg: ModelConfig, params: Mapping[str, np.ndarray],
                    dtype: str = "float32", max_shard_bytes: int | None = None, check: bool = True) -> list[Path]:
    """Write a Hugging Face checkpoint folder: ``config.json`` (``cfg.to_hf()``) and the weights.

    All tensors go into one ``model.safetensors`` unless ``max_shard_bytes`` splits them (tensors packed in
    order, a tensor larger than the limit alone in its shard) into ``model-0000i-of-0000n.safetensors`` plus
    ``model.safetensors.index.json``. Weight files of an earlier save into the same folder are removed.
    With ``check`` the tensors must match ``expected_tensors(cfg)`` by name and shape (extras allowed);
    tests pass ``check=False`` to write deliberately broken checkpoints. Returns the files written."""
    from safetensors import TensorSpec, serialize_file

    if dtype not in SAVE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(SAVE_DTYPES)}, got {dtype!r}")
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    if check:
        for n, shape in expected_tensors(cfg).items():
            if n not in params:
                raise CheckpointError(f"cannot save: tensor {n!r} is missing for a model of {_describe(cfg)}")
            if tuple(np.shape(params[n])) != shape:
                raise CheckpointError(f"cannot save: tensor {n!r} has shape {tuple(np.shape(params[n]))}, "
                                      f"expected {shape}")
    spec_dtype = SAVE_DTYPES[dtype][0]
    arrays = {n: _encode(n, v, dtype) for n, v in params.items()}

    shards: list[list[str]] = [[]]
    size = 0
    for n, a in arrays.items():
        if max_shard_bytes is not None and shards[-1] and size + a.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(n)
        size += a.nbytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # weight files of an earlier save would shadow or mix with these
        if old.name in (WEIGHTS_FILE, INDEX_FILE) or SHARD_PATTERN.match(old.name):
            old.unlink()
    hf = cfg.to_hf()
    hf.setdefault(HF_NAME_KEY, cfg.name)  # read back as the config's name by ModelConfig.from_hf
    (folder / CONFIG_FILE).write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")

    def write(path: Path, names: list[str]):
        specs = {n: TensorSpec(dtype=spec_dtype, shape=list(arrays[n].shape), data_ptr=arrays[n].ctypes.data,
                               data_len=arrays[n].nbytes) for n in names}
        serialize_file(specs, str(path), metadata=dict(HEADER_METADATA))  # `arrays` keeps the buffers alive
        make_readable(path)

    written = [folder / CONFIG_FILE]
    if len(shards) == 1:
        write(folder / WEIGHTS_FILE, shards[0])
        return written + [folder / WEIGHTS_FILE]
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        fname = SHARD_NAME.format(index=i, count=len(shards))
        write(folder / fname, names)
        written.append(folder / fname)
        weight_map.update({n: fname for n in names})
    index = {"metadata": {"total_size": int(sum(a.nbytes for a in arrays.values()))}, "weight_map": weight_map}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return written + [folder / INDEX_FILE]


def make_readable(path) -> None:
    """safetensors writes files owner-only (0600); model files are meant to be shared like any other."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


# ----------------------------------------------------------------------------------- Hugging Face repo ids
# owner/name as the Hub spells repo ids (letters, digits, '-', '_', '.'), e.g. ridger/MMfreeLM-370M
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint(name: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A checkpoint argument as a local path: an existing file or folder as it is, else a Hugging Face repo id
    (``owner/name``) looked up offline in the local Hugging Face cache (the layout ``huggingface-cli download``
    leaves: ``models--owner--name/snapshots/<commit>``), through ``huggingface_hub``; ``cache_dir`` defaults to
    the library's (``HF_HUB_CACHE`` / ``HF_HOME``). Nothing is downloaded."""
    path = Path(name)
    if path.exists():
        return path
    text = str(name)
    if not REPO_ID_PATTERN.match(text):
        raise CheckpointError(f"{text}: no such checkpoint folder or file")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    where = str(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(text, cache_dir=where, local_files_only=True))
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{text}: not a local folder, and not in the Hugging Face cache {where} (nothing is "
                              f"downloaded at run time: fetch it first with `huggingface-cli download {text}`, or "
                              f"set HF_HUB_CACHE)") from None
