"""`moss summarize`: a digest of each recording, through the batch machinery of the other commands."""

from __future__ import annotations

from enum import Enum

import typer

from ..errors import MossError
from .console import report
from .options import BatchOptions, DiarizeOptions, OutputOptions, PromptOptions, SamplingOptions
from .run import run_files

DEFAULT_MIN_CHAPTER_SECONDS = 60.0
DIGEST_FORMATS = ("md", "json", "chapters.vtt", "ffmetadata", "chapters.txt", "html")
# summarize's JSON is <stem>.digest.json: the transcript JSON (<stem>.json) it reuses stays as it is.
DIGEST_EXTENSIONS = {"json": "digest.json"}


class DigestKind(str, Enum):
    auto = "auto"
    meeting = "meeting"
    podcast = "podcast"
    lecture = "lecture"
    interview = "interview"


def summarize_files(audio: list[str], kind: DigestKind, min_chapter_seconds: float, output: OutputOptions,
                    prompt: PromptOptions, spec, sampling: SamplingOptions, batch: BatchOptions,
                    speakers: DiarizeOptions | None = None) -> None:
    from ..batch.reuse import reused_transcript
    from ..tasks.digest import DigestSettings, summarize
    from ..tasks.hints import hints_from_options

    try:
        hints = hints_from_options(prompt.language, prompt.context, None)
    except MossError as exc:
        raise typer.Exit(report(exc)) from None
    settings = DigestSettings(kind.value, hints.language, hints.context, min_chapter_seconds)

    def work(pipeline, recording):
        # a transcript reused from -o when its speakers were found as asked now
        return summarize(pipeline, recording, settings, reused_transcript(recording, pipeline.options.speakers))

    run_files(audio, output.spec(default="md", extensions=DIGEST_EXTENSIONS), spec, sampling, batch,
              settings.task(), "summarizing", work, speakers=speakers, language=prompt.language,
              settings={"digest": settings.recorded()})
