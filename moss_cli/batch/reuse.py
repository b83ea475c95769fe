"""Outputs of an earlier run reused by a later one: `summarize -o DIR` takes the transcript that
`transcribe --json -o DIR` made of the same recording instead of transcribing it again."""

from __future__ import annotations

import json
import math

from ..results import Segment
from ..speakers.voices import SpeakerOptions
from ..tasks.recording import Recording
from .manifest import read_manifest

MAX_TRANSCRIPT_BYTES = 256 << 20


def reused_transcript(recording: Recording, speakers: SpeakerOptions | None = None) -> list[Segment] | None:
    """The sentences of DIR/<stem>.json when its manifest says `transcribe` made it from this very
    content; None when there is none, or it is not one moss wrote, or it does not read as one.
    `speakers`: the speaker options asked now; then it is reused only when its speakers were found
    with the same options (its labels are those a new transcript would have)."""
    if recording.output_stem is None or recording.sha256 is None:
        return None
    path = recording.output_stem.with_name(recording.output_stem.name + ".json")
    record = read_manifest(path)
    if record is None or record.get("sha256") != recording.sha256:
        return None
    settings = record.get("settings") or {}
    if settings.get("task") != "transcribe":
        return None
    if speakers is not None and _labelling(settings.get("speakers")) != _labelling(speakers.settings()):
        return None
    try:
        if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
            return None
        data = json.loads(path.read_bytes())
        return _segments(data["segments"], recording.duration)
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return None


def _labelling(recorded) -> str | None:
    """Speaker settings as a manifest holds them (JSON: lists, not tuples), less --voices, which does
    not change the labels."""
    if not isinstance(recorded, dict):
        return None
    return json.dumps({key: value for key, value in recorded.items() if key != "profiles"}, sort_keys=True)


def _segments(items, duration: float) -> list[Segment]:
    """Segments as the JSON writer wrote them; ValueError for anything else (then it is transcribed anew)."""
    segments = []
    for item in items:
        # A translated transcript (--translate) keeps each sentence's own words as its original: the
        # digest is of the recording, in its own words, as if it had been transcribed here.
        words = item["original"] if isinstance(item.get("original"), str) else item["text"]
        start, end, text = float(item["start"]), float(item["end"]), str(words)
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end <= duration + 1):
            raise ValueError("a segment's times are not inside the recording")
        segments.append(Segment(start, min(end, duration), text, id=int(item.get("id", 0)),
                                speaker=item.get("speaker")))
    return segments
