"""Config files and the Hugging Face config.json mapping."""
from __future__ import annotations

import json

import pytest

from lava_matmulfree.config import ModelConfig, config_from_dict, glu_intermediate_size, load_config
from lava_matmulfree.errors import ConfigError

# The released MMfreeLM shapes (docs/model.md; the intermediate sizes of the published config.json files).
RELEASED = {
    "370m": dict(num_layers=24, hidden_size=1024, intermediate_size=2816),
    "1.3b": dict(num_layers=24, hidden_size=2048, intermediate_size=5632),
    "2.7b": dict(num_layers=32, hidden_size=2560, intermediate_size=6912),
}
RELEASED_VOCAB = 32000

# A config.json as the released 370M checkpoint carries it (fields this package does not use included).
RELEASED_370M_CONFIG_JSON = """{
  "_name_or_path": "ridger/MMfreeLM-370M",
  "architectures": ["HGRNBitForCausalLM"],
  "attn_mode": "fused_recurrent",
  "bos_token_id": 1,
  "conv_size": 4,
  "eos_token_id": 2,
  "expand_ratio": 1,
  "fuse_cross_entropy": true,
  "hidden_act": "swish",
  "hidden_ratio": 4,
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": null,
  "max_position_embeddings": 2048,
  "model_type": "hgrn_bit",
  "num_heads": 1,
  "num_hidden_layers": 24,
  "rms_norm_eps": 1e-06,
  "share_conv_kernel": true,
  "tie_word_embeddings": false,
  "torch_dtype": "float32",
  "transformers_version": "4.39.1",
  "use_cache": true,
  "use_lower_bound": true,
  "use_short_conv": false,
  "vocab_size": 32000
}"""


def write_toml(tmp_path, body: str):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    return path


def assert_config_error(path, key: str, line: int | None = None):
    """The error names the key and the file, and where ``line`` is given, starts with file:line (0: no line)."""
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    msg = str(ei.value)
    assert key in msg and str(path) in msg, msg
    if line is not None:
        assert msg.startswith(f"{path}:{line}: " if line else f"{path}: "), msg
    return msg


# ------------------------------------------------------------------------------------- TOML errors
def test_unknown_key_names_key_file_and_line(tmp_path):
    path = write_toml(tmp_path, "[model]\nhidden_size = 64\nnum_layerz = 3\n")
    assert_config_error(path, "num_layerz", line=3)


def test_unknown_section_names_section_file_and_line(tmp_path):
    path = write_toml(tmp_path, "# a comment\n\n[modle]\nhidden_size = 64\n")
    assert_config_error(path, "modle", line=3)


@pytest.mark.parametrize("body, key, line", [
    ("[model]\nhidden_size = 64\n\n[run]\n# the backend\n  backend = 3\n", "backend", 6),
    ('[run]\nbackend = "sim"\n[model]\n"hidden_size" = -1\n', "hidden_size", 4),
    ("[fixed_point]\nact_bits = 8\n[model]\nhidden_size = 64\n[fixed_point]\n", "fixed_point", None),  # TOML's
    ("[model]\nvocab_size = 259 # bytes\n [ fixed_point ]\nact_bits=99\n", "act_bits", 4),
    ("[run]\nthreads = 1\n[fixed_point]\nthreads = 2\n", "threads", 4),  # the key of the error's section
])
def test_a_key_error_names_the_keys_line(tmp_path, body, key, line):
    """A wrong key, type or value is named by file:line, as a TOML syntax error is (it was file and key only)."""
    msg = assert_config_error(write_toml(tmp_path, body), key, line)
    if line is None:
        assert "not valid TOML" in msg  # a section given twice: tomli's own error, with its line


@pytest.mark.parametrize("key, value", [
    ("hidden_size", '"big"'),
    ("hidden_size", "64.0"),
    ("num_layers", "true"),
    ("rms_norm_eps", '"1e-6"'),
    ("use_lower_bound", "1"),
    ("name", "3"),
])
def test_wrong_type_names_key_and_file(tmp_path, key, value):
    path = write_toml(tmp_path, f"[model]\n{key} = {value}\n")
    assert_config_error(path, key, line=2)


