"""Checkpoint folders: round trips in every stored dtype and layout, and one clear error per bad input."""
from __future__ import annotations

import dataclasses
import json
import re
import struct

import numpy as np
import pytest
from safetensors import TensorSpec, deserialize, serialize_file

from lava_matmulfree.io.checkpoint import (CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, load_checkpoint, read_checkpoint,
                                        save_checkpoint)
from lava_matmulfree.errors import CheckpointError, ConfigError
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.io.params import expected_tensors
from lava_matmulfree.model.sampling import Sampler
from conftest import float_generation

SHARD_BYTES = 60_000  # splits the tiny model (~1 MB in float32) into many shards
BF16_LOW_BITS = np.uint32(0xFFFF0000)  # a float32 whose low 16 bits are zero is exactly a bfloat16


def bf16_exact(params):
    """The same tensors truncated to values a bfloat16 holds exactly."""
    return {k: (v.astype(np.float32).view(np.uint32) & BF16_LOW_BITS).view(np.float32) for k, v in params.items()}


def raw_file(path):
    """[(name, dtype code, shape, raw bytes)] of a safetensors file, via the library's raw API."""
    return {n: (v["dtype"], list(v["shape"]), bytes(v["data"])) for n, v in deserialize(path.read_bytes())}


# ------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_trip(tmp_path, tiny_cfg, tiny_params, dtype, sharded):
    params = bf16_exact(tiny_params) if dtype == "bfloat16" else tiny_params
    save_checkpoint(tmp_path, tiny_cfg, params, dtype=dtype, max_shard_bytes=SHARD_BYTES if sharded else None)
    assert (tmp_path / INDEX_FILE).exists() == sharded
    assert (tmp_path / WEIGHTS_FILE).exists() != sharded
    ck = read_checkpoint(tmp_path)
    assert ck.config == tiny_cfg
    assert list(ck.params) == list(expected_tensors(tiny_cfg))
    assert ck.unexpected == []
    assert len(ck.files) > 1 if sharded else ck.files == [WEIGHTS_FILE]
    code = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    assert set(ck.dtypes.values()) == {code}
    for k, v in params.items():
        got = ck.params[k]
        assert got.dtype == np.float32 and got.shape == v.shape
        if dtype == "float16":
            want = v.astype(np.float16).astype(np.float32)  # numpy's own IEEE half conversion
        else:
            want = v  # float32 and bf16-representable values come back bit for bit
        assert np.array_equal(got, want), k


def test_sharded_index_layout(tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(tiny_params)
    shards = sorted(set(index["weight_map"].values()))
    assert all((tmp_path / s).is_file() for s in shards)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in tiny_params.values())
    for s in shards:  # each shard within the limit unless it is a single tensor
        names = [n for n, f in index["weight_map"].items() if f == s]
        assert len(names) == 1 or sum(tiny_params[n].nbytes for n in names) <= SHARD_BYTES


