"""Quantisation-aware training (lava_matmulfree.train.trainer): what we train is what we run.

The torch tests need the ``train`` extra (lava-dl, which brings torch); without it they are reported as
skipped by ``pytest.importorskip`` (CI installs the extra). The data-split tests need numpy only.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lava_matmulfree.config import load_config, replace
from lava_matmulfree.model.float_model import FloatModel, act_quant_q8, ternarize
from lava_matmulfree.io.params import expected_tensors, random_params
from lava_matmulfree.io.corpus import (SplitConfig, WindowSampler, eval_windows, load_corpus, split_stream)

SEEDS = (0, 1, 2)
EXACT = 1e-12  # float64: the torch model and the numpy float model differ only in summation order


# ----------------------------------------------------------------------------------------- data split
def test_split_is_disjoint_and_complete():
    tokens = np.arange(10_000)
    split = SplitConfig(seq_len=16, block_tokens=100, val_every=5)
    train, val = split_stream(tokens, split)
    tr, va = np.concatenate(train), np.concatenate(val)
    assert not set(tr) & set(va)
    assert len(tr) + len(va) == len(tokens)
    assert len(va) == len(tokens) // split.val_every
    assert all(len(b) == split.block_tokens for b in val)


def test_windows_stay_inside_segments_and_cover_validation():
    tokens = np.arange(5_000)
    split = SplitConfig(seq_len=16, block_tokens=100, val_every=4)
    train, val = split_stream(tokens, split)
    x, y = WindowSampler(train, split.seq_len).sample(256, np.random.default_rng(0))
    assert x.shape == y.shape == (256, split.seq_len)
    w = np.concatenate([x, y[:, -1:]], axis=1)
    assert (np.diff(w, axis=1) == 1).all()  # consecutive tokens: no window crosses a held-out block
    assert np.array_equal(y, x + 1)
    wins = eval_windows(val, split.seq_len)
    targets = np.concatenate([t for _, t in wins])
    assert len(targets) == sum(len(b) - 1 for b in val)
    assert all(np.array_equal(t, i + 1) for i, t in wins)


def test_corpus_is_pydoc_topics_with_document_markers():
    from lava_matmulfree.io.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    c = load_corpus(tok)
    assert c.num_documents > 0 and c.num_bytes > 100_000
    assert (c.tokens == tok.bos_token_id).sum() == (c.tokens == tok.eos_token_id).sum() == c.num_documents
    assert len(c.tokens) == c.num_bytes + 2 * c.num_documents
    assert c.tokens.max() < tok.vocab_size


# ----------------------------------------------------------------------------------------- torch
@pytest.fixture(scope="module")
def T():
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    import torch

    from lava_matmulfree.train import trainer as train

    torch.set_num_threads(2)
    return train


@pytest.fixture(scope="module")
def tiny():
    return load_config("tiny").model


def _torch_model(T, cfg, params):
    import torch

    m = T.HGRNBitForCausalLM(cfg).to(torch.float64)
    m.load_numpy_params({k: v.astype(np.float64) for k, v in params.items()})
    return m.eval()


def test_state_dict_names_are_the_checkpoint_names(T, tiny):
    m = T.HGRNBitForCausalLM(tiny)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == expected_tensors(tiny)


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_equals_float_model(T, tiny, seed):
    import torch

    params = random_params(tiny, seed=seed, dtype=np.float64)
    m = _torch_model(T, tiny, params)
    toks = np.random.default_rng(seed).integers(0, tiny.vocab_size, size=37)
    ref_logits, ref_state = FloatModel(tiny, params).prefill(toks)
    with torch.no_grad():
        logits, state = m(torch.as_tensor(toks))
    assert logits.dtype == torch.float64
    np.testing.assert_allclose(logits.numpy(), ref_logits, rtol=0, atol=EXACT)
    np.testing.assert_allclose(state.numpy(), ref_state.h, rtol=0, atol=EXACT)


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_equals_float_model_from_a_state_and_batched(T, tiny, seed):
    """Continuing from a state (prompt then continuation) and a batch of sequences, lower bound on or off."""
    import torch

    for cfg in (tiny, replace(tiny, use_lower_bound=False)):
        params = random_params(cfg, seed=seed, dtype=np.float64)
        m = _torch_model(T, cfg, params)
        fm = FloatModel(cfg, params)
        toks = np.random.default_rng(seed + 100).integers(0, cfg.vocab_size, size=(3, 20))
        split = 7
        with torch.no_grad():
            _, st = m(torch.as_tensor(toks[:, :split]))
            logits, _ = m(torch.as_tensor(toks[:, split:]), st)
            full, _ = m(torch.as_tensor(toks))
        for b in range(toks.shape[0]):
            _, fst = fm.prefill(toks[b, :split])
            ref, _ = fm.prefill(toks[b, split:], fst)
            np.testing.assert_allclose(logits[b].numpy(), ref, rtol=0, atol=EXACT)
            np.testing.assert_allclose(full[b, split:].numpy(), ref, rtol=0, atol=EXACT)


@pytest.mark.parametrize("length", (1, 2, 5, 16, 37))
def test_parallel_scan_equals_loop(T, length):
    import torch

    g = torch.Generator().manual_seed(length)
    f = torch.rand(2, length, 8, generator=g, dtype=torch.float64)
    i = torch.randn(2, length, 8, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 8, generator=g, dtype=torch.float64)
    for h in (None, h0):
        torch.testing.assert_close(T.linear_scan(f, i, h), T.loop_scan(f, i, h), rtol=0, atol=EXACT)


@pytest.mark.parametrize("seed", SEEDS)
def test_ste_quantisers_forward_exactly_like_float_model(T, seed):
    import torch

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((24, 40)) * 0.02
    wt_ref, s_ref = ternarize(w)
    wt, s = T.ternary_ste(torch.as_tensor(w))
    assert float(s) == pytest.approx(s_ref, rel=EXACT)
    assert np.array_equal(wt.numpy(), wt_ref.astype(np.float64))
    x = rng.standard_normal((5, 40)) * 3
    np.testing.assert_array_equal(T.act_quant_ste(torch.as_tensor(x)).numpy(), act_quant_q8(x))
    z = np.zeros((2, 40))  # the absmax floor
    np.testing.assert_array_equal(T.act_quant_ste(torch.as_tensor(z)).numpy(), act_quant_q8(z))


def test_ste_quantisers_pass_gradients(T):
    import torch

    g = torch.Generator().manual_seed(0)
    w = (torch.randn(16, 24, generator=g, dtype=torch.float64) * 0.02).requires_grad_()
    c = torch.randn(16, 24, generator=g, dtype=torch.float64)
    wt, s = T.ternary_ste(w)
    (wt * c).sum().backward()
    torch.testing.assert_close(w.grad, c * s)  # straight through round and clip, scale held constant
    x = (torch.randn(4, 24, generator=g, dtype=torch.float64) * 5).requires_grad_()
    cx = torch.randn(4, 24, generator=g, dtype=torch.float64)
    (T.act_quant_ste(x) * cx).sum().backward()
    torch.testing.assert_close(x.grad, cx)


def test_every_parameter_gets_a_gradient(T, tiny):
    import torch

    m = T.HGRNBitForCausalLM(tiny)
    m.init_weights(0.02, torch.Generator().manual_seed(0))
    toks = torch.randint(0, tiny.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    logits, _ = m(toks[:, :-1])
    torch.nn.functional.cross_entropy(logits.reshape(-1, tiny.vocab_size), toks[:, 1:].reshape(-1)).backward()
    for name, p in m.named_parameters():
        if name == "model.embeddings.weight":  # only the rows of the tokens used
            assert p.grad[toks[:, :-1].unique()].abs().sum() > 0
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_lower_bounds_rule(T, tiny):
    m = T.HGRNBitForCausalLM(tiny)
    lb = m.model.layer_lower_bounds().detach().numpy()
    L = tiny.num_layers
    np.testing.assert_allclose(lb, np.repeat(np.arange(L)[:, None] / L, tiny.hidden_size, 1), atol=1e-7)


def test_few_steps_lower_the_loss_and_the_saved_checkpoint_runs_the_same(T, tmp_path):
    from lava_matmulfree.io.checkpoint import load_checkpoint
    from lava_matmulfree.io.corpus import TRAINING_FILE
    from lava_matmulfree.evaluation.perplexity import evaluate_checkpoint

    tc = T.TrainConfig(hidden_size=32, num_layers=2, intermediate_size=64, steps=40, batch_size=8, lr=1e-2,
                       warmup_steps=5, eval_every=10, eval_windows=16, save_dtype="float32")
    split = SplitConfig(seq_len=32, block_tokens=1024, val_every=200)
    rec = T.train(tc, tmp_path, split, progress=False, log=lambda *a: None)
    first = rec["history"][0]["val_loss"]
    final = rec["result"]["val_loss"]
    assert final < first < math.log(259)
    assert final < math.log(259) - 1.0
    cfg, params = load_checkpoint(tmp_path)
    assert cfg.hidden_size == 32 and cfg.vocab_size == 259 and set(params) == set(expected_tensors(cfg))
    # the float model of the saved (float32) checkpoint computes the torch model's validation loss
    assert rec["result"]["float_model_val_loss"] == pytest.approx(final, abs=1e-4)
    saved = json.loads((tmp_path / TRAINING_FILE).read_text())
    assert saved["split"] == {"seq_len": 32, "block_tokens": 1024, "val_every": 200}
    # a TrainConfig without a name (the Python API): training.json records the name config.json got
    assert saved["train"]["name"] == cfg.name == f"lava-matmulfree-{tmp_path.name}"
    assert evaluate_checkpoint(tmp_path, progress=False)["val_loss"] == pytest.approx(
        rec["result"]["float_model_val_loss"], abs=1e-9)


def test_training_import_avoids_slayer_package_and_package_imports_without_torch():
    code = ("import sys, lava_matmulfree.train.trainer\n"
            "bad = [m for m in ('cv2', 'torchvision', 'lava.lib.dl.slayer') if m in sys.modules]\n"
            "assert not bad, bad\n")
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    subprocess.run([sys.executable, "-c", code], check=True)
    no_torch = ("import sys\nsys.modules['torch'] = None\n"
                "import lava_matmulfree, lava_matmulfree.io.corpus, lava_matmulfree.model.float_model\n"
                "try:\n    import lava_matmulfree.train.trainer\nexcept ImportError as e:\n"
                "    assert 'lava-matmulfree[train]' in str(e), e\nelse:\n    raise SystemExit('imported')\n")
    subprocess.run([sys.executable, "-c", no_torch], check=True)


def test_shipped_demo_model_loads_and_speaks():
    """The shipped demo checkpoint: within the size budget, loads, and greedy text is printable bytes."""
    from pathlib import Path

    import lava_matmulfree
    from lava_matmulfree.io.checkpoint import load_checkpoint
    from lava_matmulfree.model.sampling import Sampler
    from conftest import float_generation
    from lava_matmulfree.io.tokenizer import ByteTokenizer

    folder = Path(lava_matmulfree.__file__).parent / "data" / "demo_model"
    if not (folder / "model.safetensors").is_file():
        pytest.fail(f"{folder}: the shipped demo model is missing")
    size = sum((folder / n).stat().st_size for n in ("config.json", "model.safetensors", "training.json"))
    assert size <= 10 * 2 ** 20
    cfg, params = load_checkpoint(folder)
    fm = FloatModel(cfg, params, dtype=np.float32)
    tok = ByteTokenizer()
    out = float_generation(fm, tok.encode("The ", add_bos=True), 40, Sampler(), tok.eos_token_id)
    text = tok.decode(out)
    assert sum(c.isalpha() or c == " " for c in text) > 0.7 * len(text), text


def test_snapshots_of_a_long_run_are_complete_checkpoints(T, tmp_path, monkeypatch):
    """--save-every writes a loadable checkpoint (its step in training.json) during the run, through a scratch
    folder that is gone afterwards; the final save replaces it."""
    from lava_matmulfree.io.checkpoint import load_checkpoint
    from lava_matmulfree.io.corpus import TRAINING_FILE

    out = tmp_path / "model"
    seen = []
    real = T._save_snapshot

    def spy(out_, cfg, model, tc, split, step, command):
        real(out_, cfg, model, tc, split, step, command)
        rec = json.loads((out_ / TRAINING_FILE).read_text())
        assert rec["split"]["seq_len"] == 16  # evaluation tools read the split from a snapshot too
        seen.append((step, rec["snapshot_step"], load_checkpoint(out_)))

    monkeypatch.setattr(T, "_save_snapshot", spy)
    tc = T.TrainConfig(hidden_size=32, num_layers=2, intermediate_size=64, steps=7, batch_size=2, warmup_steps=1,
                       eval_every=0, save_every=3, save_dtype="float32", name="snap-test")
    T.train(tc, out, SplitConfig(seq_len=16, block_tokens=1024, val_every=200), progress=False,
            check_float_model=False, log=lambda *a: None)
    assert [s[:2] for s in seen] == [(3, 3), (6, 6)]
    assert seen[0][2][0].name == "snap-test" and set(seen[0][2][1]) == set(expected_tensors(seen[0][2][0]))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no scratch folder left
    final = json.loads((out / TRAINING_FILE).read_text())
    assert "snapshot_step" not in final and final["train"]["save_every"] == 3
    assert not np.array_equal(load_checkpoint(out)[1]["lm_head.weight"], seen[0][2][1]["lm_head.weight"])


def test_a_trained_model_is_named_after_its_folder_not_the_demo():
    """Every model trained without --name was called lava-matmulfree-demo, and `eval` reported a user's model
    as the shipped demo model."""
    from lava_matmulfree.train.options import parse

    assert parse(["--out", "runs/my_run"])[1].name == "lava-matmulfree-my_run"
    assert parse([])[1].name == "lava-matmulfree-demo"  # the shipped demo's own folder, demo_model
    assert parse(["--out", "x", "--name", "mine"])[1].name == "mine"


def test_a_warm_up_as_long_as_the_run_is_named(caplog):
    """``train --steps 50`` under the default 100 warm-up steps trained at most at half the learning rate, with
    no decay, without a word."""
    from lava_matmulfree.train.options import parse

    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        parse(["--steps", "50"])
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "--warmup-steps 100 is not below --steps 50" in said[0] and "lr x 0.50" in said[0], said
    caplog.clear()
    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        parse(["--steps", "50", "--warmup-steps", "5"])
        parse(["--steps", "101"])
    assert not caplog.records, caplog.text

