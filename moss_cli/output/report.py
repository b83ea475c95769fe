"""Report pages: one self-contained HTML page per recording, and an index over several.

A page shows the waveform, timeline lanes (speech segments, one lane per speaker when segments
name one; events), the transcript, events or answers, and a player. It holds no remote resource:
CSS, JS and data are inline, and the audio is a relative link to the input or a data URI.
Every timed element carries `data-start` and `data-end` in seconds, the values of the JSON output.

Rendering is pure (results + a `PageContext` in, HTML out); `page_context` reads what the page
needs from the audio while the recording is open.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

from .. import __version__
from ..results import Result
from ..text import join_words
from ..timeref import format_clock, seconds_of

if TYPE_CHECKING:
    from ..audio.sources import AudioSource

PEAK_COLUMNS = 2000  # waveform resolution: more columns than most screens have pixels; ~8 KB of JSON
READ_SECONDS = 60  # audio read per step: memory per step, not per file
OPUS_BITRATE = 24_000  # bits/s for the 16 kHz audio the model heard: ~11 MB an hour (15 MB as base64)
OPUS_OPTIONS = {"compression_level": "5", "vbr": "constrained"}  # 3x faster than level 10; size set by the bitrate
MAX_LANE_ROWS = 6  # overlapping spans stack in rows; past this they share the last one
SUMMARY_CHARS = 65_536  # a page's summary sits in its head, far before any embedded audio
# Formats browsers play as they are, linked or embedded without re-encoding.
PLAYABLE = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg",
            ".opus": "audio/ogg", ".flac": "audio/flac", ".m4a": "audio/mp4", ".aac": "audio/aac",
            ".webm": "audio/webm", ".mp4": "audio/mp4"}
TASK_LABELS = {"transcribe": "Transcript", "events": "Sound events", "caption": "Caption",
               "describe-music": "Music description", "ask": "Questions", "summarize": "Digest"}
# Times an answer names, made playable: clock times (1:05, 01:02:03) and bracketed seconds ([12.34]).
_ANSWER_TIME = re.compile(r"(?<![\d.:])(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?)(?![\d:])|\[(\d+(?:\.\d+)?)\]")
_SUMMARY = re.compile(r'<script type="application/json" id="moss-summary">(.*?)</script>', re.DOTALL)


@dataclass(frozen=True)
class PageAudio:
    src: str  # a URL relative to the page, or a data: URI
    how: str  # "link" or "embed"


@dataclass(frozen=True)
class PageContext:
    """What a page needs beyond the results: read from the audio, chosen by the options."""

    peaks: list[int] = field(default_factory=list)  # loudest |sample| per waveform column, in 1/1000 of full scale
    audio: PageAudio | None = None
    options: dict = field(default_factory=dict)  # what shaped the results (the manifest's settings)


# ---- from the audio ----------------------------------------------------------------------------
def page_context(source: AudioSource, input_path: Path, page_path: Path | None, mode: str,
                 options: dict) -> PageContext:
    """Peaks and the page's audio; `page_path` None means the page goes to stdout (no place to link from)."""
    return PageContext(waveform_peaks(source), page_audio(source, Path(input_path), page_path, mode), options)


def waveform_peaks(source: AudioSource, columns: int = PEAK_COLUMNS) -> list[int]:
    """The loudest sample in each of `columns` equal slices of the recording, read block by block."""
    from ..audio.constants import SAMPLE_RATE

    n = source.n_samples
    columns = max(1, min(columns, n))
    edges = np.arange(columns + 1) * n // columns  # column c holds samples edges[c] .. edges[c+1]-1
    peaks = np.zeros(columns, np.float32)
    step = READ_SECONDS * SAMPLE_RATE
    for start in range(0, n, step):
        block = np.abs(source.read(start, start + step))
        first = int(np.searchsorted(edges, start, side="right")) - 1
        last = int(np.searchsorted(edges, start + block.size - 1, side="right")) - 1
        cuts = np.maximum(edges[first : last + 1], start) - start  # where those columns begin in the block
        peaks[first : last + 1] = np.maximum(peaks[first : last + 1], np.maximum.reduceat(block, cuts))
    return [int(round(float(p) * 1000)) for p in np.minimum(peaks, 1.0)]


