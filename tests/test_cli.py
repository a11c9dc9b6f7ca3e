"""The lava-matmulfree command line: generate, and one `error:` line with status 2 for every user error."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import Tokenizer, models

from lava_matmulfree.checkpoint import save_checkpoint
from lava_matmulfree.cli import DEFAULT_TEMPERATURE, DEFAULT_TOP_K, main
from lava_matmulfree.float_model import FloatModel
from lava_matmulfree.params import random_params
from lava_matmulfree.sampling import Sampler, generate

BOS, EOS, BYTE_OFFSET = 1, 2, 3  # the byte tokenizer's ids, restated from its specification
KEEP = "\t\n"


def shown(text: str) -> str:
    """What the CLI prints for text: control characters other than tab and newline as U+FFFD."""
    return "".join("\ufffd" if (ord(c) < 0x20 and c not in KEEP) or 0x7F <= ord(c) < 0xA0 else c for c in text)


def expected_tokens(cfg, params, prompt: str, n: int, temperature: float, top_k: int, seed: int):
    """The generation the CLI should do, assembled here from the model, the sampler and byte ids."""
    m = FloatModel(cfg, params, dtype=np.float32)
    ids = [BOS] + [BYTE_OFFSET + b for b in prompt.encode()]
    st = {}

    def prefill(toks):
        logits, st["s"] = m.prefill(toks)
        return logits[-1]

    def step(tok):
        logits, st["s"] = m.step(tok, st["s"])
        return logits

    return generate(step, prefill, ids, n, Sampler(temperature, top_k, seed), eos_token_id=EOS)


def byte_text(ids) -> str:
    return bytes(i - BYTE_OFFSET for i in ids if i >= BYTE_OFFSET).decode("utf-8", errors="replace")


def run_error(capsys, argv, *parts):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for p in parts:
        assert str(p) in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------- generate
@pytest.mark.parametrize("temperature, top_k, seed", [(0.0, 0, 0), (1.0, 20, 3), (0.7, 0, 11)])
def test_generate_from_checkpoint(capsys, tiny_checkpoint, tiny_cfg, tiny_params, temperature, top_k, seed):
    prompt, n = "Loihi ", 10
    code = main(["generate", "--checkpoint", str(tiny_checkpoint), "--prompt", prompt, "--max-new-tokens", str(n),
                 "--temperature", str(temperature), "--top-k", str(top_k), "--seed", str(seed)])
    assert code == 0
    out, err = capsys.readouterr()
    new = expected_tokens(tiny_cfg, tiny_params, prompt, n, temperature, top_k, seed)
    assert 0 < len(new) <= n
    assert out == shown(prompt + byte_text(new)) + "\n"
    assert "tokens/s" in err


def test_generate_random_model_by_default(capsys, tiny_cfg):
    assert main(["generate", "--max-new-tokens", "6", "--prompt", "abc", "--seed", "4"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("abc") and out.endswith("\n")
    # the default config is tiny with seeded random weights (the seed also seeds the sampler)
    new = expected_tokens(tiny_cfg, random_params(tiny_cfg, seed=4), "abc", 6, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, 4)
    assert out == shown("abc" + byte_text(new)) + "\n"
    assert "tiny" in err and "tokens/s" in err


def test_zero_new_tokens(capsys, tiny_checkpoint):
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--prompt", "xy", "--max-new-tokens", "0"]) == 0
    assert capsys.readouterr().out == "xy\n"


def test_module_runs_as_a_script_and_imports_light(tmp_path):
    code = ("import sys, lava_matmulfree.cli; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('lava', 'torch', 'numpy', 'safetensors', "
            "'tokenizers')]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
    r = subprocess.run([sys.executable, "-m", "lava_matmulfree.cli", "generate", "--max-new-tokens", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


# ------------------------------------------------------------------------------------- errors
def test_bad_config_key(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\nhidden_size = 32\nnum_layerz = 2\n")
    run_error(capsys, ["generate", "--config", str(path)], "num_layerz", path)


def test_unknown_config_name(capsys):
    run_error(capsys, ["generate", "--config", "no-such-model"], "no-such-model")


def test_missing_checkpoint(capsys, tmp_path):
    run_error(capsys, ["generate", "--checkpoint", str(tmp_path / "nope")], tmp_path / "nope")


def test_broken_checkpoint(capsys, tmp_path, tiny_cfg, tiny_params):
    tiny_params["model.norm.weight"][0] = np.inf
    save_checkpoint(tmp_path, tiny_cfg, tiny_params, check=False)
    run_error(capsys, ["generate", "--checkpoint", str(tmp_path)], "model.norm.weight")


@pytest.mark.parametrize("argv, part", [
    (["generate", "--top-k", "-1"], "--top-k"),
    (["generate", "--temperature", "-0.5"], "--temperature"),
    (["generate", "--max-new-tokens", "many"], "--max-new-tokens"),
    (["generate", "--backend", "gpu"], "--backend"),
    (["generate", "--checkpoint", "a", "--config", "tiny"], "--config"),
    (["generate", "--no-such-option"], "--no-such-option"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
])
def test_bad_arguments(capsys, argv, part):
    run_error(capsys, argv, part)


def test_tokenizer_larger_than_the_model(capsys, tmp_path, tiny_cfg, tiny_params):
    """A checkpoint whose tokenizer.json has more tokens than the model's vocabulary."""
    cfg = dataclasses.replace(tiny_cfg, vocab_size=4, bos_token_id=1, eos_token_id=2)
    save_checkpoint(tmp_path, cfg, random_params(cfg))
    Tokenizer(models.WordLevel({f"w{i}": i for i in range(9)}, unk_token="w0")).save(str(tmp_path / "tokenizer.json"))
    run_error(capsys, ["generate", "--checkpoint", str(tmp_path)], "9", "4")