def test_resave_replaces_the_other_layout(tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    save_checkpoint(tmp_path, tiny_cfg, tiny_params)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_bf16_on_disk_format(tmp_path, tiny_cfg, tiny_params):
    """The stored words are the bfloat16 encoding (high half of the float32), rounded to nearest even."""
    p = dict(tiny_params)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1.0 (0x3F80)
    # 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even -> 1 + 2^-6 (0x3F82)
    # 1 + 2^-8 + 2^-20 is just above halfway: -> 1 + 2^-7 (0x3F81); -2.5 is exact (0xC020)
    vals = [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.5]
    want_words = [0x3F80, 0x3F82, 0x3F81, 0xC020]
    norm = "model.norm.weight"
    p[norm] = p[norm].copy()
    p[norm][:4] = vals
    save_checkpoint(tmp_path, tiny_cfg, p, dtype="bfloat16")
    code, shape, data = raw_file(tmp_path / WEIGHTS_FILE)[norm]
    assert code == "BF16" and shape == [tiny_cfg.hidden_size]
    assert list(struct.unpack(f"<{len(data) // 2}H", data))[:4] == want_words
    _, params = load_checkpoint(tmp_path)
    assert params[norm][:4].tolist() == [1.0, 1 + 2**-6, 1 + 2**-7, -2.5]


def test_reads_bf16_written_by_hand(tmp_path, tiny_cfg, tiny_params):
    """A BF16 tensor written directly with safetensors (not by save_checkpoint) widens exactly."""
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    d = tiny_cfg.hidden_size
    words = np.zeros(d, dtype="<u2")
    words[:5] = [0x3F80, 0xC020, 0x0001, 0x7F7F, 0x3E20]  # 1, -2.5, smallest subnormal 2^-133, max 3.3895e38, 0.15625
    expect = [1.0, -2.5, 2.0**-133, float(np.float32(3.3895313892515355e38)), 0.15625]
    spec = {"model.norm.weight": TensorSpec(dtype="bfloat16", shape=[d], data_ptr=words.ctypes.data,
                                            data_len=words.nbytes)}
    serialize_file(spec, str(tmp_path / "extra-bf16.safetensors"))
    index["weight_map"]["model.norm.weight"] = "extra-bf16.safetensors"
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))
    ck = read_checkpoint(tmp_path)
    assert ck.dtypes["model.norm.weight"] == "BF16"
    assert ck.params["model.norm.weight"][:5].tolist() == expect
    assert not ck.params["model.norm.weight"][5:].any()


def test_float64_tensors_are_accepted(tmp_path, tiny_cfg, tiny_params):
    p64 = {k: v.astype(np.float64) for k, v in tiny_params.items()}
    write_raw(tmp_path, tiny_cfg, p64)
    _, params = load_checkpoint(tmp_path)
    assert all(np.array_equal(params[k], tiny_params[k]) for k in tiny_params)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generation_from_checkpoint_matches_in_memory(tmp_path, tiny_cfg, tiny_params, dtype):
    params = bf16_exact(tiny_params) if dtype == "bfloat16" else tiny_params
    save_checkpoint(tmp_path, tiny_cfg, params, dtype=dtype, max_shard_bytes=SHARD_BYTES)
    cfg2, loaded = load_checkpoint(tmp_path)

    def run(cfg, p):
        return float_generation(FloatModel(cfg, p), [1, 72, 101, 108], 12, Sampler(temperature=1.0, top_k=20, seed=3))

    assert run(cfg2, loaded) == run(tiny_cfg, params)


def test_unexpected_tensors_are_listed_and_refused(tmp_path, tiny_cfg, tiny_params):
    """Issue 27: an extra tensor was accepted; weights silently dropped would change what the model computes."""
    p = dict(tiny_params)
    p["model.layers.0.attn.extra_bias"] = np.ones(3, dtype=np.float32)
    p["rotary.inv_freq"] = np.ones(2, dtype=np.float32)
    save_checkpoint(tmp_path, tiny_cfg, p)
    ck = read_checkpoint(tmp_path)
    assert ck.unexpected == ["model.layers.0.attn.extra_bias", "rotary.inv_freq"]
    assert "rotary.inv_freq" not in ck.params
    with pytest.raises(CheckpointError, match=r"model\.safetensors: 2 tensor\(s\) .*'model\.layers\.0\.attn\.extra_bias'"):
        load_checkpoint(tmp_path)


