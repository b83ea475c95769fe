"""The digest the model writes, read into a Digest: the JSON found, times read, and whatever is wrong in
shape repaired or dropped with a warning, as the timestamp parser does for transcripts.

Chapters: a chapter without a readable time or past the end is dropped; out of order, they are put in
order; each start moves to the nearest start of a transcript sentence (the first to 0:00, where video
sites want it); a chapter that would be shorter than the least length joins the one before it.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

from ..results import ActionItem, Chapter, Digest
from ..timeref import format_clock, seconds_of
from .digest_prompts import KINDS
from .parsing import JSON_DECODER, json_object

_BRACKETS = re.compile(r"^\[(.*)\]$")
_RANGE = re.compile(r"\s*(?:-|–|—|\bto\b)\s*")  # between the start and the end of a chapter's span
_DECIMAL_COMMA = re.compile(r"(\d),(\d+)$")  # 00:01:15,500: SubRip's decimal comma
# A chapter written as a line: "0:00 Title", "[0:00] Title", "0:00 - Title"
_CHAPTER_LINE = re.compile(r"^\s*\[?(\d{1,2}(?::\d{2}){1,2}(?:[.,]\d+)?)\]?\s*(?:[-–—:|]\s+)?(.*)$")
_TIME_KEYS = ("start", "time", "timestamp", "start_time")  # the time a chapter starts, under what models name it


@dataclass(frozen=True)
class DigestShape:
    """What a digest is checked against."""

    duration: float  # seconds of the recording
    sentence_starts: tuple[float, ...]  # where the transcript's sentences begin, in order
    min_chapter_seconds: float
    kind: str  # as asked: a kind, or auto
    language: str | None = None  # the --language tag, recorded in the digest


def read_digest(answer: str, shape: DigestShape) -> tuple[Digest, list[str]]:
    """The digest in a model's answer, and a warning for each thing repaired or dropped."""
    found = _digest_object(answer)
    if found is None:
        text = answer.strip()
        kind = shape.kind if shape.kind != "auto" else "other"
        return (Digest(kind, _first_sentence(text), text, language=shape.language),
                ["the digest was not the JSON object asked for; its text is kept as the summary"])
    warnings: list[str] = []
    kind = _kind(found.get("kind"), shape.kind)
    chapters = repair_chapters(_raw_chapters(found.get("chapters"), warnings), shape, warnings)
    meeting = kind == "meeting"
    digest = Digest(
        kind, _text(found.get("short_summary")), _paragraphs(found.get("summary")), chapters,
        _strings(found.get("key_points")),
        _action_items(found.get("action_items"), shape.duration, warnings) if meeting else [],
        _strings(found.get("decisions")) if meeting else [], shape.language)
    for name in ("short_summary", "summary"):
        if not getattr(digest, name):
            warnings.append(f"the digest has no {name.replace('_', ' ')}")
    if not digest.summary and digest.short_summary:
        digest.summary = digest.short_summary
    if not digest.short_summary and digest.summary:
        digest.short_summary = _first_sentence(digest.summary)
    return digest, warnings


def _digest_object(answer: str) -> dict | None:
    """The JSON object, alone, fenced, or between the first { and the last } of the answer; else the
    first object in it with a digest's fields (a fence inside its strings, braces in prose around it)."""
    found, _ = json_object(answer)
    if found is None and "{" in answer and "}" in answer:
        found, _ = json_object(answer[answer.index("{") : answer.rindex("}") + 1])
    return found if found is not None else _object_with_fields(answer)


_CANDIDATES = 200  # braces tried at most: a giant answer of braces costs no more than this


def _object_with_fields(answer: str) -> dict | None:
    """The first JSON object that starts at one of the answer's braces and has a digest's fields."""
    at = answer.find("{")
    for _ in range(_CANDIDATES):
        if at == -1:
            return None
        try:
            found, _end = JSON_DECODER.raw_decode(answer, at)
        except (ValueError, RecursionError):
            found = None
        if isinstance(found, dict) and found.keys() & {"summary", "short_summary", "chapters"}:
            return found
        at = answer.find("{", at + 1)
    return None


def _kind(said, asked: str) -> str:
    if asked != "auto":
        return asked
    # "Meeting.", "a team meeting": the one kind named among its words; none, or two, is other
    named = {word for word in re.findall(r"\w+", str(said or "").lower()) if word in KINDS}
    return named.pop() if len(named) == 1 else "other"