@pytest.mark.parametrize("key, value", [
    ("hidden_size", "0"),
    ("num_layers", "-2"),
    ("vocab_size", "0"),
    ("intermediate_size", "-5"),
    ("rms_norm_eps", "-1e-6"),
    ("rms_norm_eps", "0.0"),
    ("bitlinear_eps", "inf"),
    ("bos_token_id", "259"),
    ("eos_token_id", "-2"),
])
def test_impossible_value_names_key_and_file(tmp_path, key, value):
    body = "[model]\nvocab_size = 259\n" if key != "vocab_size" else "[model]\n"
    path = write_toml(tmp_path, body + f"{key} = {value}\n")
    assert_config_error(path, key, line=body.count("\n") + 1)


def test_invalid_toml_names_file(tmp_path):
    path = write_toml(tmp_path, "[model\nhidden_size = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(path)


def test_unknown_config_name():
    with pytest.raises(ConfigError, match="no-such-model"):
        load_config("no-such-model")


def test_valid_toml_values_are_taken(tmp_path):
    path = write_toml(tmp_path, "[model]\nname = 'x'\nvocab_size = 300\nhidden_size = 40\nnum_layers = 2\n"
                                "rms_norm_eps = 1e-5\nuse_lower_bound = false\n")
    m = load_config(path).model
    assert (m.name, m.vocab_size, m.hidden_size, m.num_layers, m.rms_norm_eps, m.use_lower_bound) == \
        ("x", 300, 40, 2, 1e-5, False)
    # intermediate_size left out: the released rule, 256 * ceil(int(40*8/3) / 256) = 256 * ceil(106/256)
    assert m.intermediate_size == 256


def test_config_from_dict_rejects_a_non_table_section():
    with pytest.raises(ConfigError, match="model"):
        config_from_dict({"model": 3})


# ------------------------------------------------------------------------------------- released sizes
@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_intermediate_sizes_from_the_rule(name):
    r = RELEASED[name]
    assert glu_intermediate_size(r["hidden_size"]) == r["intermediate_size"]


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_config_files(name):
    m = load_config(name).model
    for k, v in RELEASED[name].items():
        assert getattr(m, k) == v, (name, k)
    assert m.vocab_size == RELEASED_VOCAB
    assert m.rms_norm_eps == 1e-6
    assert m.use_lower_bound
    # the file's explicit size and the rule agree
    assert ModelConfig(hidden_size=m.hidden_size).intermediate_size == m.intermediate_size


# ------------------------------------------------------------------------------------- HF config.json
def test_from_hf_released_370m():
    m = ModelConfig.from_hf(json.loads(RELEASED_370M_CONFIG_JSON))
    assert (m.vocab_size, m.hidden_size, m.num_layers, m.intermediate_size) == (32000, 1024, 24, 2816)
    assert m.rms_norm_eps == 1e-6 and m.use_lower_bound
    assert (m.bos_token_id, m.eos_token_id) == (1, 2)


def test_to_hf_field_names():
    cfg = ModelConfig(name="t", vocab_size=300, hidden_size=40, num_layers=5, intermediate_size=96,
                      rms_norm_eps=1e-5, use_lower_bound=False, bos_token_id=7, eos_token_id=-1)
    hf = cfg.to_hf()
    assert hf["model_type"] == "hgrn_bit"
    assert (hf["vocab_size"], hf["hidden_size"], hf["num_hidden_layers"], hf["intermediate_size"]) == (300, 40, 5, 96)
    assert hf["rms_norm_eps"] == 1e-5 and hf["use_lower_bound"] is False
    assert hf["bos_token_id"] == 7 and hf["eos_token_id"] is None
    assert hf["num_heads"] == 1 and hf["tie_word_embeddings"] is False
    json.dumps(hf)  # serialisable as is


@pytest.mark.parametrize("cfg", [
    ModelConfig(name="hf", vocab_size=300, hidden_size=40, num_layers=5, intermediate_size=96,
                rms_norm_eps=1e-5, use_lower_bound=False, bos_token_id=7, eos_token_id=-1),
    ModelConfig(name="hf"),
    ModelConfig(name="hf", vocab_size=259, hidden_size=72, num_layers=3, intermediate_size=200),
])
def test_hf_round_trip(cfg):
    assert ModelConfig.from_hf(json.loads(json.dumps(cfg.to_hf()))) == cfg


@pytest.mark.parametrize("change, key", [
    ({"model_type": "llama"}, "model_type"),
    ({"num_heads": 4}, "num_heads"),
    ({"use_short_conv": True}, "use_short_conv"),
    ({"hidden_size": "1024"}, "hidden_size"),
    ({"num_hidden_layers": 0}, "] num_hidden_layers must be"),
    ({"rms_norm_eps": -1.0}, "rms_norm_eps"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
])
def test_from_hf_errors_name_key_and_source(change, key):
    hf = json.loads(RELEASED_370M_CONFIG_JSON)
    hf.update(change)
    with pytest.raises(ConfigError) as ei:
        ModelConfig.from_hf(hf, source="/some/ckpt/config.json")
    assert key in str(ei.value) and "/some/ckpt/config.json" in str(ei.value), str(ei.value)


@pytest.mark.parametrize("key", ["vocab_size", "hidden_size", "num_hidden_layers"])
def test_from_hf_refuses_a_config_json_without_its_shape(key):
    """A misspelt or missing shape key took Hugging Face's default (a 24-layer, 2048-wide model) and the error then
    blamed model.safetensors for the tensors that shape needs."""
    hf = json.loads(RELEASED_370M_CONFIG_JSON)
    del hf[key]
    with pytest.raises(ConfigError, match=f"/c/config.json: missing key '{key}'"):
        ModelConfig.from_hf(hf, source="/c/config.json")


@pytest.mark.parametrize("run, why", [
    ({"backend": "reference", "threads": 0}, "threads must be a whole number >= 1, got 0"),
    ({"backend": "reference", "threads": 1.5}, "threads must be of type int"),
    ({"backend": "sim-fused", "threads": 2}, "threads = 2 applies to the reference backend"),
])
def test_run_threads_checked(run, why):
    with pytest.raises(ConfigError, match=why):
        config_from_dict({"run": run}, source="x.toml")


def test_run_threads_of_the_reference_backend():
    assert config_from_dict({"run": {"backend": "reference", "threads": 2}}).run.threads == 2
    assert load_config("reference").run.threads == 1


def test_state_registers_no_wider_than_the_inverse_sqrt_takes(tmp_path):
    """state_bits 26 made the aggregator's sum reach 2**25, past the inverse square root's domain: an IndexError
    deep in the golden model (eval --set state_bits=28). Refused at the config, naming the range."""
    msg = assert_config_error(write_toml(tmp_path, "[fixed_point]\nstate_bits = 26\n"), "state_bits")
    assert "[16, 25]" in msg
    load_config(write_toml(tmp_path, "[fixed_point]\nstate_bits = 25\n"))


def test_a_bound_moved_by_another_field_says_so_for_a_default(tmp_path):
    """state_bits 16 makes the default gate_frac_bits (16) too wide: the error gives the bound's value and says
    the field was never set (it blamed gate_frac_bits as if the user had written it), and names no line."""
    msg = assert_config_error(write_toml(tmp_path, "[fixed_point]\nstate_bits = 16\n"), "gate_frac_bits", line=0)
    assert "state_bits-2 = 14" in msg and "its default" in msg and "gate_frac_bits=14" in msg
    assert "norm_square_bits=8" in msg  # every bound the change moved, in one error (they came one at a time)
    msg = assert_config_error(write_toml(tmp_path, "[fixed_point]\nstate_bits = 20\ngate_frac_bits = 19\n"),
                              "gate_frac_bits", line=3)
    gate = next(part for part in msg.split("; ") if "gate_frac_bits" in part)
    assert "state_bits-2 = 18" in gate and "default" not in gate  # set in the file, so not called a default


def test_configs_made_in_python_are_checked_where_they_are_used():
    """A FixedPointConfig or ModelConfig built in Python skips the file's checks: compile_network and
    random_params check them (act_bits 99 compiled without a word; hidden_size -5 met numpy's own error)."""
    from lava_matmulfree.config import FixedPointConfig, ModelConfig
    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.io.params import random_params
    from lava_matmulfree.model.quantise import compile_network

    setup = build_evaluation("tiny", seed=0)
    with pytest.raises(ConfigError, match=r"FixedPointConfig: act_bits must be in \[2, 16\], got 99"):
        compile_network(setup.float_model, setup.calibration, FixedPointConfig(act_bits=99))
    with pytest.raises(ConfigError, match="hidden_size must be positive, got -5"):
        random_params(ModelConfig(hidden_size=-5))
