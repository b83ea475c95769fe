"""Small text helpers shared by the pipeline and the subtitle layout."""

from __future__ import annotations

_NO_SPACE_BEFORE = set(",.!?;:%)]}、，。！？；：")


def is_cjk(char: str) -> bool:
    """Kana, CJK ideographs, Hangul: scripts written without spaces between words."""
    return bool(char) and ("\u3040" <= char <= "\u30ff" or "\u3400" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af")


def join_words(words: list[str]) -> str:
    """Spaces between words, but not between CJK characters or before closing punctuation."""
    text = ""
    for word in words:
        if text and not (is_cjk(text[-1]) and is_cjk(word[:1])) and word[:1] not in _NO_SPACE_BEFORE:
            text += " "
        text += word
    return text


def split_tokens(text: str, max_chars: int) -> list[str]:
    """Words of `text`; a run longer than a line (CJK has no spaces) is cut into line-sized pieces."""
    tokens = []
    for word in text.split():
        while len(word) > max_chars:
            tokens.append(word[:max_chars])
            word = word[max_chars:]
        if word:
            tokens.append(word)
    return tokens


def wrap_lines(tokens: list[str], max_chars: int) -> list[str]:
    """Greedy line filling; no line longer than max_chars unless one token is."""
    lines: list[list[str]] = []
    for token in tokens:
        if lines and len(join_words(lines[-1] + [token])) <= max_chars:
            lines[-1].append(token)
        else:
            lines.append([token])
    return [join_words(line) for line in lines]


# Control characters in a file name would reach the terminal raw: ESC starts escape sequences,
# a newline splits a one-line message. Named escapes for the common ones, \xNN (\u00NN) for the rest.
_NAME_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {c: f"\\u{c:04x}" for c in range(0x80, 0xA0)}
_NAME_ESCAPES |= {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def path_text(path) -> str:
    """A path as valid Unicode text (for JSON, manifests, messages): bytes that are not UTF-8 become \\xNN."""
    text = str(path)
    try:  # os.fsdecode keeps undecodable bytes as lone surrogates; turn them back into bytes, then escape
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable_name(name) -> str:
    """A file name (or a one-line message naming one) safe to print: control characters escaped."""
    return path_text(name).translate(_NAME_ESCAPES)
