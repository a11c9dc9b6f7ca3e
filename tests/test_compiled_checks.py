"""Compiled networks checked as the loader checks them, whether read from a file or compiled just now
(docs/reliability.md, "Compiled networks"): weights far from a trained model's scale are refused by the compiler
naming what set the format (they ran as garbage when compiled in memory), and a compiled file's meta is checked
for its structure and types key by key (a missing consumer crashed the golden model with a KeyError, a string
logit_scale numpy; some messages named no key)."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from conftest import fails
from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.io.checkpoint import save_checkpoint
from lava_matmulfree.io.params import expected_tensors
from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
from lava_matmulfree.model.compiled_formats import _scalars, format_cause
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.quantise import QuantisedNetwork, compile_network


@pytest.fixture(scope="module")
def net():
    from lava_matmulfree.evaluation.accuracy import build_evaluation

    return build_evaluation("tiny", seed=5, num_calib=1, calib_length=4).net


@pytest.fixture
def saved(tmp_path, net, monkeypatch):
    """(path of the net's file, its header, its meta, its tensors); the working folder is tmp_path."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "net.safetensors"
    net.save(path)
    with safe_open(str(path), framework="numpy") as f:
        header = dict(f.metadata())
    return path, header, json.loads(header["meta"]), load_file(str(path))


def write_variant(saved, name, meta=None, header=None):
    path, h, _, tensors = saved
    h = dict(h if header is None else header)
    if meta is not None:
        h["meta"] = json.dumps(meta)
    out = path.parent / f"{name}.safetensors"
    save_file(tensors, str(out), metadata=h)
    return out


def edited(meta, **changes):
    """A copy of ``meta`` with keys set (``a/b`` sets meta[a][b]; a value None deletes the key)."""
    m = json.loads(json.dumps(meta))
    for k, v in changes.items():
        where, key = (m[k.split("/")[0]], k.split("/", 1)[1]) if "/" in k else (m, k)
        if "/" in key:  # calibration/stats/resid
            where, key = where[key.split("/")[0]], key.split("/", 1)[1]
        if v is None:
            del where[key]
        else:
            where[key] = v
    return m


# ----------------------------------------------------------------------------------- compiled in memory
def scaled_params(params, factor):
    return {k: (v.astype(np.float64) * factor).astype(np.float32) for k, v in params.items()}


@pytest.mark.parametrize("factor, frac", [(1e30, "-"), (1e-40, "")], ids=["x1e30", "x1e-40"])
def test_the_compiler_refuses_weights_whose_formats_cannot_be_run(tiny_cfg, tiny_params, factor, frac):
    """x1e30 (finite) gave x_frac -182, x1e-40 (denormal) 155: compile_network returned such networks, which ran
    with rc 0 and garbage; the loader refused the file compile wrote of them."""
    params = scaled_params(tiny_params, factor)
    assert all(np.isfinite(v).all() for v in params.values())
    model = FloatModel(tiny_cfg, params)
    cal = calibrate(model, random_calibration_sequences(tiny_cfg.vocab_size, 2, 8), FixedPointConfig())
    with pytest.raises(CheckpointError) as e:
        compile_network(model, cal, FixedPointConfig())
    msg = str(e.value)
    assert re.search(rf"x_frac would be {frac}\d+", msg), msg
    assert "'resid'" in msg and "residual stream" in msg and "model.embeddings.weight" in msg, msg
    assert "largest weight" in msg and "\n" not in msg, msg


def test_the_compiler_refuses_a_calibration_with_an_infinite_range(tiny_cfg, tiny_params):
    model = FloatModel(tiny_cfg, tiny_params)
    cal = calibrate(model, random_calibration_sequences(tiny_cfg.vocab_size, 1, 4), FixedPointConfig())
    cal = dataclasses.replace(cal, stats={**cal.stats, "l1.h": float("inf")})  # would read as an empty range
    with pytest.raises(CheckpointError, match=r"statistic 'l1\.h' is inf"):
        compile_network(model, cal, FixedPointConfig())


@pytest.mark.parametrize("command", ["compile", "generate"])
def test_the_cli_refuses_such_weights_before_writing_or_running(command, capsys, tmp_path, monkeypatch, tiny_cfg,
                                                                 tiny_params):
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "big", tiny_cfg, scaled_params(tiny_params, 1e30))
    argv = [command, "--checkpoint", "big"] + (["--out", "c.safetensors", "--calibrate", "random"]
                                               if command == "compile" else ["--backend", "reference"])
    fails(argv, capsys, "x_frac", "'resid'", "model.embeddings.weight")
    assert not (tmp_path / "c.safetensors").exists()
    assert capsys.readouterr().out == ""


def test_format_cause_names_only_statistics_and_tensors_that_exist(net):
    """Every scalar of a compiled network is traced to calibration statistics or checkpoint tensors by name."""
    tensors = set(expected_tensors(net.cfg))
    for key, _ in _scalars(net, ""):
        cause = format_cause(key, net.calibration.stats)
        names = re.findall(r"'([\w.]+)'", cause)
        assert names, (key, cause)
        for n in names:
            assert n in net.calibration.stats or n in tensors, (key, n, cause)