# ------------------------------------------------------------------------------------- bad inputs
def write_raw(folder, cfg, params, config=None):
    """A checkpoint folder written with safetensors directly (any dtype, nothing validated)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.to_hf() if config is None else config))
    save_file({k: np.ascontiguousarray(v) for k, v in params.items()}, str(folder / WEIGHTS_FILE))
    return folder


def expect_error(folder, err, *parts):
    with pytest.raises(err) as ei:
        load_checkpoint(folder)
    msg = str(ei.value)
    for part in parts:
        assert str(part) in msg, msg
    assert "\n" not in msg
    return msg


L1_I_PROJ = "model.layers.1.attn.i_proj.weight"


def test_missing_tensor(tmp_path, tiny_cfg, tiny_params):
    del tiny_params[L1_I_PROJ]
    write_raw(tmp_path, tiny_cfg, tiny_params)
    expect_error(tmp_path, CheckpointError, L1_I_PROJ, WEIGHTS_FILE)


def test_a_tied_checkpoint_reads_its_head_from_the_embedding(tmp_path, tiny_cfg, tiny_params):
    """tie_word_embeddings=true was refused; HGRNBitForCausalLM ties its head's BitLinear to the embedding matrix,
    so the head reads it (a stored copy must be the same matrix)."""
    hf = {**tiny_cfg.to_hf(), "tie_word_embeddings": True}
    head_free = {k: v for k, v in tiny_params.items() if k != "lm_head.weight"}
    write_raw(tmp_path / "tied", tiny_cfg, head_free, config=hf)
    explicit = {**tiny_params, "lm_head.weight": tiny_params["model.embeddings.weight"]}
    write_raw(tmp_path / "stored", tiny_cfg, explicit, config=hf)  # both stored, equal
    write_raw(tmp_path / "untied", tiny_cfg, explicit)
    write_raw(tmp_path / "other", tiny_cfg, tiny_params, config=hf)  # a head of its own: which one is the model's?
    expect_error(tmp_path / "other", CheckpointError, "'lm_head.weight' differs from 'model.embeddings.weight'")
    write_raw(tmp_path / "text", tiny_cfg, head_free, config={**hf, "tie_word_embeddings": "true"})
    expect_error(tmp_path / "text", ConfigError, "tie_word_embeddings")
    cfg, untied = load_checkpoint(tmp_path / "untied")
    for name in ("tied", "stored"):
        cfg2, params = load_checkpoint(tmp_path / name)
        assert cfg2 == cfg and list(params) == list(untied)
        for k in params:
            np.testing.assert_array_equal(params[k], untied[k], err_msg=f"{name} {k}")
    assert read_checkpoint(tmp_path / "stored").unexpected == []
    ids = [5, 17, 99]
    tied_logits, _ = FloatModel(cfg, load_checkpoint(tmp_path / "tied")[1]).prefill(ids)
    untied_logits, _ = FloatModel(cfg, untied).prefill(ids)
    np.testing.assert_array_equal(tied_logits, untied_logits)
    del head_free["model.embeddings.weight"]  # the embedding is still needed, and named
    write_raw(tmp_path / "none", tiny_cfg, head_free, config=hf)
    expect_error(tmp_path / "none", CheckpointError, "missing tensor 'model.embeddings.weight'")


def test_missing_tensor_names_what_it_resembles(tmp_path, tiny_cfg, tiny_params):
    """A misspelled name, or every name without the causal LM's 'model.' prefix, was reported only as missing."""
    tiny_params[L1_I_PROJ + "_"] = tiny_params.pop(L1_I_PROJ)
    write_raw(tmp_path / "typo", tiny_cfg, tiny_params)
    expect_error(tmp_path / "typo", CheckpointError, L1_I_PROJ, f"it holds '{L1_I_PROJ}_': a misspelling?")
    tiny_params[L1_I_PROJ] = tiny_params.pop(L1_I_PROJ + "_")
    bare = {k.removeprefix("model."): v for k, v in tiny_params.items()}
    write_raw(tmp_path / "bare", tiny_cfg, bare)
    expect_error(tmp_path / "bare", CheckpointError, "'model.embeddings.weight' (and ",
                 "without the 'model.' prefix ('embeddings.weight')")
    # layers exported one off (1..3 for a 3-layer config): another layer's number, not a misspelling
    shifted = {re.sub(r"layers\.(\d+)", lambda m: f"layers.{int(m.group(1)) + 1}", k): v for k, v in tiny_params.items()}
    write_raw(tmp_path / "shifted", tiny_cfg, shifted)
    msg = expect_error(tmp_path / "shifted", CheckpointError, "missing tensor 'model.layers.0.",
                       "a layer the config does not have")
    assert "misspelling" not in msg


def test_pickled_weights_are_named_with_what_to_do(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params)
    (tmp_path / WEIGHTS_FILE).rename(tmp_path / "pytorch_model.bin")  # the name is what the message goes by
    expect_error(tmp_path, CheckpointError, "holds neither", "it holds pytorch_model.bin, PyTorch's pickle format",
                 "save_file(")


