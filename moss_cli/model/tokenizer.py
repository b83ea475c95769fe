"""Qwen's BPE tokenizer straight from the `tokenizers` library, as transformers' Qwen2Tokenizer builds it.

transformers' tokenizer classes import about a second of its machinery before reading a file; the
checkpoint's tokenizer is the `tokenizers` library's all the same. `QwenTokenizer` builds it the way
transformers' Qwen2Tokenizer does (BPE over vocab.json and merges.txt, NFC normalizer, Qwen2's split
regex then byte-level pre-tokenizer, byte-level decoder, the added tokens of tokenizer_config.json),
or reads tokenizer.json where the checkpoint has one, and answers the three calls moss makes.
Anything unusual returns None, and loading.py falls back to transformers
(tests/model/test_tokenizer.py compares the two on many strings).
"""

from __future__ import annotations

import json
from pathlib import Path

TOKENIZER_FILE, CONFIG_FILE = "tokenizer.json", "tokenizer_config.json"
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
QWEN_CLASSES = (None, "Qwen2Tokenizer", "Qwen2TokenizerFast")
SPLIT_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                 r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


class QwenTokenizer:
    """The calls moss makes of a transformers tokenizer (encode, decode, convert_ids_to_tokens), on a
    `tokenizers.Tokenizer`. transformers ignores clean_up_tokenization_spaces for BPE, so decoding is
    the library's alone."""

    def __init__(self, backend):
        self.backend = backend

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, token_ids, skip_special_tokens: bool = False) -> str:
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, token_id: int) -> str | None:
        return self.backend.id_to_token(int(token_id))


def qwen_tokenizer(folder: Path) -> QwenTokenizer | None:
    """The folder's Qwen tokenizer, or None where it is not one this builds exactly as transformers does."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config.get("tokenizer_class") not in QWEN_CLASSES or config.get("add_prefix_space"):
        return None
    if config.get("split_special_tokens") or config.get("add_bos_token") or config.get("add_eos_token"):
        return None
    added = config.get("added_tokens_decoder") or {}
    try:
        backend = _from_json(folder) if (folder / TOKENIZER_FILE).is_file() else _from_vocab(folder, added)
    except Exception:  # a file tokenizers cannot read: transformers says why
        return None
    if backend is None or any(backend.token_to_id(entry.get("content")) != int(i) for i, entry in added.items()):
        return None
    return QwenTokenizer(backend)


def _from_json(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / TOKENIZER_FILE))


def _from_vocab(folder: Path, added: dict):
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    if not (folder / VOCAB_FILE).is_file() or not (folder / MERGES_FILE).is_file():
        return None
    # Read by the library itself (given the paths): faster than parsing 151,643 entries and merges here.
    backend = Tokenizer(BPE(vocab=str(folder / VOCAB_FILE), merges=str(folder / MERGES_FILE), dropout=None,
                            unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                            byte_fallback=False))
    backend.decoder = decoders.ByteLevel()
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    # In id order: each takes the next free id, as the file numbers them (qwen_tokenizer checks they did).
    backend.add_tokens([_added_token(added[token_id]) for token_id in sorted(added, key=int)])
    return backend


def _added_token(entry: dict):
    from tokenizers import AddedToken

    return AddedToken(entry["content"], single_word=entry.get("single_word", False), lstrip=entry.get("lstrip", False),
                      rstrip=entry.get("rstrip", False), normalized=entry.get("normalized", True),
                      special=entry.get("special", False))
