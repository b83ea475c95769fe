"""Text rules shared by the pipeline and the subtitle layout: scripts, spaces, screen widths, breaks.

Han, kana and bopomofo are written without spaces between words, so text in them is joined without
spaces and may break between any two characters. Hangul is written with spaces: Korean keeps them
and breaks between words, like Latin text. Widths are display columns (East Asian wide and
full-width characters count 2), so a 42-column line holds 21 Chinese characters.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right

# Code point ranges (first, last) of the scripts written without spaces, with their punctuation.
_UNSPACED_RANGES = (
    (0x2E80, 0x2FFF),  # CJK radicals, Kangxi radicals, ideographic description
    (0x3000, 0x303F),  # CJK symbols and punctuation: 、。「」〜
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3100, 0x312F),  # bopomofo (3130-318F is Hangul compatibility jamo: spaced)
    (0x3190, 0x31FF),  # kanbun, bopomofo extended, CJK strokes, katakana phonetic extensions
    (0x3200, 0x33FF),  # enclosed CJK letters, CJK compatibility
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFF9F),  # full-width punctuation and letters, half-width katakana (FFA0-FFDC: Hangul)
    (0xFFE0, 0xFFEF),  # full-width signs
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_RANGE_STARTS = [first for first, _ in _UNSPACED_RANGES]

# A line never starts with these (closing punctuation, Japanese small kana and marks; kinsoku) ...
NO_BREAK_BEFORE = frozenset(
    ",.:;!?%)]}’”»…‥"
    "，。、．：；！？）」』】〕〉》｝］〙〗〟・ー々ゝゞヽヾ〜～"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
)
# ... nor ends with these (opening brackets and quotes).
NO_BREAK_AFTER = frozenset("([{“‘„«¿¡（「『【〔〈《｛［〘〖〝")
# Joining words: no space before closing punctuation, none after an opening bracket.
_NO_SPACE_BEFORE = frozenset(",.!?;:%)]}…’”") | {c for c in NO_BREAK_BEFORE if ord(c) > 0x2FFF}
_NO_SPACE_AFTER = frozenset("([{“‘„¿¡")


def is_unspaced(char: str) -> bool:
    """Han, kana, bopomofo and their punctuation: scripts written without spaces between words."""
    if not char:
        return False
    code = ord(char[0])
    index = bisect_right(_RANGE_STARTS, code) - 1
    return index >= 0 and code <= _UNSPACED_RANGES[index][1]


def needs_space(before: str, after: str) -> bool:
    """Whether two words are written with a space between them."""
    if not before or not after or after[0] in _NO_SPACE_BEFORE or before[-1] in _NO_SPACE_AFTER:
        return False
    if is_unspaced(before[-1]) and (is_unspaced(after[0]) or _is_punctuation(before[-1])):
        return False
    return not (is_unspaced(after[0]) and _is_punctuation(after[0]))


def join_words(words: list[str]) -> str:
    """Words into text: spaces between them, except where `needs_space` says the script has none."""
    text = ""
    for word in words:
        if needs_space(text, word):
            text += " "
        text += word
    return text


def split_text(text: str) -> list[tuple[str, bool]]:
    """Text -> pieces (words; single characters of unspaced scripts), each with "a space before it".

    Spaces the script does not use (between two Han characters, say) are dropped; other text is kept.
    """
    pieces: list[tuple[str, bool]] = []
    for word in text.split():
        for index, run in enumerate(_runs(word)):
            spaced = index == 0 and bool(pieces) and needs_space(pieces[-1][0], run)
            pieces.append((run, spaced))
    return pieces


def _runs(word: str) -> list[str]:
    """A space-free word into characters of unspaced scripts and runs of everything else."""
    runs: list[str] = []
    for char in word:
        attached = runs and (_is_mark(char) or not (is_unspaced(char) or is_unspaced(runs[-1][-1])))
        if attached:
            runs[-1] += char
        else:
            runs.append(char)
    return runs


def may_break_between(before: str, after: str, spaced: bool) -> bool:
    """Whether a line may end after `before` and the next start with `after`."""
    if after[:1] in NO_BREAK_BEFORE or before[-1:] in NO_BREAK_AFTER or _is_mark(after[:1]):
        return False
    return spaced or is_unspaced(before[-1:]) or is_unspaced(after[:1])


def display_width(text: str) -> int:
    """Columns the text takes on screen: East Asian wide and full-width characters count 2."""
    from wcwidth import wcswidth, wcwidth  # on first use: its tables take ~0.1 s to import, which --help never needs

    width = wcswidth(text)
    return width if width >= 0 else sum(max(wcwidth(char), 0) for char in text)


def split_to_width(text: str, width: int) -> list[str]:
    """A word too wide for a line, cut into pieces that fit (never before a combining mark)."""
    parts = [""]
    for char in text:
        if parts[-1] and not _is_mark(char) and display_width(parts[-1] + char) > width:
            parts.append("")
        parts[-1] += char
    return parts


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _is_mark(char: str) -> bool:
    """Combining marks and joiners: they belong to the character before them."""
    return bool(char) and (unicodedata.category(char)[0] == "M" or char in "\u200d\ufe0e\ufe0f")


# Whole escape sequences first, so no "[2J" residue is left: CSI (ESC [ or U+009B, parameters, a final
# byte), a terminated OSC (ESC ] or U+009D ... BEL or ST: window titles, clipboard writes), two-byte ESC
# forms (ESC M, ESC ( B). The classes next to each other never overlap, so matching stays linear.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)|\x1b[ -/]*[0-~]"
)
# Bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069) reorder everything after them
# on a line, in a terminal and in a subtitle player: "exe.txt" shown as "txt.exe" (Trojan Source).
# Model text never needs them (the marks U+200E/200F/061C, which only nudge neutrals, are kept).
BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
# Then C0 controls but tab and newline, DEL, and C1 controls: whatever a terminal could still obey.
_CONTROLS = dict.fromkeys([*(c for c in range(0x20) if c not in (0x09, 0x0A)), *range(0x7F, 0xA0), *BIDI_CONTROLS])
_SURROGATES = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """Model or server text made safe to print and write: escape sequences, control characters and
    bidi overrides and isolates removed (newline and tab kept), lone UTF-16 surrogates (valid in JSON,
    not encodable as UTF-8) replaced by U+FFFD."""
    text = _ESCAPE_SEQUENCE.sub("", text).translate(_CONTROLS)
    if _SURROGATES.search(text):  # pairs become their character; a lone half becomes U+FFFD
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# Control characters in a file name would reach the terminal raw: ESC starts escape sequences,
# a newline (or U+2028, U+2029) splits a one-line message, bidi controls reorder it. Named escapes
# for the common ones, \xNN (\u00NN, \u202e) for the rest.
_NAME_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {c: f"\\u{c:04x}" for c in range(0x80, 0xA0)}
_NAME_ESCAPES |= {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"} | {c: f"\\u{c:04x}" for c in [*BIDI_CONTROLS, 0x2028, 0x2029]}


def path_text(path) -> str:
    """A path as valid Unicode text (for JSON, manifests, messages): bytes that are not UTF-8 become \\xNN."""
    text = str(path)
    try:  # os.fsdecode keeps undecodable bytes as lone surrogates; turn them back into bytes, then escape
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable_name(name) -> str:
    """A file name (or a one-line message naming one) safe to print: control characters and bidi
    overrides and isolates escaped (shown, not obeyed: a name is evidence, so nothing is dropped)."""
    return path_text(name).translate(_NAME_ESCAPES)


def one_line_problem(text: str) -> str | None:
    """What keeps a short label (a speaker name) from being one line of plain text, or None.

    A label is written into cues and rows verbatim: a newline or a line separator ends an SRT or VTT
    cue early and starts a forged one, a tab adds a TSV column, an escape sequence or a bidi override
    reaches whoever reads the file in a terminal."""
    for char in text:
        if ord(char) in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return f"it holds {printable_name(char)}"
    return None