def test_missing_lower_bounds_only_when_used(tmp_path, tiny_cfg, tiny_params):
    del tiny_params["model.lower_bounds"]
    write_raw(tmp_path, tiny_cfg, tiny_params)
    expect_error(tmp_path, CheckpointError, "model.lower_bounds")
    cfg = dataclasses.replace(tiny_cfg, use_lower_bound=False)
    write_raw(tmp_path, cfg, tiny_params)
    assert load_checkpoint(tmp_path)[0].use_lower_bound is False


def test_mis_shaped_tensor(tmp_path, tiny_cfg, tiny_params):
    tiny_params[L1_I_PROJ] = tiny_params[L1_I_PROJ][:, :-1]
    write_raw(tmp_path, tiny_cfg, tiny_params)
    d = tiny_cfg.hidden_size
    expect_error(tmp_path, CheckpointError, L1_I_PROJ, WEIGHTS_FILE, f"({d}, {d - 1})", f"({d}, {d})")


def test_transposed_down_proj(tmp_path, tiny_cfg, tiny_params):
    name = "model.layers.2.mlp.down_proj.weight"
    tiny_params[name] = np.ascontiguousarray(tiny_params[name].T)
    write_raw(tmp_path, tiny_cfg, tiny_params)
    expect_error(tmp_path, CheckpointError, name)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_tensor(tmp_path, tiny_cfg, tiny_params, bad):
    tiny_params[L1_I_PROJ][3, 5] = bad
    write_raw(tmp_path, tiny_cfg, tiny_params)
    expect_error(tmp_path, CheckpointError, L1_I_PROJ, WEIGHTS_FILE, "(3, 5)", "non-finite")


def test_non_finite_bf16_tensor(tmp_path, tiny_cfg, tiny_params):
    tiny_params["lm_head.norm.weight"][7] = np.nan
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, dtype="bfloat16")
    expect_error(tmp_path, CheckpointError, "lm_head.norm.weight", "(7,)")


@pytest.mark.parametrize("int_dtype", [np.int8, np.int32])
def test_integer_dtype(tmp_path, tiny_cfg, tiny_params, int_dtype):
    tiny_params[L1_I_PROJ] = np.sign(tiny_params[L1_I_PROJ]).astype(int_dtype)
    write_raw(tmp_path, tiny_cfg, tiny_params)
    code = {np.int8: "I8", np.int32: "I32"}[int_dtype]
    expect_error(tmp_path, CheckpointError, L1_I_PROJ, WEIGHTS_FILE, code)


def test_missing_config_json(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params)
    (tmp_path / CONFIG_FILE).unlink()
    expect_error(tmp_path, CheckpointError, CONFIG_FILE, str(tmp_path))


def test_bad_json_config(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params)
    (tmp_path / CONFIG_FILE).write_text('{"model_type": "hgrn_bit", ')
    expect_error(tmp_path, ConfigError, CONFIG_FILE, "JSON")


def test_config_json_not_an_object(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params, config=[1, 2])
    expect_error(tmp_path, ConfigError, CONFIG_FILE)


def test_wrong_model_type(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params, config={**tiny_cfg.to_hf(), "model_type": "llama"})
    expect_error(tmp_path, ConfigError, CONFIG_FILE, "model_type", "llama")


def test_a_misspelled_optional_key_is_named_with_the_key_it_resembles(tmp_path, tiny_cfg, tiny_params, caplog):
    """rms_norm_epsilon (for rms_norm_eps) was ignored silently: the default eps stood in."""
    hf = tiny_cfg.to_hf()
    hf["rms_norm_epsilon"] = hf.pop("rms_norm_eps")
    write_raw(tmp_path, tiny_cfg, tiny_params, config=hf)
    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        load_checkpoint(tmp_path)
        load_checkpoint(tmp_path)  # read again by the same command: one warning
    warned = [r.getMessage() for r in caplog.records if "rms_norm_epsilon" in r.getMessage()]
    assert len(warned) == 1 and CONFIG_FILE in warned[0] and "'rms_norm_eps'" in warned[0], caplog.text


