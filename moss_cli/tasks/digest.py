"""`summarize`: a digest of a recording. The model listens to the audio in windows and takes notes (it
hears tone, laughter and music, not only words); a final text-only request turns the notes and the
timed transcript into the digest, in a strict JSON shape that digest_shape.py reads and repairs.

Hours of audio stay within the model's context by construction: each window's notes have a token cap,
notes over their share of the final prompt are condensed a few windows at a time (again and again,
then cut), and a transcript over its share keeps every n-th sentence, each cut to an equal length.
Chapter times are not taken from the thinned transcript: they snap to the full transcript's sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..results import Result, Segment
from ..text import printable
from ..timeref import format_clock
from .answers import cut_short, without_loop
from .digest_prompts import CONDENSE_PROMPT, digest_prompt, notes_prompt
from .digest_shape import DigestShape, read_digest
from .hints import Language, hints_from_options
from .pipeline import Pipeline
from .recording import Recording
from .specs import LONG_WINDOW_SECONDS, THINKING_TOKENS, TRANSCRIBE_SENTENCES, Task

# The final prompt's shares, in characters: 24,000 of them are at most ~24,000 tokens (Chinese, one a
# character), with the instructions and a 2,048-token digest well inside the model's 40,960.
NOTES_CHARS = 8_000
TRANSCRIPT_CHARS = 16_000
CONDENSE_GROUP = 4  # notes condensed together: at most 4 windows' capped notes in one request
CONDENSE_ROUNDS = 4  # then anything still over its share is cut
MIN_LINE_CHARS = 60  # a thinned transcript keeps fewer sentences rather than shorter than this
DIGEST_TOKENS = 2048
CHARS_PER_WORD = 7  # to turn a share of characters into a word count the model can follow


@dataclass(frozen=True)
class DigestSettings:
    kind: str = "auto"  # meeting, podcast, lecture, interview or auto
    language: Language | None = None  # the digest's language; None: the recording's own
    context: str | None = None  # --context: into every prompt, the transcript's too
    min_chapter_seconds: float = 60.0
    # --speakers and --voices are the pipeline's options (PipelineOptions.speakers), as for transcribe.

    def task(self) -> Task:
        """The notes each window is asked for; its prompt records kind and context for --skip-existing."""
        return Task("summarize", notes_prompt(self.kind, self.context), "digest", LONG_WINDOW_SECONDS, 1.0, 384)

    def transcript_task(self) -> Task:
        return TRANSCRIBE_SENTENCES.with_hints(hints_from_options(None, self.context, None).sentences())

    def recorded(self) -> dict:
        """What shapes a digest beyond the prompt, for the manifests (--skip-existing)."""
        return {"kind": self.kind, "language": self.language.tag if self.language else None,
                "context": self.context, "min_chapter_seconds": self.min_chapter_seconds}


def summarize(pipeline: Pipeline, recording: Recording, settings: DigestSettings,
              transcript: list[Segment] | None = None) -> Result:
    """The digest of one recording; `transcript`: its sentences when they were made before (reused from
    -o), else the recording is transcribed first. With the pipeline's speakers the transcript is
    labelled, and with their profiles (--voices) each speaker's voice and each segment's mood come too."""
    warnings: list[str] = []
    voices = None
    speakers = pipeline.options.speakers
    if transcript is None:
        made = pipeline.timed(settings.transcript_task(), recording)  # labels and voices as transcribe's
        transcript, warnings, voices = made.segments, list(made.warnings), made.voices
    elif speakers is not None and speakers.profiles:  # a reused transcript, its labels made as asked now
        report = pipeline.voices(recording, transcript)
        voices, warnings = report.to_dict(), list(report.warnings)
    task = settings.task()
    pipeline.progress.begin(f"listening to {Path(recording.name).name}", recording.duration)
    heard = pipeline.listen(task, recording, warnings)
    notes = bounded_notes(pipeline, [f"[{format_clock(w.offset)}-{format_clock(w.end_time)}]\n{text}"
                                     for w, text in heard], NOTES_CHARS, warnings)
    lines = transcript_text(transcript, TRANSCRIPT_CHARS)
    prompt = digest_prompt(settings.kind, format_clock(recording.duration), notes, lines,
                           settings.min_chapter_seconds, settings.language.name if settings.language else None,
                           settings.context)
    answer = _ask_text(pipeline, prompt, DIGEST_TOKENS)
    if reason := cut_short(answer):
        warnings.append(f"the digest {reason}; it may be incomplete")
    starts = tuple(sorted(segment.start for segment in transcript))
    shape = DigestShape(recording.duration, starts, settings.min_chapter_seconds, settings.kind,
                        settings.language.tag if settings.language else None)
    digest, repaired = read_digest(printable(without_loop(answer).text), shape)
    return Result("summarize", recording.name, recording.duration, pipeline.engine.name, text=digest.summary,
                  segments=transcript, finish_reason=answer.finish_reason, warnings=warnings + repaired,
                  digest=digest, voices=voices)


def bounded_notes(pipeline: Pipeline, notes: list[str], budget: int, warnings: list[str]) -> str:
    """The windows' notes in at most `budget` characters: condensed a few at a time by the model while
    they are too long, then, if still too long, each cut to an equal share."""
    for _ in range(CONDENSE_ROUNDS):
        if _length(notes) <= budget or len(notes) < 2:
            break
        groups = [notes[i : i + CONDENSE_GROUP] for i in range(0, len(notes), CONDENSE_GROUP)]
        words = max(30, budget // len(groups) // CHARS_PER_WORD)
        notes = [_condensed(pipeline, group, words) for group in groups]
    if _length(notes) > budget:
        warnings.append("the notes were too long for one request even condensed; each was cut short")
        share = max(1, (budget - 2 * len(notes)) // len(notes))
        notes = [_clip(note, share) for note in notes]
    return "\n\n".join(notes)


def _condensed(pipeline: Pipeline, group: list[str], words: int) -> str:
    if len(group) == 1:
        return group[0]
    spans = [note.split("\n", 1)[0] for note in group]  # "[m:ss-m:ss]" heads: the group's span stays known
    span = f"[{spans[0][1:].split('-')[0]}-{spans[-1].rsplit('-', 1)[-1]}"
    answer = _ask_text(pipeline, CONDENSE_PROMPT.format(parts=len(group), notes="\n\n".join(group), words=words),
                       2 * words + 64)
    return f"{span}\n{printable(without_loop(answer).text).strip()}"


def transcript_text(segments: list[Segment], budget: int) -> str:
    """`[m:ss] sentence` lines (`[m:ss] S1: sentence` with speakers: who said it, for action items) in at
    most `budget` characters: every sentence while they fit, else every n-th sentence, each cut to an
    equal share."""
    lines = [f"[{format_clock(s.start)}] {f'{s.speaker}: ' if s.speaker else ''}{' '.join(s.text.split())}"
             for s in segments if s.text.strip()]
    text = "\n".join(lines)
    if len(text) <= budget:
        return text
    step = max(1, math.ceil(len(lines) * MIN_LINE_CHARS / budget))
    kept = lines[::step]
    share = budget // len(kept) - 1  # the newline after each
    return "\n".join(_clip(line, share) for line in kept)


def _ask_text(pipeline: Pipeline, prompt: str, tokens: int):
    """A text-only request with room for `tokens` (and a Thinking model's reasoning), or --max-new-tokens."""
    tokens += THINKING_TOKENS if pipeline.engine.thinking else 0
    options = replace(pipeline.options.decoding, max_new_tokens=pipeline.options.token_cap or tokens)
    return pipeline.engine.ask_text(prompt, options, pipeline.options.guard)


def _length(notes: list[str]) -> int:
    return sum(len(note) for note in notes) + 2 * max(0, len(notes) - 1)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(0, chars - 1)].rstrip() + "…"