# ----------------------------------------------------------------------------------- the meta's structure and types
META_VARIANTS = {  # name: (changes, the key the error must name)
    "gain_keys_missing": ({"layers.0.attn.gain_m.#keys": ["i", "f"]}, "layers.0.attn.gain_m.#keys"),
    "clip_keys_extra": ({"layers.0.attn.clip.#keys": ["i", "f", "g", "zz"], "layers.0.attn.clip.zz": 1.0},
                        "layers.0.attn.clip.#keys"),
    "gain_k_keys_twice": ({"layers.1.gate.gain_k.#keys": ["o", "o"]}, "layers.1.gate.gain_k.#keys"),
    "head_keys_other": ({"head.gain_k.#keys": ["o"], "head.gain_k.o": 3}, "head.gain_k.#keys"),
    "pre_frac_keys_not_a_list": ({"layers.0.pre_frac.#keys": "i,f,g"}, "layers.0.pre_frac.#keys"),
    "logit_scale_string": ({"logit_scale": "0.01"}, "logit_scale"),
    "scale_boolean": ({"layers.0.i.scale": True}, "layers.0.i.scale"),
    "clip_string": ({"layers.0.attn.clip.i": "3.0"}, "layers.0.attn.clip.i"),
    "gain_k_float": ({"layers.0.attn.gain_k.i": 12.0}, "layers.0.attn.gain_k.i"),
    "pre_frac_string": ({"layers.2.pre_frac.g": "20"}, "layers.2.pre_frac.g"),
    "layer_count_string": ({"layers.#len": "3"}, "layers.#len"),
    "act_bits_string": ({"fp/act_bits": "8"}, "fp.act_bits"),
    "pow2_scales_string": ({"fp/pow2_act_scales": "no"}, "fp.pow2_act_scales"),
    "lut_range_string": ({"fp/sigmoid_lut_range": "8"}, "fp.sigmoid_lut_range"),
    "cfg_name_number": ({"cfg/name": 5}, "cfg.name"),
    "cfg_hidden_size_float": ({"cfg/hidden_size": 72.0}, "cfg.hidden_size"),
    "cfg_unknown_key": ({"cfg/hidden_sizee": 72}, "cfg.hidden_sizee"),
    "fp_not_an_object": ({"fp": [8, 24]}, "'fp'"),
    "calibration_garbage": ({"calibration": "garbage"}, "'calibration'"),
    "calibration_stat_string": ({"calibration/stats/resid": "big"}, "calibration.stats.resid"),
    "calibration_without_stats": ({"calibration/stats": None}, "calibration.stats"),
    "calibration_tokens_float": ({"calibration/num_tokens": 4.5}, "calibration.num_tokens"),
}


@pytest.mark.parametrize("name", list(META_VARIANTS))
def test_meta_of_the_wrong_structure_or_type_names_the_file_and_the_key(name, saved):
    """Each was accepted (and crashed a backend later: KeyError 'g', UFuncNoLoopError), or refused as a
    'malformed meta header (...)' naming no key."""
    changes, key = META_VARIANTS[name]
    path = write_variant(saved, name, meta=edited(saved[2], **changes))
    with pytest.raises(CheckpointError) as e:
        QuantisedNetwork.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: meta key "), msg
    assert key.strip("'") in msg and "malformed" not in msg and "\n" not in msg, msg


@pytest.mark.parametrize("name", ["gain_keys_missing", "logit_scale_string"])
@pytest.mark.parametrize("backend", ["reference", "sim-fused"])
def test_the_cli_refuses_such_meta_on_every_backend_before_running(name, backend, saved, capsys):
    changes, key = META_VARIANTS[name]
    write_variant(saved, name, meta=edited(saved[2], **changes))
    fails(["generate", "--checkpoint", f"{name}.safetensors", "--backend", backend, "--max-new-tokens", "2"],
          capsys, f"{name}.safetensors", key)


def test_consumers_listed_in_another_order_load_in_the_models_order(saved, net):
    path = write_variant(saved, "permuted", meta=edited(saved[2], **{"layers.0.attn.gain_m.#keys": ["g", "f", "i"],
                                                                     "layers.0.pre_frac.#keys": ["f", "g", "i"]}))
    loaded = QuantisedNetwork.load(path)
    assert list(loaded.layers[0].attn.gain_m) == ["i", "f", "g"] == list(loaded.layers[0].pre_frac)
    toks = [5, 70, 200, 3]
    assert np.array_equal(GoldenModel(loaded).prefill(toks)[0], GoldenModel(net).prefill(toks)[0])


def test_numbers_written_as_integers_load_as_floats(saved):
    """JSON writes 2.0 as 2.0, but a hand-edited file may say 2: a number is a number."""
    path = write_variant(saved, "int_scale", meta=edited(saved[2], logit_scale=2, **{"fp/sigmoid_lut_range": 8}))
    loaded = QuantisedNetwork.load(path)
    assert loaded.logit_scale == 2.0 and isinstance(loaded.logit_scale, float)
    assert isinstance(loaded.fp.sigmoid_lut_range, float)


# ----------------------------------------------------------------------------------- the header
def test_another_format_version_says_what_was_found_and_what_is_read(saved):
    path, header, _, _ = saved
    newer = write_variant(saved, "v2", header={**header, "format_version": "2"})
    with pytest.raises(CheckpointError, match=r"format_version '2'.*reads format 1 only.*newer"):
        QuantisedNetwork.load(newer)
    older = write_variant(saved, "v0", header={**header, "format_version": "0"})
    with pytest.raises(CheckpointError, match=r"format_version '0'.*reads format 1 only"):
        QuantisedNetwork.load(older)
    unversioned = write_variant(saved, "nov", header={k: v for k, v in header.items() if k != "format_version"})
    with pytest.raises(CheckpointError, match="no format_version"):
        QuantisedNetwork.load(unversioned)
    bare = write_variant(saved, "bare", header={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a lava-matmulfree compiled model"):
        QuantisedNetwork.load(bare)
