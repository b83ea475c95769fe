"""Where text may and should break: into atoms, into balanced lines, and how good each break is.

The smallest unit is a `Piece` (a word, or one character of Han/kana text) with its time. Pieces that
no line may separate (a word and the closing punctuation after it, an opening bracket and what
follows) form an `Atom`. Lines are filled with atoms the way a subtitler would: as few lines as
fit, balanced, broken after punctuation or before a conjunction or preposition, never leaving one
word alone on a line when another layout fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..text import display_width, is_unspaced, may_break_between, split_to_width

SENTENCE_END = frozenset(".!?…。！？")
CLAUSE_END = frozenset(",;:—–，、；：")
_CLOSERS = "\"'’”»)]）」』】"
# Words a line should start with rather than end with (English, with the commonest German, French
# and Spanish ones): conjunctions, prepositions, and articles/determiners that bind to what follows.
BREAK_BEFORE_WORDS = frozenset(
    "and but or nor so yet because although though while whereas if unless until when whenever where "
    "since that which who whom whose than as after before once of to in on at for from with by about "
    "into onto over under between through during without within against among across behind beyond "
    "toward towards upon around near like "
    "und oder aber weil dass denn wenn als mit von zu für auf aus bei nach über unter "
    "et ou mais parce que qui donc car avec pour dans sans sur sous chez "
    "y o pero porque que como con para por en sin sobre desde hasta".split()
)
BINDS_FORWARD_WORDS = BREAK_BEFORE_WORDS | frozenset(
    "a an the my your his her its our their this these those some any no every "
    "der die das den dem des ein eine einen einem einer le la les un une des du el los las una".split()
)
ORPHAN_PENALTY = 10.0  # a line holding one word, when another layout avoids it
BOTTOM_HEAVY = 0.02  # of two equally good layouts, the one with the longer line below


@dataclass(frozen=True)
class Piece:
    """A word, or one character of an unspaced script, with its time in seconds."""

    text: str
    start: float
    end: float
    space_before: bool = False  # written with a space before it (unless it starts a line)
    timed: bool = False  # the model's own word time, not shared out by length


@dataclass(frozen=True)
class Atom:
    """Pieces no line may break between."""

    pieces: tuple[Piece, ...]

    @property
    def start(self) -> float:
        return self.pieces[0].start

    @property
    def end(self) -> float:
        return self.pieces[-1].end

    @property
    def space_before(self) -> bool:
        return self.pieces[0].space_before

    @cached_property
    def text(self) -> str:
        return join_pieces(self.pieces)

    @cached_property
    def width(self) -> int:
        return display_width(self.text)


def join_pieces(pieces) -> str:
    """Pieces as they are written on one line."""
    return "".join((" " if piece.space_before and index else "") + piece.text for index, piece in enumerate(pieces))


def line_text(atoms: list[Atom]) -> str:
    return join_pieces([piece for atom in atoms for piece in atom.pieces])


def make_atoms(pieces: list[Piece], max_width: int) -> list[Atom]:
    """Group pieces where no break is allowed; cut a piece wider than a line into ones that fit."""
    atoms: list[list[Piece]] = []
    for piece in _fitting(pieces, max_width):
        if atoms and not may_break_between(atoms[-1][-1].text, piece.text, piece.space_before) \
                and display_width(join_pieces(atoms[-1] + [piece])) <= max_width:
            atoms[-1].append(piece)
        else:
            atoms.append([piece])
    return [Atom(tuple(group)) for group in atoms]


def _fitting(pieces: list[Piece], max_width: int):
    for piece in pieces:
        parts = split_to_width(piece.text, max_width) if display_width(piece.text) > max_width else [piece.text]
        step = (piece.end - piece.start) / len(parts)
        for index, part in enumerate(parts):
            start = piece.start + index * step
            yield Piece(part, start, start + step, piece.space_before and index == 0, piece.timed)


class LineFill:
    """Atoms added one by one, lines filled greedily: the fewest lines the atoms need."""

    def __init__(self, max_width: int):
        self.max_width = max_width
        self.lines = 0
        self.last_width = 0
        self.width = 0  # all atoms on one line
        self.chars = 0  # characters, spaces included: what reading speed counts

    def add(self, atom: Atom) -> None:
        space = int(atom.space_before) if self.lines else 0
        joined = self.last_width + space + atom.width
        self.width += space + atom.width
        self.chars += space + len(atom.text)
        if self.lines and joined <= self.max_width:
            self.last_width = joined
        else:
            self.lines += 1
            self.last_width = atom.width


def lines_needed(atoms: list[Atom], max_width: int) -> int:
    fill = LineFill(max_width)
    for atom in atoms:
        fill.add(atom)
    return fill.lines


def break_cost(before: Atom, after: Atom) -> float:
    """How bad it is to end a line (or cue) after `before`: 0 after a sentence, 1 after "the"."""
    if _ends_sentence(before):
        return 0.0
    last = before.text.rstrip(_CLOSERS)[-1:] or before.text[-1:]
    if last in CLAUSE_END:
        return 0.15
    if _last_word(before.text) in BINDS_FORWARD_WORDS:
        return 1.0
    if _first_word(after.text) in BREAK_BEFORE_WORDS:
        return 0.35
    if _first_word(after.text) in BINDS_FORWARD_WORDS:  # before "the": keeps the article with its noun
        return 0.45
    return 0.5 if is_unspaced(last) else 0.6


def balanced_lines(atoms: list[Atom], max_width: int) -> list[list[Atom]]:
    """The fewest lines that fit, balanced in width, broken at good places, without orphans."""
    count = lines_needed(atoms, max_width)
    if count <= 1:
        return [list(atoms)]
    n = len(atoms)
    offsets = [0]  # offsets[k]: width of atoms[:k] written on one line, plus one
    for atom in atoms:
        offsets.append(offsets[-1] + atom.width + int(atom.space_before))
    inf = float("inf")
    # best[k][j]: cost of atoms[:j] in k lines; back[k][j]: where the last of those lines starts.
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for k in range(1, count + 1):
        for j in range(k, n + 1):
            for i in range(j - 1, k - 2, -1):
                width = offsets[j] - offsets[i] - int(atoms[i].space_before)
                if width > max_width and j - i > 1:
                    break
                cost = best[k - 1][i] + _line_cost(atoms, i, j, width, max_width)
                cost += BOTTOM_HEAVY * (count - k) * width / max_width
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    lines, j = [], n
    for k in range(count, 0, -1):
        i = back[k][j]
        lines.append(list(atoms[i:j]))
        j = i
    return lines[::-1]


def _line_cost(atoms: list[Atom], i: int, j: int, width: int, max_width: int) -> float:
    cost = (width / max_width) ** 2  # summed over lines, least when they are equally long
    if j < len(atoms):
        cost += break_cost(atoms[j - 1], atoms[j])
    if j - i == 1 and len(atoms) > 1 and not is_sentence(atoms, i):
        cost += ORPHAN_PENALTY
    return cost


def is_sentence(atoms: list[Atom], i: int) -> bool:
    """Whether atoms[i] is a whole sentence ("Yes."), which may stand alone on its line."""
    return _ends_sentence(atoms[i]) and (i == 0 or _ends_sentence(atoms[i - 1]))


def _ends_sentence(atom: Atom) -> bool:
    return (atom.text.rstrip(_CLOSERS)[-1:] or atom.text[-1:]) in SENTENCE_END


def _first_word(text: str) -> str:
    return text.split(maxsplit=1)[0].strip(_CLOSERS + "([{“‘„«¿¡").casefold() if text.strip() else ""


def _last_word(text: str) -> str:
    return text.rsplit(maxsplit=1)[-1].casefold() if text.strip() else ""
