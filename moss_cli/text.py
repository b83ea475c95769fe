"""Small text helpers shared by the pipeline and the subtitle layout."""

from __future__ import annotations

import re

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


# Whole escape sequences first, so no "[2J" residue is left: CSI (ESC [ or U+009B, parameters, a final
# byte), a terminated OSC (ESC ] or U+009D ... BEL or ST: window titles, clipboard writes), two-byte ESC
# forms (ESC M, ESC ( B). The classes next to each other never overlap, so matching stays linear.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)|\x1b[ -/]*[0-~]"
)
# Then C0 controls but tab and newline, DEL, and C1 controls: whatever a terminal could still obey.
_CONTROLS = dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0)))
_SURROGATES = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """Model or server text made safe to print and write: escape sequences and control characters
    removed (newline and tab kept), lone UTF-16 surrogates (valid in JSON, not encodable as UTF-8)
    replaced by U+FFFD."""
    text = _ESCAPE_SEQUENCE.sub("", text).translate(_CONTROLS)
    if _SURROGATES.search(text):  # pairs become their character; a lone half becomes U+FFFD
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
