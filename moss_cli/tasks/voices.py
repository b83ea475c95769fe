"""Voices of a labelled recording (`--voices`): a profile of each speaker and the mood of each segment.

The model's own speech caption (`caption --speech`, the authors' prompt) is asked about each
speaker's own speech, their segments joined with short silences between them, up to a minute
of it; and about each segment alone, for its emotion and tone. All requests go out at once
(`ask_many`: batched locally, in parallel to servers). `describe_voices` is the one entry: it
takes a recording, its segments with speaker labels and an engine, so any command that has those
(transcribe --speakers, summarize) gets the same profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio.constants import SAMPLE_RATE
from ..engine.base import DecodingOptions, Engine, Request
from ..results import Segment, seconds_to_ms
from .parsing import json_object
from .recording import Recording
from .specs import SPEECH_CAPTION

PROFILE_FIELDS = ("gender", "age", "accent", "pitch", "speed", "emotion", "tone")
MOOD_FIELDS = ("emotion", "tone")
PROFILE_SECONDS = 60.0  # a speaker's speech heard for their profile: enough to judge, one short request
SEGMENT_SECONDS = 30.0  # a longer segment's mood is judged on its first half minute
JOIN_SILENCE = 1.0  # seconds between a speaker's segments joined for their profile: heard as separate utterances
MIN_SECONDS = 0.3  # a segment shorter than this has no mood of its own


@dataclass
class VoiceReport:
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # speaker -> field -> description
    timeline: list[dict] = field(default_factory=list)  # per segment: times, speaker, emotion, tone
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"speakers": self.profiles, "timeline": self.timeline}


def describe_voices(recording: Recording, segments: list[Segment], engine: Engine,
                    options: DecodingOptions = DecodingOptions(), token_cap: int | None = None) -> VoiceReport:
    """Each labelled speaker's profile and each segment's emotion and tone, from the speech caption.
    `options`: the decoding to ask with; `token_cap`: the most tokens an answer may take (otherwise
    a budget for the clip's length)."""
    speakers = list(dict.fromkeys(s.speaker for s in segments if s.speaker is not None))
    timed = [s for s in segments if s.end - s.start >= MIN_SECONDS]
    clips = [_own_speech(recording, [s for s in segments if s.speaker == name]) for name in speakers]
    clips += [_read(recording, s.start, min(s.end, s.start + SEGMENT_SECONDS)) for s in timed]
    requests = [Request(clip, SPEECH_CAPTION.prompt, _budgeted(options, clip, token_cap, engine.thinking))
                for clip in clips]
    answers = engine.ask_many(requests) if requests else []
    report = VoiceReport()
    for name, answer in zip(speakers, answers):
        report.profiles[name] = _fields(answer.text, PROFILE_FIELDS, f"the voice of {name}", report.warnings)
    for segment, answer in zip(timed, answers[len(speakers):]):
        mood = _fields(answer.text, MOOD_FIELDS, f"the segment at {segment.start:.2f} s", report.warnings)
        report.timeline.append({"segment": segment.id, "start": seconds_to_ms(segment.start) / 1000,
                                "end": seconds_to_ms(segment.end) / 1000, "speaker": segment.speaker, **mood})
    return report


def _own_speech(recording: Recording, segments: list[Segment]) -> np.ndarray:
    """The speaker's segments, longest first up to PROFILE_SECONDS, joined in time order."""
    chosen, total = [], 0.0
    for segment in sorted(segments, key=lambda s: s.start - s.end):
        if total >= PROFILE_SECONDS:
            break
        end = min(segment.end, segment.start + PROFILE_SECONDS - total)
        chosen.append((segment.start, end))
        total += end - segment.start
    gap = np.zeros(int(JOIN_SILENCE * SAMPLE_RATE), np.float32)
    pieces = [part for start, end in sorted(chosen) for part in (_read(recording, start, end), gap)]
    return np.concatenate(pieces[:-1]) if pieces else np.zeros(SAMPLE_RATE, np.float32)


def _read(recording: Recording, start: float, end: float) -> np.ndarray:
    return recording.source.read(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))


def _budgeted(options: DecodingOptions, clip: np.ndarray, cap: int | None, thinking: bool) -> DecodingOptions:
    from dataclasses import replace

    return replace(options, max_new_tokens=SPEECH_CAPTION.token_budget(clip.size / SAMPLE_RATE, cap, thinking))


def _fields(answer: str, wanted: tuple[str, ...], about: str, warnings: list[str]) -> dict[str, str]:
    """The wanted fields of a JSON caption, as text (keys matched without regard to case); a warning
    when the answer is not a JSON object or lacks them."""
    parsed, _ = json_object(answer)
    if parsed is None:
        warnings.append(f"voices: the caption of {about} is not a JSON object; left out")
        return {}
    keys = {str(key).strip().lower(): value for key, value in parsed.items()}
    found = {name: _as_text(keys[name]) for name in wanted if keys.get(name) not in (None, "", [], {})}
    if not found:
        warnings.append(f"voices: the caption of {about} names none of {', '.join(wanted)}; left out")
    return found


def _as_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_as_text(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_as_text(item)}" for key, item in value.items())
    return " ".join(str(value).split())  # one line: a description is written into pages and cues