def read_time(value) -> float | None:
    """A time as the model may write it: 75, "75", "1:15", "01:15", "[1:15]", "1:15.5", "1m15s",
    "00:01:15,000" (as in SubRip), the start of a range ("1:15-2:30", "1:15 to 2:30"); None when it is
    none of these (or not finite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        text = _BRACKETS.sub(r"\1", text).strip()
        text = _RANGE.split(text, maxsplit=1)[0] if _RANGE.search(text) and text[0].isdigit() else text
        text = _DECIMAL_COMMA.sub(r"\1.\2", text)
        if not text or not re.fullmatch(r"[\d:.\shminutesecondr]+", text.lower()):
            return None
        # "1m15s": a unit letter right before the next number reads as no unit at all; a space sets it apart
        seconds = seconds_of(re.sub(r"(?<=[hms])(?=\d)", " ", text.lower()))
    else:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


def _raw_chapters(value, warnings: list[str]) -> list[tuple[float | None, str, str]]:
    """(start or None, title, gist) for each chapter the answer lists; a chapter without words is dropped."""
    if value is None:
        warnings.append("the digest has no chapters")
        return []
    if not isinstance(value, list):
        warnings.append("the digest's chapters are not a list; dropped")
        return []
    raw = []
    for index, item in enumerate(value, start=1):
        if isinstance(item, str) and (line := _CHAPTER_LINE.match(item)):
            item = {"start": line[1], "title": line[2]}
        if not isinstance(item, dict):
            warnings.append(f"chapter {index} is not an object; dropped")
            continue
        title, gist = _untimed(_text(item.get("title"))), _text(item.get("gist"))
        if not title and not gist:
            warnings.append(f"chapter {index} has no title; dropped")
            continue
        said = next((item[key] for key in _TIME_KEYS if item.get(key) is not None), None)
        raw.append((read_time(said), title or _first_words(gist), gist))
    return raw


def _untimed(title: str) -> str:
    """A title without the time models often repeat at its start ("0:25 Budget", "[0:25] - Budget");
    a title that is only a time stays as it is."""
    line = _CHAPTER_LINE.match(title)
    return line[2] if line and line[2] else title


def repair_chapters(raw: list[tuple[float | None, str, str]], shape: DigestShape,
                    warnings: list[str]) -> list[Chapter]:
    """Chapters inside the recording, in order, snapped to sentence starts, none shorter than the least."""
    timed = []
    for start, title, gist in raw:
        if start is None:
            warnings.append(f"chapter {title!r} has no time it starts; dropped")
        elif start < 0 or start >= shape.duration:
            warnings.append(f"chapter {title!r} starts at {format_clock(start)}, outside the recording "
                            f"({format_clock(shape.duration)} long); dropped")
        else:
            timed.append((start, title, gist))
    if [start for start, _, _ in timed] != sorted(start for start, _, _ in timed):
        warnings.append("the chapters were out of order; put in time order")
        timed.sort(key=lambda chapter: chapter[0])
    snapped = [(0.0 if index == 0 else snap(start, shape.sentence_starts), title, gist)
               for index, (start, title, gist) in enumerate(timed)]
    kept = _long_enough(snapped, shape, warnings)
    ends = [start for start, _, _ in kept[1:]] + [shape.duration]
    return [Chapter(start, end, title, gist) for (start, title, gist), end in zip(kept, ends)]


def snap(seconds: float, starts: tuple[float, ...]) -> float:
    """The sentence start nearest to `seconds` (itself when there are no sentences)."""
    if not starts:
        return seconds
    at = bisect.bisect_left(starts, seconds)
    near = [starts[i] for i in (at - 1, at) if 0 <= i < len(starts)]
    return min(near, key=lambda start: (abs(start - seconds), start))


def _long_enough(chapters, shape: DigestShape, warnings: list[str]):
    """Each chapter at least the least length: one that starts too soon after the last kept one joins it;
    a last chapter too close to the end joins the one before."""
    least = shape.min_chapter_seconds
    kept: list = []
    for chapter in chapters:
        if kept and chapter[0] - kept[-1][0] < max(least, 1e-3):
            warnings.append(f"chapter {chapter[1]!r} at {format_clock(chapter[0])} would make {kept[-1][1]!r} "
                            f"shorter than {least:g} s; joined to it")
            continue
        kept.append(chapter)
    while len(kept) > 1 and shape.duration - kept[-1][0] < least:
        warnings.append(f"chapter {kept[-1][1]!r} at {format_clock(kept[-1][0])} would be shorter than {least:g} s; "
                        f"joined to {kept[-2][1]!r}")
        kept.pop()
    return kept


def _action_items(value, duration: float, warnings: list[str]) -> list[ActionItem]:
    items = []
    value = [value] if isinstance(value, dict) else value  # one item, not in a list
    for index, item in enumerate(value if isinstance(value, list) else [], start=1):
        if isinstance(item, str):
            item = {"what": item}
        what = _text(item.get("what")) if isinstance(item, dict) else ""
        if not what:
            warnings.append(f"action item {index} says nothing to do; dropped")
            continue
        said = read_time(item.get("when"))
        if said is not None and not 0 <= said <= duration:
            warnings.append(f"action item {index}: {format_clock(said)} is outside the recording; time dropped")
            said = None
        items.append(ActionItem(what, _text(item.get("who")) or None, said))
    return items


def _text(value) -> str:
    """A field's text: a string as it is (spaces tidied), a list's strings joined, an object's longest
    text (`{"point": "costs rise"}`, beside a time perhaps); anything else is none."""
    if isinstance(value, dict):
        return max((_text(item) for item in value.values() if isinstance(item, str)), key=len, default="")
    if isinstance(value, list):
        return " ".join(part for part in (_text(item) for item in value) if part)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _paragraphs(value) -> str:
    """The longer summary: a text keeps its paragraphs (blank lines; spaces tidied inside each),
    anything else is read as _text reads it."""
    if not isinstance(value, str):
        return _text(value)
    return "\n\n".join(text for text in (" ".join(part.split()) for part in re.split(r"\n\s*\n", value)) if text)


def _strings(value) -> list[str]:
    """A list of strings: a list's items, or a text's lines (bullets taken off)."""
    if isinstance(value, str):
        value = [line.lstrip("-*• ").strip() for line in value.splitlines()]
    return [text for text in (_text(item) for item in (value if isinstance(value, list) else [])) if text]


SHORT_SUMMARY_CHARS = 300  # a short summary made from a text without full stops is cut at a word near this


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?。！？])(\s|$)", text, re.DOTALL)
    sentence = " ".join((match.group(1) if match else text).split())
    if len(sentence) <= SHORT_SUMMARY_CHARS:
        return sentence
    cut = sentence[: SHORT_SUMMARY_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"


def _first_words(text: str, count: int = 6) -> str:
    words = text.split()
    return " ".join(words[:count]) + ("…" if len(words) > count else "")
