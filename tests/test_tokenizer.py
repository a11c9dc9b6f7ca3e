"""The byte tokenizer, tokenizer.json through the tokenizers library, and streaming decode."""
from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.io.tokenizer import ByteTokenizer, HFTokenizer, load_tokenizer

TEXTS = ["hello world", "héllo wörld — naïve café", "日本語のテキスト", "emoji 🙂🚀 and tabs\tand\nnewlines", ""]
CORPUS = ["the quick brown fox jumps over the lazy dog", "neuromorphic chips run spiking networks",
          "ternary weights make matmul free models", "héllo wörld 日本 🙂"] * 20


def stream(tok, ids):
    dec = tok.stream_decoder()
    pieces = [dec.push(i) for i in ids]
    return pieces, "".join(pieces) + dec.flush()


# ------------------------------------------------------------------------------------- bytes
@pytest.mark.parametrize("text", TEXTS)
def test_byte_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids == [3 + b for b in text.encode("utf-8")]
    assert tok.decode(ids) == text


def test_byte_ids_and_specials():
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.bos_token_id, tok.eos_token_id) == (259, 1, 2)
    assert tok.encode("A", add_bos=True) == [1, 3 + 65]
    assert tok.encode("\x00\xff") == [3, 3 + 0xC3, 3 + 0xBF]  # U+00FF is two UTF-8 bytes
    assert tok.decode([1, 3 + 72, 0, 3 + 105, 2]) == "Hi"  # <s>, <pad>, </s> skipped


def test_byte_decode_invalid_utf8_and_out_of_range():
    tok = ByteTokenizer()
    assert tok.decode([3 + 0xFF, 3 + 65]) == "\ufffdA"
    assert tok.decode([3 + 0xE2, 3 + 0x82]) == "\ufffd"  # truncated 3-byte character
    assert tok.decode([3 + 65, 300, 3 + 66]) == "A\ufffdB"  # id beyond the vocabulary


@pytest.mark.parametrize("text", TEXTS)
def test_byte_stream_decode(text):
    tok = ByteTokenizer()
    pieces, whole = stream(tok, tok.encode(text))
    assert whole == text
    assert all("\ufffd" not in p for p in pieces)  # never a half character


def test_byte_stream_holds_split_characters():
    tok = ByteTokenizer()
    euro = [3 + b for b in "€".encode()]  # e2 82 ac
    dec = tok.stream_decoder()
    assert [dec.push(i) for i in [3 + 97] + euro + [3 + 98]] == ["a", "", "", "€", "b"]
    dec = tok.stream_decoder()
    assert dec.push(euro[0]) == "" and dec.flush() == "\ufffd"  # incomplete at the end: replacement char


def test_byte_stream_holds_no_more_than_a_character():
    """Bytes that never complete a character (a random model's 0x80-0xBF run) were held to the end of the run, and
    all text after them; now at most the four bytes of the longest character are held."""
    tok = ByteTokenizer()
    cont = 3 + 0x80  # a continuation byte with no lead byte
    ids = [3 + 97, 3 + 0xF0, cont, cont, cont] + [cont] * 6 + [3 + 98]
    pieces, text = stream(tok, ids)
    assert text == tok.decode(ids)
    assert max(len(p) for p in pieces) <= 4 and pieces[-1].endswith("b")
    held = 0
    for p in pieces:
        held = held + 1 if p == "" else 0
        assert held < 4
    emoji = [3 + b for b in "🙂".encode()]  # a whole four-byte character still comes out whole
    assert stream(tok, emoji)[0] == ["", "", "", "🙂"]
    for before in range(1, 8):  # after stray bytes, a character that starts among the held ones is kept whole
        ids = [cont] * before + emoji + [3 + b for b in "é日".encode()] + [3 + 98]
        assert stream(tok, ids)[1] == tok.decode(ids), before