def test_a_misspelled_shape_key_is_an_error_naming_both(tmp_path, tiny_cfg, tiny_params):
    hf = tiny_cfg.to_hf()
    hf["hidden_sise"] = hf.pop("hidden_size")
    write_raw(tmp_path, tiny_cfg, tiny_params, config=hf)
    expect_error(tmp_path, ConfigError, CONFIG_FILE, "'hidden_sise'", "'hidden_size'")


def test_hugging_faces_own_extra_keys_pass_silently(tmp_path, tiny_cfg, tiny_params, caplog):
    """config.json files carry many keys this package does not read (and some resemble those it does)."""
    extra = {"pad_token_id": 0, "layer_norm_eps": 1e-5, "use_cache": True, "torch_dtype": "float32",
             "transformers_version": "4.40.0", "max_position_embeddings": 2048, "fuse_cross_entropy": True,
             "initializer_range": 0.02, "some_tool_of_its_own": 1, "rms_norm_epsilon": 1e-5}  # eps is there too
    write_raw(tmp_path, tiny_cfg, tiny_params, config={**tiny_cfg.to_hf(), **extra})
    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        load_checkpoint(tmp_path)
    assert caplog.text == ""


def test_config_and_weights_disagree(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params, config={**tiny_cfg.to_hf(), "hidden_size": 64})
    expect_error(tmp_path, CheckpointError, "model.embeddings.weight", "(259, 72)", "(259, 64)")


def test_missing_shard(tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    shard = json.loads((tmp_path / INDEX_FILE).read_text())["weight_map"]["lm_head.weight"]
    (tmp_path / shard).unlink()
    expect_error(tmp_path, CheckpointError, shard, INDEX_FILE)


def test_tensor_missing_from_the_index(tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    del index["weight_map"]["model.norm.weight"]
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))
    expect_error(tmp_path, CheckpointError, "model.norm.weight", INDEX_FILE)


def test_index_points_to_the_wrong_shard(tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    wm = index["weight_map"]
    wrong = next(f for f in sorted(set(wm.values())) if f != wm["model.norm.weight"])
    wm["model.norm.weight"] = wrong
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))
    expect_error(tmp_path, CheckpointError, "model.norm.weight", wrong)


@pytest.mark.parametrize("text", ['{"weight_map": ', '{"metadata": {}}', '{"weight_map": {"a": 3}}',
                                  '{"weight_map": {"a": "../x.safetensors"}}'])
def test_malformed_index(tmp_path, tiny_cfg, tiny_params, text):
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, max_shard_bytes=SHARD_BYTES)
    (tmp_path / INDEX_FILE).write_text(text)
    expect_error(tmp_path, CheckpointError, INDEX_FILE)


def test_no_weights_at_all(tmp_path, tiny_cfg):
    (tmp_path / CONFIG_FILE).write_text(json.dumps(tiny_cfg.to_hf()))
    expect_error(tmp_path, CheckpointError, WEIGHTS_FILE, INDEX_FILE)


def test_corrupt_weights_file(tmp_path, tiny_cfg, tiny_params):
    write_raw(tmp_path, tiny_cfg, tiny_params)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    expect_error(tmp_path, CheckpointError, WEIGHTS_FILE)


def test_no_such_folder(tmp_path):
    expect_error(tmp_path / "nope", CheckpointError, "nope")


# ------------------------------------------------------------------------------------- saving
def test_save_refuses_what_would_not_load(tmp_path, tiny_cfg, tiny_params):
    bad = dict(tiny_params)
    del bad[L1_I_PROJ]
    with pytest.raises(CheckpointError, match=L1_I_PROJ):
        save_checkpoint(tmp_path, tiny_cfg, bad)
    big = dict(tiny_params)
    big["model.norm.weight"] = big["model.norm.weight"] * 1e6
    with pytest.raises(CheckpointError, match="float16"):
        save_checkpoint(tmp_path, tiny_cfg, big, dtype="float16")
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(tmp_path, tiny_cfg, tiny_params, dtype="int8")
