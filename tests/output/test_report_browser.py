"""--html pages in a real browser: headless Chromium opens a 10-minute transcript page (audio embedded),
an events page (audio linked) and their index from file://, with no console error and no remote
request; the timed elements match the JSON; clicking plays from there and highlights what plays.

The screenshots land in build/screenshots/ for a person to look at. Skipped without Chromium or Playwright.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import soundfile as sf
from support.browser import CHROMIUM, Browser
from support.fake_server import FakeServer, phrase_recording
from typer.testing import CliRunner

from moss_cli.audio.sources import open_audio
from moss_cli.cli.app import app
from moss_cli.output.report import page_context, render_page
from moss_cli.output.writers import get_writer
from moss_cli.results import Event, Result, Segment

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TOLERANCE = 0.010  # seconds: page times against JSON times


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opened = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """Pages of a 10-minute recording (transcript with audio embedded, events with audio linked), written
    as the runner writes them, and two short recordings through the command line with their index."""
    root = tmp_path_factory.mktemp("report")
    (root / "in").mkdir()
    audio, phrases = phrase_recording(600.0, seed=7)
    long_wav = root / "long" / "ten minutes.wav"
    long_wav.parent.mkdir()
    sf.write(long_wav, audio, 16_000, subtype="PCM_16")
    segments = [Segment(p.start, p.end, f"phrase {p.index} was said here.", id=p.index) for p in phrases]
    events = [Event(p.start, p.end, f"voice {p.index}") for p in phrases]
    events += [Event(60.0 * k, 60.0 * k + 45.0, "traffic passing") for k in range(10)]  # overlaps: stacked rows
    events.sort(key=lambda e: e.start)
    for result, mode in [(Result("transcribe", str(long_wav), 600.0, "moss-test", segments=segments), "embed"),
                         (Result("events", str(long_wav), 600.0, "moss-test", events=events), "auto")]:
        write_like_the_runner([result], long_wav, root / result.task / "ten minutes", mode)
    answers = [Result("ask", str(long_wav), 600.0, "moss-test", question="When does the dog bark?",
                      text="The dog barks at 1:05 and again at [421.5]."),
               Result("ask", str(long_wav), 600.0, "moss-test", question="What is it?", text="A recording.")]
    write_like_the_runner(answers, long_wav, root / "ask" / "ten minutes", "auto")
    sf.write(root / "in" / "short.flac", phrase_recording(20.0, seed=8)[0], 16_000)
    (root / "in" / "b").mkdir()
    sf.write(root / "in" / "b" / "other.wav", phrase_recording(12.0, seed=9)[0], 16_000, subtype="PCM_16")
    with FakeServer() as server:
        result = CliRunner().invoke(app, ["transcribe", str(root / "in"), "--html", "--json", "-o", str(root / "cli"),
                                          "-q", "--server", server.url])
        assert result.exit_code == 0, result.stderr
    return {"transcript": root / "transcribe" / "ten minutes.html", "events": root / "events" / "ten minutes.html",
            "ask": root / "ask" / "ten minutes.html",
            "short": root / "cli" / "short.html", "other": root / "cli" / "b" / "other.html",
            "index": root / "cli" / "index.html"}


def write_like_the_runner(results: list[Result], audio: Path, stem: Path, mode: str) -> None:
    """JSON and page, the page with the waveform and audio the runner reads from the open recording."""
    with open_audio(audio) as source:
        context = page_context(source, audio, stem.with_suffix(".html"), mode, {"task": results[0].task})
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".json"), "w", encoding="utf-8") as file:
        get_writer("json").write(results[0], file)
    with open(stem.with_suffix(".html"), "w", encoding="utf-8") as file:
        file.write(render_page(results, context))


def opened_with_audio(browser, path: Path, **size):
    opened = browser.open(path, **size)
    opened.page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=30_000)
    return opened


@pytest.mark.parametrize("name,kind,how", [("transcript", "segment", "data:audio/ogg"), ("events", "event", "../")])
def test_page_matches_its_json_and_plays(browser, pages, name, kind, how):
    path = pages[name]
    data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    expected = data["segments" if kind == "segment" else "events"]
    opened = opened_with_audio(browser, path)
    page = opened.page
    shown = page.evaluate(f"""[...document.querySelectorAll('#items [data-kind="{kind}"]')]
                              .map(e => [Number(e.dataset.start), Number(e.dataset.end)])""")
    assert len(shown) == len(expected) > (50 if name in ("transcript", "events") else 0)
    for (start, end), item in zip(shown, expected):
        assert abs(start - item["start"]) <= TOLERANCE and abs(end - item["end"]) <= TOLERANCE
    boxes = page.eval_on_selector_all(f'[data-kind="{kind}-box"]', "boxes => boxes.length")
    assert boxes == len(expected)
    player = page.evaluate("(a => ({src: a.getAttribute('src'), duration: a.duration, error: a.error}))"
                           "(document.getElementById('player'))")
    assert player["src"].startswith(how) and player["error"] is None
    assert abs(player["duration"] - data["duration"]) < 0.1  # the browser decoded the whole recording
    if how == "../":  # a relative link to the input, which exists
        assert (path.parent / unquote(player["src"])).is_file()
    assert opened.problems == []
    page.close()


def test_clicking_plays_from_there_and_highlights_what_plays(browser, pages):
    opened = opened_with_audio(browser, pages["transcript"])
    page = opened.page
    item = page.locator('#items [data-kind="segment"]').nth(40)
    start = float(item.get_attribute("data-start"))
    item.scroll_into_view_if_needed()
    item.click()
    page.wait_for_function(
        """([index, start]) => {
             const audio = document.getElementById('player');
             const item = document.querySelector(`#items [data-index="${index}"]`);
             return !audio.paused && audio.currentTime > start && item.classList.contains('current');
           }""", arg=[40, start], timeout=15_000)
    state = page.evaluate("""(() => {
        const audio = document.getElementById('player');
        audio.pause();
        return {time: audio.currentTime,
                items: [...document.querySelectorAll('#items .current')].map(e => Number(e.dataset.index)),
                boxes: [...document.querySelectorAll('.box.current')].map(e => Number(e.dataset.index)),
                playhead: parseFloat(document.getElementById('playhead').style.left)};
    })()""")
    assert start <= state["time"] < start + 5
    assert state["items"] == [40] and state["boxes"] == [40]  # the list item and its timeline box, nothing else
    assert abs(state["playhead"] - 100 * state["time"] / 600) < 0.5

    canvas = page.locator("canvas.waveform")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})  # three quarters in
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 450) < 2", timeout=10_000)
    page.evaluate("document.getElementById('player').pause()")

    item = page.locator('#items [data-kind="segment"]').nth(60)  # the keyboard: Tab to an item, Enter
    item.focus()
    page.keyboard.press("Enter")
    start = float(item.get_attribute("data-start"))
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start}) < 2", timeout=10_000)
    page.evaluate("document.getElementById('player').pause()")
    assert opened.problems == []
    page.close()


def test_times_in_answers_play(browser, pages):
    opened = opened_with_audio(browser, pages["ask"])
    page = opened.page
    assert page.locator(".question").all_inner_texts() == ["When does the dog bark?", "What is it?"]
    page.locator("button.time", has_text="[421.5]").click()
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 421.5) < 2", timeout=10_000)
    page.evaluate("document.getElementById('player').pause()")
    assert opened.problems == []
    page.close()


def test_index_lists_every_page(browser, pages):
    opened = browser.open(pages["index"])
    links = opened.page.eval_on_selector_all("#recordings a", "links => links.map(a => a.href)")
    assert [Path(unquote(urlparse(href).path)) for href in links] == [pages["other"], pages["short"]]
    counts = opened.page.eval_on_selector_all("[data-count]", "cells => cells.map(c => Number(c.dataset.count))")
    assert counts == [len(json.loads(pages[name].with_suffix(".json").read_text())["segments"])
                      for name in ("other", "short")]
    assert opened.problems == []
    opened.page.close()
    for name in ("other", "short"):  # pages made through the command line, audio linked
        test_page_matches_its_json_and_plays(browser, pages, name, "segment", "../")


@pytest.mark.parametrize("device,width,height", [("laptop", 1280, 800), ("phone", 390, 844)])
def test_screenshot(browser, pages, device, width, height):
    """A picture for a person to look at; the page fits the screen and the waveform is drawn."""
    opened = opened_with_audio(browser, pages["transcript"], width=width, height=height)
    page = opened.page
    page.locator('#items [data-kind="segment"]').nth(3).click()  # something playing, highlighted
    page.wait_for_function("document.querySelector('#items .current') !== null", timeout=15_000)
    page.evaluate("document.getElementById('player').pause()")
    layout = page.evaluate("""(() => {
        const canvas = document.querySelector('canvas.waveform');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = 0;
        for (let i = 3; i < pixels.length; i += 4) drawn += pixels[i] > 0;
        return {overflow: document.documentElement.scrollWidth - window.innerWidth, drawn,
                area: canvas.width * canvas.height, stage: document.getElementById('stage').offsetHeight};
    })()""")
    assert layout["overflow"] <= 0  # no sideways scrolling, on a phone either
    assert 0.05 < layout["drawn"] / layout["area"] < 0.9  # a waveform, neither blank nor a filled box
    assert layout["stage"] < height / 2  # the sticky player leaves room for the transcript
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"report-{device}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000 and opened.problems == []
    events = opened_with_audio(browser, pages["events"], width=width, height=height)
    events.page.screenshot(path=str(SCREENSHOTS / f"report-events-{device}.png"))
    assert events.problems == []
    page.close()
    events.page.close()