# ------------------------------------------------------------------------------------- tokenizer.json
def make_bpe(folder, special_config=True):
    """A small byte-level BPE trained here with the tokenizers library, saved as tokenizer.json."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    if special_config:
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>"}))
    return tok


def make_wordlevel(folder):
    vocab = {"[UNK]": 0, "<bos>": 1, "<eos>": 2, "spiking": 3, "neurons": 4, "fire": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["[UNK]", "<bos>", "<eos>"])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok


@pytest.mark.parametrize("text", TEXTS)
def test_bpe_tokenizer_json_round_trip(tmp_path, text):
    ref = make_bpe(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer)
    ids = tok.encode(text)
    assert ids == ref.encode(text).ids
    assert tok.decode(ids) == text
    assert stream(tok, ids)[1] == text


def test_bpe_specials_from_tokenizer_config(tmp_path):
    ref = make_bpe(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.bos_token_id == ref.token_to_id("<s>") and tok.eos_token_id == ref.token_to_id("</s>")
    assert tok.vocab_size == ref.get_vocab_size()
    ids = tok.encode("the fox", add_bos=True)
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids + [tok.eos_token_id]) == "the fox"  # specials skipped


def test_bpe_merges_shorten_known_text(tmp_path):
    make_bpe(tmp_path)
    tok = load_tokenizer(tmp_path)
    text = "the quick brown fox"
    assert len(tok.encode(text)) < len(text.encode())


def test_wordlevel_tokenizer_json(tmp_path):
    make_wordlevel(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.encode("spiking neurons fire") == [3, 4, 5]
    assert tok.decode([1, 3, 4, 5, 2]) == "spiking neurons fire"
    assert tok.encode("spiking dendrites") == [3, 0]
    # no tokenizer_config.json: bos / eos found among the usual names
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)


def test_folder_without_tokenizer_json_gives_bytes(tmp_path):
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    assert isinstance(load_tokenizer(None), ByteTokenizer)


def test_folder_with_only_sentencepiece_warns(tmp_path, caplog):
    (tmp_path / "tokenizer.model").write_bytes(b"\x00")
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    assert "tokenizer.model" in caplog.text


def test_bad_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": {')
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize("kind, says", [("folder", "is a folder"), ("dangling", "does not exist"),
                                        ("loop", "cannot be read")])
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_a_tokenizer_file_that_cannot_be_read_is_an_error_naming_it(tmp_path, kind, says, name):
    """A tokenizer.json that is a folder, a dangling link or a symlink loop was taken for none: the byte
    tokenizer stood in silently, with ids that do not match the model's vocabulary."""
    if name != "tokenizer.json":
        make_wordlevel(tmp_path)
    path = tmp_path / name
    if kind == "folder":
        path.mkdir()
    else:
        path.symlink_to("nowhere" if kind == "dangling" else name)
    with pytest.raises(CheckpointError) as e:
        load_tokenizer(tmp_path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value), str(e.value)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="nope"):
        load_tokenizer(tmp_path / "nope")


def test_stream_decode_with_a_sentencepiece_style_decoder(tmp_path):
    """Metaspace (Llama-style '▁word') drops the leading space at the start of a decode: streaming must not
    drop it at every token."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    lt = load_tokenizer(tmp_path)
    text = "the lazy fox runs spiking networks"
    ids = lt.encode(text)
    assert len(ids) > 5
    assert lt.decode(ids) == text
    pieces, whole = stream(lt, ids)
    assert whole == text


def test_a_checkpoint_without_its_tokenizer_is_named_when_the_bytes_cannot_be_its_vocabulary(capsys, tmp_path,
                                                                                            tiny_cfg):
    """A 32000-token checkpoint without tokenizer.json was fed byte ids without a word (its text, and the text it
    was calibrated on, meaningless); a byte-vocabulary model without one is the byte tokenizer's own case."""
    from lava_matmulfree.cli import main
    from lava_matmulfree.config import replace
    from lava_matmulfree.io.checkpoint import save_checkpoint
    from lava_matmulfree.io.params import random_params

    for vocab, warned in ((300, True), (tiny_cfg.vocab_size, False)):
        cfg = replace(tiny_cfg, vocab_size=vocab)
        folder = tmp_path / f"ckpt{vocab}"
        save_checkpoint(folder, cfg, random_params(cfg, seed=1))
        assert not (folder / "tokenizer.json").exists()
        assert main(["generate", "--checkpoint", str(folder), "--backend", "reference", "--prompt", "ab",
                     "--max-new-tokens", "2"]) == 0
        err = capsys.readouterr().err
        assert err.count("no tokenizer.json; the byte tokenizer stands in, whose 259 ids are not this model's "
                         f"vocabulary of {vocab}") == int(warned), err