def page_audio(source: AudioSource, input_path: Path, page_path: Path | None, mode: str) -> PageAudio | None:
    """auto: a link when the page is a file and browsers play the input, else embedded."""
    if mode == "none":
        return None
    if page_path is not None and mode != "embed":
        link = relative_link(input_path, page_path)
        if link is not None and (mode == "link" or input_path.suffix.lower() in PLAYABLE):
            return PageAudio(link, "link")
    return embedded_audio(source, input_path)


def relative_link(target: Path, page: Path) -> str | None:
    """A URL from the page's folder to `target`, or None where no relative path leads there."""
    try:
        relative = os.path.relpath(os.path.abspath(target), os.path.abspath(page.parent))
    except ValueError:  # on another drive (Windows)
        return None
    return quote(os.fsencode(Path(relative).as_posix()))  # bytes: a name that is not UTF-8 links to its own bytes


def embedded_audio(source: AudioSource, input_path: Path) -> PageAudio:
    """The smaller of the model's 16 kHz audio as Opus and the input as it is (when browsers play it)."""
    data, mime = encode_for_page(source)
    input_mime = PLAYABLE.get(input_path.suffix.lower())
    if input_mime and input_path.is_file() and input_path.stat().st_size < len(data):
        data, mime = input_path.read_bytes(), input_mime
    return PageAudio(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", "embed")


def encode_for_page(source: AudioSource) -> tuple[bytes, str]:
    """Ogg Opus through PyAV; 16-bit WAV where this FFmpeg build has no Opus encoder."""
    import av

    try:
        return encode_opus(source), "audio/ogg"
    except (av.FFmpegError, ValueError):
        return encode_wav(source), "audio/wav"


def encode_opus(source: AudioSource) -> bytes:
    import av

    from ..audio.constants import SAMPLE_RATE

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, options=OPUS_OPTIONS)
        stream.layout = "mono"
        stream.bit_rate = OPUS_BITRATE
        for start, block in _blocks(source):
            frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def encode_wav(source: AudioSource) -> bytes:
    import soundfile as sf

    from ..audio.constants import SAMPLE_RATE

    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, subtype="PCM_16", format="WAV") as file:
        for _, block in _blocks(source):
            file.write(block)
    return buffer.getvalue()


def _blocks(source: AudioSource):
    from ..audio.constants import SAMPLE_RATE

    step = READ_SECONDS * SAMPLE_RATE
    for start in range(0, source.n_samples, step):
        yield start, source.read(start, start + step)


# ---- rendering -----------------------------------------------------------------------------------
def render_page(results: list[Result], context: PageContext | None = None) -> str:
    """One page for one recording: a timed result, a description, or `ask`'s answers (several)."""
    context = context or PageContext()
    data = [result.to_dict() for result in results]
    first = data[0]
    duration = first["duration"]
    segments, events = first.get("segments", []), first.get("events", [])
    digest = first.get("digest")
    if digest is not None:  # its transcript is not in the digest's JSON, but the page shows it
        segments = [segment.to_dict() for segment in results[0].segments]
    view = {
        "title": Path(first["audio"]).name, "file": first["audio"], "duration": duration,
        "model": first["model"], "task": first["task"], "task_label": TASK_LABELS.get(first["task"], first["task"]),
        "options": _option_lines(context.options), "audio": context.audio,
        "lanes": (_chapter_lane(digest, duration) + _lanes(segments, events, duration)
                  + _mood_lane(first.get("voices"), duration)), "ticks": _ticks(duration),
        "items": _segment_items(segments) + _event_items(events),
        "answers": [] if first["task"] in ("transcribe", "events", "summarize") else _answers(results),
        "digest": _digest_view(digest, duration),
        "warnings": [w for result in results for w in result.warnings],
        "summary": _summary(first, len(segments), len(events), len(results)),
        "peaks": context.peaks, "version": __version__,
        "bilingual": results[0].bilingual,  # each item's original text above its translation
    }
    return _template("page.html.j2").render(view)


