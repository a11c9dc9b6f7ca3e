"""Tokenizers behind one small interface: a checkpoint's ``tokenizer.json`` or a built-in byte tokenizer.

Interface (both classes): ``encode(text, add_bos=False) -> list[int]`` (no special tokens unless
``add_bos``), ``decode(ids) -> str`` (special tokens skipped), ``vocab_size``, ``bos_token_id``,
``eos_token_id`` (-1 when the tokenizer has none, as in :class:`ModelConfig`), and ``stream_decoder()``
for printing tokens as they are generated (a token may end in the middle of a UTF-8 character).
No network: only local files are read.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Protocol

from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.io.checkpoint import present

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")  # where HF names bos / eos
OTHER_TOKENIZER_FILES = ("tokenizer.model", "vocab.json", "merges.txt")  # formats this package does not read
BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>")
EOS_CANDIDATES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>")
NO_TOKEN = -1
REPLACEMENT_CHAR = "\ufffd"
UTF8_MAX_BYTES = 4  # bytes of the longest UTF-8 character


class Tokenizer(Protocol):
    vocab_size: int
    bos_token_id: int
    eos_token_id: int

    def encode(self, text: str, add_bos: bool = False) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def stream_decoder(self) -> "StreamDecoder": ...


class StreamDecoder:
    """Incremental detokenisation: ``push(id)`` returns the text that became final, ``flush()`` the rest.

    Decodes a short window of recent ids (the last emitted token plus the new ones) and holds text back while
    it ends in U+FFFD, i.e. while the last token ends inside a multi-byte UTF-8 character. The window starts
    at an already emitted token so that decoders which drop a word's leading space at the start of a
    sequence (SentencePiece-style) do not drop it again mid-stream. At most UTF8_MAX_BYTES - 1 tokens stay held:
    a character has at most UTF8_MAX_BYTES bytes, so a token held longer starts none, and its U+FFFD is the text
    itself (ids that decode to no character held the whole stream); the newer tokens stay held, as they may
    still complete one."""

    def __init__(self, decode):
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # window start: ids before it are final
        self._read = 0  # ids before it have been emitted

    def push(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        text = self._decode(self._ids[self._prefix:])
        if len(text) > len(prefix_text) and not text.endswith(REPLACEMENT_CHAR):
            self._prefix, self._read = self._read, len(self._ids)
            return text[len(prefix_text):]
        if len(self._ids) - self._read >= UTF8_MAX_BYTES:  # the oldest held token is no start of a character
            keep = len(self._ids) - (UTF8_MAX_BYTES - 1)  # the newest may still be: they stay held
            done = self._decode(self._ids[self._prefix:keep])
            self._prefix, self._read = self._read, keep
            return done[len(prefix_text):]
        return ""

    def flush(self) -> str:
        """What is still held back (incomplete characters come out as U+FFFD)."""
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        text = self._decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        return text[len(prefix_text):]


class ByteTokenizer:
    """UTF-8 bytes as tokens: 0 <pad>, 1 <s>, 2 </s>, byte b -> 3 + b (vocab 259)."""

    PAD, BOS, EOS = 0, 1, 2
    BYTE_OFFSET = 3
    NUM_BYTES = 256
    SPECIALS = ("<pad>", "<s>", "</s>")

    vocab_size = BYTE_OFFSET + NUM_BYTES
    stands_in_for = None  # the checkpoint whose missing tokenizer.json it stands in for (named once by the CLI)
    bos_token_id = BOS
    eos_token_id = EOS
    pad_token_id = PAD

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [self.BYTE_OFFSET + b for b in text.encode("utf-8")]
        return [self.BOS] + ids if add_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Special tokens are skipped; invalid UTF-8 and ids outside the vocabulary become U+FFFD."""
        parts: list[str] = []
        buf = bytearray()
        for i in ids:
            i = int(i)
            if self.BYTE_OFFSET <= i < self.vocab_size:
                buf.append(i - self.BYTE_OFFSET)
            elif not 0 <= i < self.BYTE_OFFSET:
                parts.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
                parts.append(REPLACEMENT_CHAR)
        parts.append(buf.decode("utf-8", errors="replace"))
        return "".join(parts)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self.decode)

    def __repr__(self):
        return "ByteTokenizer()"


