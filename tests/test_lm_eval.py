"""lm-evaluation-harness (lm-eval) driving the float reference and the fixed-point model of the shipped demo
model, on the local tasks built from the held-out corpus text (offline): all three request types, scored
side by side and checked against the project's own float and golden computations."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the tasks' data are local files: never ask the Hub
pytest.importorskip("lm_eval", reason="the eval extra (lm-eval) is not installed: pip install '.[eval]'")

from lava_matmulfree.evaluation.accuracy import log_softmax  # noqa: E402
from lava_matmulfree.graph.backends import generate  # noqa: E402
from lava_matmulfree.evaluation.lm_eval_adapter import MatMulFreeLM, compare, write_corpus_tasks  # noqa: E402
from lava_matmulfree.io.tokenizer import ByteTokenizer  # noqa: E402

NUM_DOCS = 4


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    names = write_corpus_tasks(folder, NUM_DOCS)
    return names, compare("demo", names, include_path=folder)


def direct_loglikelihood(model: MatMulFreeLM, context: str, continuation: str) -> float:
    tok = ByteTokenizer()
    ctx, cont = tok.encode(context), tok.encode(continuation)
    logits, _ = model._prefill((ctx + cont)[:-1])
    lp = log_softmax(logits[-len(cont):])
    return float(lp[np.arange(len(cont)), cont].sum())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_lm_eval_scores_float_and_fixed_point_side_by_side(results):
    names, res = results
    assert set(res) == {"float", "fixed"}
    for backend, r in res.items():
        for name in names:
            assert len(r["samples"][name]) == NUM_DOCS, (backend, name)
    f, q = res["float"]["results"], res["fixed"]["results"]
    # the trained model picks the true continuation far above chance (1/4) on both backends
    assert f["lmf_corpus_choice"]["acc,none"] >= 0.5 and q["lmf_corpus_choice"]["acc,none"] >= 0.5
    # fixed point tracks float: byte perplexity within 2 % (the demo model's validation gap is 0.2 %)
    bf, bq = f["lmf_corpus_ppl"]["byte_perplexity,none"], q["lmf_corpus_ppl"]["byte_perplexity,none"]
    assert 1.0 < bf < 6.0 and abs(bq / bf - 1.0) < 0.02
    assert 0.0 <= f["lmf_corpus_gen"]["exact_match,none"] <= 1.0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_lm_eval_requests_equal_the_projects_own_computations(results):
    names, res = results
    for backend in ("float", "fixed"):
        model = MatMulFreeLM("demo", backend)
        # multiple choice: every choice's log-likelihood as computed directly
        for s in res[backend]["samples"]["lmf_corpus_choice"][:2]:
            doc = s["doc"]
            got = [r[0][0] for r in s["resps"]]
            want = [direct_loglikelihood(model, doc["context"], c) for c in doc["choices"]]
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        # rolling: bits per byte over all documents = total NLL after <s> / bytes / ln 2
        nll, nbytes = 0.0, 0
        for s in res[backend]["samples"]["lmf_corpus_ppl"]:
            text = s["doc"]["text"]
            tok = ByteTokenizer()
            ids = tok.encode(text)
            logits, _ = model._prefill([tok.bos_token_id] + ids[:-1])
            nll -= float(log_softmax(logits)[np.arange(len(ids)), ids].sum())
            nbytes += len(text.encode("utf-8"))
        bpb = res[backend]["results"]["lmf_corpus_ppl"]["bits_per_byte,none"]
        assert math.isclose(bpb, nll / nbytes / math.log(2), rel_tol=1e-9)
    # generation on the fixed-point backend = the golden model's own greedy decoding, cut at the first space
    net = MatMulFreeLM("demo", "fixed").net
    tok = ByteTokenizer()
    for s in res["fixed"]["samples"]["lmf_corpus_gen"][:2]:
        out = s["resps"][0][0]
        gen = generate("reference", net, tok.encode(s["doc"]["context"]), 24, 0.0, 0, 0)
        text = tok.decode(gen.tokens)
        assert out == text.split(" ")[0].split("\n")[0]


def test_corpus_tasks_and_model_arguments(tmp_path):
    import json

    names = write_corpus_tasks(tmp_path, 5)
    assert names == ["lmf_corpus_choice", "lmf_corpus_ppl", "lmf_corpus_gen"]
    docs = [json.loads(line) for line in (tmp_path / "lmf_corpus_choice.jsonl").read_text().splitlines()]
    assert len(docs) == 5 and all(len(d["choices"]) == 4 and 0 <= d["label"] < 4 for d in docs)
    assert {d["label"] for d in docs} == {0, 1, 2, 3}  # the true continuation moves
    assert all(len(set(d["choices"])) == 4 for d in docs)
    for n in names:
        assert f"task: {n}" in (tmp_path / f"{n}.yaml").read_text()
    with pytest.raises(ValueError, match="backend must be one of"):
        MatMulFreeLM("demo", "gpu")
    with pytest.raises(ValueError, match="need backend=fixed"):
        MatMulFreeLM("demo", "float", act_bits="16")
    with pytest.raises(ValueError, match="unknown fixed-point knob 'nope'"):
        MatMulFreeLM("demo", "fixed", nope="1")
    lm = MatMulFreeLM("demo", "fixed", act_bits="12", batch_size=1, device="cpu")
    assert lm.net.fp.act_bits == 12 and lm.net.calibration.source.startswith("text:")


def test_a_compiled_network_of_other_weights_is_not_scored(tmp_path, capsys):
    """A folder's compiled.safetensors left from other weights (`train --overwrite` keeps it) was scored by the
    adapter in place of the folder's weights, without a word; `generate` already refused it."""
    from lava_matmulfree.config import load_model_config
    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.io.checkpoint import save_checkpoint
    from lava_matmulfree.io.packaged import COMPILED_FILE
    from lava_matmulfree.io.params import random_params

    cfg = load_model_config("tiny")
    save_checkpoint(tmp_path, cfg, random_params(cfg, seed=1))
    build_evaluation(checkpoint=tmp_path, calibration="random").net.save(tmp_path / COMPILED_FILE)
    lm = MatMulFreeLM(str(tmp_path), "fixed")
    assert "warning" not in capsys.readouterr().err  # its own weights' network is taken as it is
    assert lm.net.calibration.source.startswith("random")
    save_checkpoint(tmp_path, cfg, random_params(cfg, seed=2))  # new weights beside the old compiled file
    lm = MatMulFreeLM(str(tmp_path), "fixed")
    err = capsys.readouterr().err
    assert f"{tmp_path / COMPILED_FILE} was compiled from other weights than those in {tmp_path}" in err, err
    assert not lm.net.calibration.source.startswith("random")  # compiled from the folder's weights now


def test_a_bad_model_argument_is_one_line_naming_model_args(tmp_path, capsys):
    """A bad --model_args entry ended in a traceback whose message spoke of --set, which the user never gave."""
    from lava_matmulfree.evaluation.lm_eval_adapter import main

    write_corpus_tasks(tmp_path, 3)
    rc = main(["run", "--model", "lava-matmulfree", "--model_args", "pretrained=demo,backend=fixed,bogus=1",
               "--include_path", str(tmp_path), "--tasks", "lmf_corpus_ppl", "--limit", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: --model_args 'bogus=1': unknown fixed-point knob 'bogus'" in err, err
    assert "Traceback" not in err and "--set" not in err

