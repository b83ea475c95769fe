"""summarize's outputs parsed back by what reads them: the WebVTT chapters track by Chromium's own
<track kind="chapters"> loading, the FFmpeg metadata by ffmpeg into a real MP4 (ffprobe lists the
chapters), the `00:00 Title` lines and the Markdown by a Markdown parser, the page in a browser."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from support.chromium import CHROMIUM, parse_in_chromium
from support.fake_server import phrase_recording

from moss_cli.audio.sources import open_audio
from moss_cli.output.chapters import CHAPTER_WRITERS
from moss_cli.output.report import page_context, render_page
from moss_cli.output.writers import get_writer
from moss_cli.results import ActionItem, Chapter, Digest, Result, Segment

FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
HOSTILE = "Q&A <live> --> a=b; #1 \\ end"  # markup, FFmpeg's specials and VTT's arrow in a title


def digest_result(duration=4000.0, kind="meeting") -> Result:
    chapters = [Chapter(0.0, 61.234, "Welcome", "who is here"), Chapter(61.234, 1500.5, HOSTILE, "hard names"),
                Chapter(1500.5, 3725.0, "Über die Zukunft 未来", "in German and Chinese"),
                Chapter(3725.0, duration, "Wrap-up", "")]
    digest = Digest(kind, "A planning meeting.", "They planned.\nThen they left.", chapters,
                    ["# not a heading", "costs rise"], [ActionItem("send the notes", "Ann", 75.5),
                                                          ActionItem("book a room")], ["ship in May"], "en")
    segments = [Segment(c.start, c.start + 5.0, f"sentence at {c.start}") for c in chapters]
    return Result("summarize", "talk.wav", duration, "moss-test", text=digest.summary, segments=segments,
                  digest=digest)


def written(extension: str, result: Result) -> str:
    buffer = io.StringIO()
    CHAPTER_WRITERS[extension]().write(result, buffer)
    return buffer.getvalue()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_loads_the_chapters_track(tmp_path):
    result = digest_result()
    parsed = parse_in_chromium({"talk.chapters.vtt": written("chapters.vtt", result)}, tmp_path, kind="chapters")
    cues = parsed["talk.chapters.vtt"]
    chapters = result.digest.chapters
    assert [(round(c["start"] * 1000), round(c["end"] * 1000)) for c in cues] == [
        (round(c.start * 1000), round(c.end * 1000)) for c in chapters]
    assert [c["text"] for c in cues] == [c.title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                                         for c in chapters]


@pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg is not installed")
def test_ffmpeg_puts_the_chapters_into_an_mp4(tmp_path):
    result = digest_result(duration=90.0)
    result.digest.chapters = [Chapter(0.0, 20.5, "Welcome"), Chapter(20.5, 61.25, HOSTILE),
                              Chapter(61.25, 90.0, "Über 未来")]
    probe = _into_an_mp4(result, tmp_path)
    assert [(float(c["start_time"]), float(c["end_time"]), c["tags"]["title"]) for c in probe["chapters"]] == [
        (0.0, 20.5, "Welcome"), (20.5, 61.25, HOSTILE), (61.25, 90.0, "Über 未来")]
    assert probe["format"]["tags"]["title"] == "talk"


@pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg is not installed")
def test_a_value_ending_in_a_backslash_does_not_swallow_the_next_line(tmp_path):
    """FFmpeg reads a line break after any backslash, even an escaped one, as part of the value: a title
    or file name ending in one would take the next line (the description) into it."""
    result = digest_result(duration=90.0)
    result.audio = "talk\\.wav"  # a file name may end in a backslash where it is not a separator
    result.digest.chapters = [Chapter(0.0, 20.5, "ends in a \\"), Chapter(20.5, 90.0, "next")]
    probe = _into_an_mp4(result, tmp_path)
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["ends in a", "next"]
    assert probe["format"]["tags"]["title"] == "talk"
    assert probe["format"]["tags"]["description"] == "A planning meeting."


def test_chapter_lines_are_what_video_sites_read():
    lines = written("chapters.txt", digest_result()).splitlines()
    assert lines == ["0:00:00 Welcome", f"0:01:01 {HOSTILE}", "0:25:00 Über die Zukunft 未来", "1:02:05 Wrap-up"]
    short = digest_result(duration=600.0)
    short.digest.chapters = [Chapter(0.0, 75.9, "A"), Chapter(75.9, 600.0, "B")]
    assert written("chapters.txt", short) == "00:00 A\n01:15 B\n"  # a chapter starts at its second, not after


def test_markdown_reads_back_as_the_digest():
    from markdown_it import MarkdownIt

    result = digest_result()
    tokens = MarkdownIt().parse(written("md", result))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["talk.wav", "Summary", "Chapters", "Key points", "Action items", "Decisions"]
    items = [tokens[i + 2].content for i, t in enumerate(tokens) if t.type == "list_item_open"]
    assert items[:4] == ["**0:00** Welcome — who is here", f"**1:01** {HOSTILE} — hard names",
                         "**25:00** Über die Zukunft 未来 — in German and Chinese", "**1:02:05** Wrap-up"]
    assert "\\# not a heading" in items  # a point that starts like a heading stays a list item's text
    assert "**Ann**: send the notes (said at 1:15)" in items and "book a room" in items and "ship in May" in items
    podcast = digest_result(kind="podcast")
    headings = [t.tag for t in MarkdownIt().parse(written("md", podcast)) if t.type == "heading_open"]
    assert len(headings) == 4  # no action items or decisions for a podcast


def test_markdown_keeps_the_summary_paragraphs_and_no_line_of_it_becomes_markup():
    from markdown_it import MarkdownIt

    result = digest_result()
    result.digest.summary = "They planned.\n\n# not a heading\n\n- nor a list item"
    tokens = MarkdownIt().parse(written("md", result))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["talk.wav", "Summary", "Chapters", "Key points", "Action items", "Decisions"]
    paragraphs = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "paragraph_open"]
    assert paragraphs[2:5] == ["They planned.", "\\# not a heading", "\\- nor a list item"]


def test_json_has_the_digest_and_the_page_its_chapter_lane(tmp_path):
    result = digest_result()
    buffer = io.StringIO()
    get_writer("json").write(result, buffer)
    data = json.loads(buffer.getvalue())
    assert data["digest"]["chapters"][1] == {"start": 61.234, "end": 1500.5, "title": HOSTILE, "gist": "hard names"}
    assert data["digest"]["action_items"] == [{"who": "Ann", "what": "send the notes", "said_at": 75.5},
                                              {"who": None, "what": "book a room", "said_at": None}]
    assert "segments" not in data  # the digest's JSON is the digest: the transcript is the transcript's
    page = render_page([result])
    boxes = re.findall(r'data-kind="chapter-box" data-index="(\d+)" data-start="([\d.]+)" data-end="([\d.]+)"', page)
    assert [(float(s), float(e)) for _, s, e in boxes] == [(c.start, c.end) for c in result.digest.chapters]
    assert "Q&amp;A &lt;live&gt;" in page and "A planning meeting." in page
    assert len(re.findall(r'data-kind="segment"', page)) == len(result.segments)  # the transcript below


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_plays_a_chapter_in_a_browser(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from support.browser import Browser

    audio, _ = phrase_recording(90.0, seed=4)
    wav = tmp_path / "talk.wav"
    sf.write(wav, audio, 16_000, subtype="PCM_16")
    result = digest_result(duration=90.0)
    result.audio = str(wav)
    result.digest.chapters = [Chapter(0.0, 30.0, "A"), Chapter(30.0, 62.5, "B"), Chapter(62.5, 90.0, "C")]
    with open_audio(wav) as source:
        context = page_context(source, wav, tmp_path / "talk.html", "auto", {"task": "summarize"})
    (tmp_path / "talk.html").write_text(render_page([result], context), encoding="utf-8")
    browser = Browser(tmp_path / "profile")
    try:
        opened = browser.open(tmp_path / "talk.html")
        page = opened.page
        page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=30_000)
        lane = page.evaluate("""[...document.querySelectorAll('[data-kind="chapter-box"]')]
                                .map(b => b.getBoundingClientRect().left)""")
        assert len(lane) == 3 and lane == sorted(lane)
        page.locator('#digest [data-kind="chapter"]').nth(2).click()
        page.wait_for_function("document.getElementById('player').currentTime >= 62.5", timeout=15_000)
        assert opened.problems == []
    finally:
        browser.close()


def _into_an_mp4(result, folder: Path) -> dict:
    """The result's FFmpeg metadata put into a real 90 s MP4 by ffmpeg, as the README says; ffprobe's view of it."""
    metadata = folder / "talk.ffmetadata"
    metadata.write_text(written("ffmetadata", result), encoding="utf-8")
    plain, chaptered = folder / "in.mp4", folder / "out.mp4"
    run = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "90",
                    "-c:a", "aac", "-b:a", "16k", str(plain)], **run)
    subprocess.run([FFMPEG, "-v", "error", "-i", str(plain), "-i", str(metadata), "-map_metadata", "1",
                    "-codec", "copy", str(chaptered)], **run)
    return json.loads(subprocess.run([FFPROBE, "-v", "error", "-show_chapters", "-show_format", "-of", "json",
                                      str(chaptered)], **run).stdout)