class HFTokenizer:
    """A ``tokenizer.json`` read by the ``tokenizers`` library."""

    def __init__(self, tok, path: str, bos_token_id: int = NO_TOKEN, eos_token_id: int = NO_TOKEN):
        self.tok = tok
        self.path = path
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = list(self.tok.encode(text, add_special_tokens=False).ids)
        if add_bos and self.bos_token_id != NO_TOKEN:
            ids = [self.bos_token_id] + ids
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self.decode)

    def __repr__(self):
        return f"HFTokenizer({self.path!r}, vocab_size={self.vocab_size})"


def _special_token_names(folder: Path) -> dict[str, str]:
    """bos_token / eos_token strings named by tokenizer_config.json or special_tokens_map.json."""
    names: dict[str, str] = {}
    for fname in TOKENIZER_CONFIG_FILES:
        path = folder / fname
        if not present(path):  # a folder, a dangling link or a loop there is an error naming it, not "none"
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            continue
        for key in ("bos_token", "eos_token"):
            v = data.get(key)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str) and key not in names:
                names[key] = v
    return names


def _token_id(tok, named: str | None, candidates: tuple[str, ...]) -> int:
    for name in ((named,) if named is not None else candidates):
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    return NO_TOKEN


#: The compiled file's header key that carries the tokenizer of the checkpoint it was compiled from, so that the
#: file alone encodes prompts as the checkpoint does (docs/cli.md, "`compile`").
TOKENIZER_META_KEY = "tokenizer"


def tokenizer_record(tok) -> str | None:
    """``tok`` as one JSON string (its tokenizer.json, bos and eos ids) for a compiled file's header; None for the
    byte tokenizer, which needs no record."""
    if not isinstance(tok, HFTokenizer):
        return None
    return json.dumps({"tokenizer_json": tok.tok.to_str(), "bos_token_id": tok.bos_token_id,
                       "eos_token_id": tok.eos_token_id, "source": tok.path})


def tokenizer_from_record(record: str, where: str) -> "HFTokenizer":
    """The tokenizer a compiled file ``where`` carries (:func:`tokenizer_record`); one clear error if broken."""
    from tokenizers import Tokenizer as _HFTokenizer

    try:
        rec = json.loads(record)
        tok = _HFTokenizer.from_str(rec["tokenizer_json"])
        bos, eos = int(rec["bos_token_id"]), int(rec["eos_token_id"])
    except Exception as e:  # the library raises bare Exception subclasses for malformed files
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{where}: its header's tokenizer is not readable: {first_line}") from None
    return HFTokenizer(tok, f"{where} (the tokenizer of {rec.get('source', 'its checkpoint')})", bos, eos)


def compiled_file_tokenizer(path: str | Path):
    """The tokenizer a compiled network file carries in its header, or None where it carries none (compiled
    from random weights, a byte tokenizer, or by an older version)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            record = (fh.metadata() or {}).get(TOKENIZER_META_KEY)
    except Exception:  # an unreadable file is QuantisedNetwork.load's to name
        return None
    return None if record is None else tokenizer_from_record(record, str(path))


def load_tokenizer(folder: str | Path | None = None):
    """``folder/tokenizer.json`` through the ``tokenizers`` library when present, else :class:`ByteTokenizer`; a
    ``tokenizer.json`` that is there but is no readable file (a folder, a dangling link, a symlink loop) is a
    CheckpointError naming it, not the byte tokenizer's silent stand-in.

    bos / eos come from ``tokenizer_config.json`` or ``special_tokens_map.json`` when they name them, else
    from the usual token strings (``<s>``, ``</s>`` ...), else -1."""
    if folder is None:
        return ByteTokenizer()
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such tokenizer folder")
    path = folder / TOKENIZER_FILE
    if not present(path):  # a folder, a dangling link or a symlink loop is an error naming it, not the byte tokenizer
        others = [n for n in OTHER_TOKENIZER_FILES if (folder / n).is_file()]
        if others:
            log.warning("%s: has %s but no %s; using the byte tokenizer, whose ids will not match the model's "
                        "vocabulary", folder, ", ".join(others), TOKENIZER_FILE)
        return ByteTokenizer()
    from tokenizers import Tokenizer as _HFTokenizer

    try:
        tok = _HFTokenizer.from_file(str(path))
    except Exception as e:  # the library raises bare Exception subclasses for malformed files
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable tokenizer file: {first_line}") from None
    names = _special_token_names(folder)
    return HFTokenizer(tok, str(path), _token_id(tok, names.get("bos_token"), BOS_CANDIDATES),
                       _token_id(tok, names.get("eos_token"), EOS_CANDIDATES))
