"""Real-text calibration by default for a checkpoint, and checkpoints named by a Hugging Face repo id
(resolved offline from a local cache that each test writes in the layout ``huggingface-cli download`` leaves)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lava_matmulfree.cli import common as cli
from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.model.calibration import text_calibration_sequences
from lava_matmulfree.io.checkpoint import resolve_checkpoint, save_checkpoint
from lava_matmulfree.cli import main
from lava_matmulfree.config import load_config
from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.io.params import random_params
from lava_matmulfree.io.tokenizer import ByteTokenizer
from lava_matmulfree.io.corpus import SplitConfig, load_corpus, split_stream

REPO = "someone/tiny-hgrn"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def tiny_folder(tmp_path):
    cfg = load_config("tiny").model
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, cfg, random_params(cfg, seed=3))
    return folder


def write_hf_cache(cache, repo: str, files_from) -> None:
    """The hub cache layout: models--{owner}--{name}/refs/main holds the commit, snapshots/{commit}/ the files
    (here copies; huggingface-cli leaves symlinks into blobs/, which resolve to the same content)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for f in files_from.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())


def test_text_sequences_come_from_the_training_split_only():
    tok = ByteTokenizer()
    seqs = text_calibration_sequences(tok, 259, num=6, length=50)
    assert len(seqs) == 6 and all(len(s) == 50 for s in seqs)
    train, val = split_stream(load_corpus(tok).tokens, SplitConfig())
    stream = np.concatenate(train)
    for s in seqs:  # every window is a contiguous piece of the training stream
        hits = np.flatnonzero(stream[:len(stream) - 49] == s[0])
        assert any(np.array_equal(stream[h:h + 50], s) for h in hits)
    text = bytes(t - 3 for s in seqs for t in s if t >= 3).decode("utf-8", errors="replace")
    assert sum(c.isalpha() or c.isspace() for c in text) > 0.5 * len(text)  # documentation, not noise
    with pytest.raises(ValueError, match="only 100 tokens"):
        text_calibration_sequences(tok, 100)


def test_a_sequence_longer_than_the_held_out_text_is_refused_and_overlap_is_named(tiny_folder, capsys, caplog):
    """eval --length 30000 on a checkpoint cut the length to the 22,528 held-out tokens without a word, and
    every one of its windows was then the same one."""
    tok = ByteTokenizer()
    held = len(np.concatenate(split_stream(load_corpus(tok).tokens, SplitConfig())[1]))
    with pytest.raises(ValueError, match=f"do not fit in the {held:,} tokens of the corpus's held-out"):
        text_calibration_sequences(tok, 259, num=2, length=held + 1, held_out=True)
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--checkpoint", str(tiny_folder), "--sequences", "2", "--length", str(held + 1)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"{held + 1:,} tokens do not fit" in err and "Traceback" not in err, err
    assert "calibrat" not in err.lower(), err  # refused before calibrating, not after it
    for length in (held, held - 1):  # 1 and 2 distinct starts for 4 windows: the same tokens counted again
        with pytest.raises(ValueError, match="leave room for only [12] distinct ones"):
            text_calibration_sequences(tok, 259, num=4, length=length, held_out=True)
    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        seqs = text_calibration_sequences(tok, 259, num=3, length=held // 2, held_out=True)
    assert len({tuple(s) for s in seqs}) == 3 and "overlap" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="lava_matmulfree"):
        text_calibration_sequences(tok, 259, num=2, length=held // 2, held_out=True)
    assert caplog.text == ""


def test_checkpoint_default_is_real_text_and_differs_from_random(tiny_folder):
    text = build_evaluation(checkpoint=tiny_folder, num_calib=4, calib_length=64)
    rand = build_evaluation(checkpoint=tiny_folder, calibration="random", num_calib=4, calib_length=64)
    assert text.calibration.source.startswith("text: 4 windows of 64 tokens of pydoc_data.topics")
    assert rand.calibration.source.startswith("random token ids")
    assert text.calibration.stats != rand.calibration.stats
    assert build_evaluation("tiny", seed=3).calibration.source.startswith("random token ids")  # no text: no tokenizer
    with pytest.raises(ValueError, match="calibration must be one of"):
        build_evaluation(checkpoint=tiny_folder, calibration="noise")


def test_repo_id_resolves_from_a_local_cache(tmp_path, tiny_folder):
    cache = tmp_path / "hub"
    write_hf_cache(cache, REPO, tiny_folder)
    path = resolve_checkpoint(REPO, cache_dir=cache)
    assert path == cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert json.loads((path / "config.json").read_text())["hidden_size"] == 72
    assert resolve_checkpoint(tiny_folder) == tiny_folder  # a path stays a path
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache .*huggingface-cli download other/model"):
        resolve_checkpoint("other/model", cache_dir=cache)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        resolve_checkpoint(str(tmp_path / "a" / "b" / "c"), cache_dir=cache)


def test_cli_eval_takes_a_repo_id(tmp_path, tiny_folder, monkeypatch, capsys):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    write_hf_cache(cache, REPO, tiny_folder)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert main(["eval", "--checkpoint", REPO, "--sequences", "1", "--length", "8"]) == 0
    out = capsys.readouterr().out
    assert "calibrated on: text:" in out and "top-1 agreement" in out
    with pytest.raises(SystemExit) as ei:
        main(["eval", "--checkpoint", "nobody/absent", "--sequences", "1", "--length", "8"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "error: --checkpoint nobody/absent: not a local folder, and not in the Hugging Face cache" in err
    assert "Traceback" not in err


def test_packaged_model_option_names_a_missing_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "DEEP_MODEL_DIR", tmp_path / "no_deep_model")
    with pytest.raises(SystemExit) as ei:
        main(["eval", "--model", "deep", "--sequences", "1", "--length", "4"])
    assert ei.value.code == 2 and "--model deep: the packaged model is not installed" in capsys.readouterr().err