def render_index(entries: list[dict], title: str) -> str:
    """The index of a folder of pages: `entries` are page summaries with an `href` each."""
    return _template("index.html.j2").render(entries=entries, title=title, version=__version__)


def read_summary(page: Path) -> dict | None:
    """The summary a page carries in its head (None for a file that is not a moss page)."""
    try:
        with open(page, encoding="utf-8", errors="replace") as file:
            head = file.read(SUMMARY_CHARS)
        found = _SUMMARY.search(head)
        summary = json.loads(found.group(1)) if found else None
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _summary(first: dict, n_segments: int, n_events: int, n_results: int) -> dict:
    counts = {"transcribe": ("segments", n_segments), "events": ("events", n_events), "ask": ("answers", n_results),
              "summarize": ("chapters", len((first.get("digest") or {}).get("chapters", [])))}
    noun, count = counts.get(first["task"], (None, None))  # a caption or description is one text: nothing to count
    return {"audio": first["audio"], "title": Path(first["audio"]).name, "task": first["task"],
            "duration": first["duration"], "model": first["model"], "count": count, "noun": noun}


def _option_lines(options: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as `sampling.temperature: 0.0` lines; subtitle layout does not shape a page."""
    lines = []
    for key, value in options.items():
        name = f"{prefix}{key}"
        if value is None or key == "layout":
            continue
        if isinstance(value, dict):
            lines += _option_lines(value, f"{name}.")
        else:
            lines.append((name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
    return lines


def _lanes(segments: list[dict], events: list[dict], duration: float) -> list[dict]:
    """Timeline lanes: speech (one per speaker when segments carry one), then events."""
    segments = [{**s, "index": i} for i, s in enumerate(segments)]  # the list's order, for data-index
    events = [{**e, "index": i} for i, e in enumerate(events)]
    lanes = []
    if any("speaker" in s for s in segments):
        speakers: dict[str, list[dict]] = {}
        for segment in segments:
            speakers.setdefault(str(segment.get("speaker", "unknown")), []).append(segment)
        lanes += [(name, spans) for name, spans in speakers.items()]
    elif segments:
        lanes.append(("speech", segments))
    if events:
        lanes.append(("events", events))
    return [{"name": name, "rows": _rows([_box(span, duration) for span in spans])} for name, spans in lanes]


def _chapter_lane(digest: dict | None, duration: float) -> list[dict]:
    """summarize: the chapters, one box each, above the speech."""
    if not digest or not digest["chapters"]:
        return []
    boxes = [{**_box({**chapter, "text": chapter["title"], "index": index}, duration), "kind": "chapter"}
             for index, chapter in enumerate(digest["chapters"])]
    return [{"name": "chapters", "rows": [boxes]}]


def _digest_view(digest: dict | None, duration: float) -> dict | None:
    """The digest as the page shows it: times a reader can click, clocks beside them."""
    if digest is None:
        return None
    chapters = [{**chapter, "when": format_clock(chapter["start"])} for chapter in digest["chapters"]]
    actions = [{**item, "when": None if item["said_at"] is None else format_clock(item["said_at"])}
               for item in digest["action_items"]]
    return {**digest, "chapters": chapters, "action_items": actions}


def _mood_lane(voices: dict | None, duration: float) -> list[dict]:
    """--voices: a lane of each segment's emotion and tone, after the speakers' lanes."""
    moods = [{**entry, "index": entry["segment"], "text": " · ".join(entry[k] for k in ("emotion", "tone") if entry.get(k))}
             for entry in (voices or {}).get("timeline", [])]
    moods = [mood for mood in moods if mood["text"]]
    if not moods:
        return []
    return [{"name": "emotion · tone", "rows": _rows([{**_box(mood, duration), "kind": "mood"} for mood in moods])}]


def _box(span: dict, duration: float) -> dict:
    kind = "event" if "description" in span else "segment"
    return {"kind": kind, "start": span["start"], "end": span["end"], "estimated": span.get("estimated", False),
            "index": span["index"], "label": span.get("text", span.get("description", "")),
            "left": round(100 * span["start"] / duration, 3),
            "width": round(100 * max(0.0, span["end"] - span["start"]) / duration, 3)}


def _rows(boxes: list[dict]) -> list[list[dict]]:
    """Overlapping spans go to separate rows (first row with room), so each stays visible."""
    rows: list[list[dict]] = []
    for box in sorted(boxes, key=lambda b: (b["start"], b["end"])):
        row = next((r for r in rows if r[-1]["end"] <= box["start"]), None)
        if row is None and len(rows) < MAX_LANE_ROWS:
            rows.append(row := [])
        (row if row is not None else rows[-1]).append(box)
    return rows


def _ticks(duration: float) -> list[tuple[float, str]]:
    return [(100 * k / 4, format_clock(duration * k / 4)) for k in range(5)]


def _segment_items(segments: list[dict]) -> list[dict]:
    items = []
    for index, segment in enumerate(segments):
        words, previous = [], ""
        for word in segment.get("words", []):
            space = " " if previous and join_words([previous, word["word"]]) != previous + word["word"] else ""
            words.append({**word, "space": space})
            previous = word["word"]
        items.append({"kind": "segment", "index": index, "start": segment["start"], "end": segment["end"],
                      "when": format_clock(segment["start"]), "text": segment["text"], "words": words,
                      "original": segment.get("original"),
                      "speaker": segment.get("speaker"), "estimated": segment.get("estimated", False)})
    return items


def _event_items(events: list[dict]) -> list[dict]:
    return [{"kind": "event", "index": index, "start": event["start"], "end": event["end"],
             "when": f"{format_clock(event['start'])}–{format_clock(event['end'])}", "text": event["description"],
             "original": event.get("original"),
             "words": [], "speaker": None, "estimated": event.get("estimated", False)}
            for index, event in enumerate(events)]


def _answers(results: list[Result]) -> list[dict]:
    return [{"question": result.question, "parts": _answer_parts(result.text, result.duration),
             "cut": result.finish_reason == "length"} for result in results]


def _answer_parts(text: str, duration: float) -> list[dict]:
    """The answer as text parts; a time it names inside the recording gets a `start` (the page plays from it)."""
    parts, done = [], 0
    for match in _ANSWER_TIME.finditer(text):
        seconds = seconds_of(match.group(1)) if match.group(1) else float(match.group(2))
        if seconds is None or seconds > duration:
            continue
        parts += [{"text": text[done : match.start()], "start": None}, {"text": match.group(0), "start": round(seconds, 3)}]
        done = match.end()
    return [*parts, {"text": text[done:], "start": None}]


@lru_cache(maxsize=None)
def _environment():
    import jinja2  # loaded only when a page is written
    from markupsafe import Markup

    environment = jinja2.Environment(loader=jinja2.PackageLoader("moss_cli.output", "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters["clock"] = format_clock
    environment.filters["task_label"] = lambda task: TASK_LABELS.get(task, task)
    # CSS and JS are inserted as they are, not parsed as templates: `{#` or `{{` in them stays text.
    environment.globals["asset"] = lambda name: Markup(
        resources.files("moss_cli.output").joinpath("templates", name).read_text(encoding="utf-8"))
    return environment


def _template(name: str):
    return _environment().get_template(name)
