"""--html report pages without a browser: the page's timed elements, lanes, audio and header; pages
written like every other output (mirrored, atomic, in manifests), the index, and `ask --html`."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from support.corpus import speech
from support.fake_server import FakeServer
from test_writers import events, transcript
from typer.testing import CliRunner

from moss_cli.audio.sources import AudioSource
from moss_cli.cli.app import app
from moss_cli.output import report
from moss_cli.output.report import PageContext, page_audio, read_summary, render_page, waveform_peaks
from moss_cli.results import Result, Segment

runner = CliRunner()


class Elements(HTMLParser):
    """Every element's tag and attributes, in document order; text inside each `data-start` element."""

    def __init__(self, page: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def kind(self, kind: str) -> list[dict]:
        return [attrs for _, attrs in self.elements if attrs.get("data-kind") == kind]

    def times(self, kind: str) -> list[tuple[float, float]]:
        return [(float(a["data-start"]), float(a["data-end"])) for a in self.kind(kind)]


def page_for(result: Result, context: PageContext | None = None) -> str:
    return render_page([result], context)


def test_every_timed_item_carries_the_json_times():
    result = transcript()
    data = result.to_dict()
    page = Elements(page_for(result))
    spans = [(s["start"], s["end"]) for s in data["segments"]]
    assert page.times("segment") == spans  # the list: one item per JSON segment, in order
    assert sorted(page.times("segment-box")) == sorted(spans)  # the timeline: one box each
    assert [int(a["data-index"]) for a in page.kind("segment")] == list(range(len(spans)))
    words = [(w["start"], w["end"]) for s in data["segments"] for w in s["words"]]
    assert page.times("word") == words and words
    timed = [attrs for _, attrs in page.elements if "data-start" in attrs]
    assert all("data-end" in attrs for attrs in timed)
    assert len(timed) == 2 * len(spans) + len(words)  # nothing else claims a time

    event_result = events()
    event_page = Elements(page_for(event_result))
    event_spans = [(e["start"], e["end"]) for e in event_result.to_dict()["events"]]
    assert event_page.times("event") == event_spans and sorted(event_page.times("event-box")) == sorted(event_spans)


def test_overlapping_events_stack_in_rows_and_speakers_get_lanes():
    rows = [re.search(r"--row: (\d+)", a["style"]).group(1) for a in Elements(page_for(events())).kind("event-box")]
    assert rows == ["0", "1"]  # 3.25-4.0 lies inside 0-12.5: a second row

    @dataclass
    class SpeakerSegment(Segment):  # the shape a later --speakers gives segments
        speaker: str = ""

        def to_dict(self):
            return {**super().to_dict(), "speaker": self.speaker}

    result = Result("transcribe", "talk.wav", 20.0, "m", segments=[
        SpeakerSegment(0.0, 4.0, "hi", speaker="A"), SpeakerSegment(4.0, 9.0, "hello", speaker="B"),
        SpeakerSegment(9.5, 12.0, "how are you", speaker="A")])
    page = page_for(result)
    lanes = re.findall(r'<span class="lane-name">(.*?)</span>', page)
    assert lanes == ["A", "B"]
    lane_a = page.split('lane-name">A<')[1].split('lane-name">B<')[0]
    assert lane_a.count("data-start=") == 2 and 'data-start="9.5"' in lane_a
    assert re.findall(r'<span class="speaker">(.*?)</span>', page) == ["A", "B", "A"]
    assert "lane-name\">speech<" in page_for(transcript())  # no speakers: one speech lane


def test_header_shows_title_file_duration_model_and_options():
    options = {"task": "transcribe", "prompt": "Say </script><b>hi</b>", "sampling": {"temperature": 0.0, "seed": None},
               "layout": {"max_lines": 2}}
    page = page_for(transcript(), PageContext(options=options))
    assert "<title>talk.wav · Transcript</title>" in page and "<h1>talk.wav</h1>" in page
    assert "<dd>1:02:06</dd>" in page and "<dd>moss-test</dd>" in page  # 3725.5 s
    assert "<dt>sampling.temperature</dt><dd>0.0</dd>" in page
    assert "sampling.seed" not in page and "max_lines" not in page  # unset and subtitle-only options left out
    assert "Say &lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page


def test_text_cannot_break_out_of_the_page():
    result = Result("transcribe", "x</script>.wav", 10.0, "m",
                    segments=[Segment(0.0, 1.0, "<img src=x onerror=alert(1)>")])
    page = page_for(result)
    assert "<img" not in page and "&lt;img src=x" in page
    assert page.count("</script>") == 3  # the summary, the peaks and the page's own script: no injected end tag
    assert read_summary_from_text(page)["audio"] == "x</script>.wav"


def test_times_an_answer_names_play_from_there():
    text = "A dog barks at 1:05 & again at [70.5]; a car at 2:30, after the end."
    page = render_page([Result("ask", "t.wav", 100.0, "m", text=text, question="When?")])
    assert Elements(page).times("time") == [(65.0, 65.0), (70.5, 70.5)]  # 2:30 lies past the recording's end
    shown = re.search(r'<p class="text">(.*?)</p>', page, re.DOTALL).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", shown)) == text  # the words are all there, in order


def read_summary_from_text(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="moss-summary">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1))


def test_page_has_no_remote_resource():
    page = page_for(transcript(), PageContext(peaks=[1, 2, 3]))
    elements = Elements(page).elements
    loading = [tag for tag, attrs in elements if tag in ("link", "img", "iframe") or (tag == "script" and "src" in attrs)]
    assert loading == []
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


def test_waveform_peaks_are_the_loudest_sample_per_column(monkeypatch):
    monkeypatch.setattr(report, "READ_SECONDS", 1)  # several blocks, columns straddling their edges
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(16_000 * 5 + 123) * 0.2).clip(-1, 1).astype(np.float32)
    samples[40_000] = -0.95
    peaks = waveform_peaks(AudioSource.from_array("x", samples), columns=37)
    edges = np.arange(38) * samples.size // 37
    expected = [int(round(float(np.abs(samples[a:b]).max()) * 1000)) for a, b in zip(edges[:-1], edges[1:])]
    assert peaks == expected and max(peaks) == 950
    assert waveform_peaks(AudioSource.from_array("y", samples[:20]), columns=100) == \
        [int(round(abs(float(v)) * 1000)) for v in samples[:20]]  # fewer samples than columns


def decode_data_uri(src: str) -> tuple[str, np.ndarray]:
    header, payload = src.split(",", 1)
    with av.open(io.BytesIO(base64.b64decode(payload))) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        rate = container.streams.audio[0].rate
    return header, samples, rate


def test_audio_link_embed_and_none(tmp_path):
    samples = speech(6, 1)
    source = AudioSource.from_array("talk", samples)
    wav = tmp_path / "in" / "a b#1.wav"
    wav.parent.mkdir()
    sf.write(wav, samples, 16_000, subtype="PCM_16")
    page = tmp_path / "out" / "deep" / "a b#1.html"
    linked = page_audio(source, wav, page, "auto")
    assert linked.how == "link" and linked.src == "../../in/a%20b%231.wav"  # relative, quoted
    assert page_audio(source, wav, page, "none") is None

    for mode, page_path, input_path in [("auto", None, wav),  # stdout: nowhere to link from
                                        ("auto", page, tmp_path / "in" / "voice.amr"),  # browsers can't play it
                                        ("embed", page, wav)]:
        embedded = page_audio(source, input_path, page_path, mode)
        header, decoded, rate = decode_data_uri(embedded.src)
        assert embedded.how == "embed" and header == "data:audio/ogg;base64"  # Opus: smaller than the WAV
        assert abs(decoded.size / rate - 6.0) < 0.05
    assert len(embedded.src) < wav.stat().st_size / 4
    assert page_audio(source, tmp_path / "in" / "voice.amr", page, "link").src == "../../in/voice.amr"  # as asked


def test_embed_keeps_a_smaller_original(tmp_path):
    quiet = np.zeros(16_000 * 10, np.float32)  # FLAC packs digital silence tighter than Opus
    flac = tmp_path / "quiet.flac"
    sf.write(flac, quiet, 16_000)
    embedded = page_audio(AudioSource.from_array("q", quiet), flac, None, "auto")
    assert embedded.src == "data:audio/flac;base64," + base64.b64encode(flac.read_bytes()).decode()


# ---- through the command line ---------------------------------------------------------------------
def cli(server, command, *args):
    return runner.invoke(app, [command, *map(str, args), "--server", server.url])


def small_corpus(root: Path) -> dict[str, list[Path]]:
    """Same names in two folders, non-ASCII names with spaces, and a file that is not audio."""
    good = [root / "a" / "talk.wav", root / "b" / "talk.wav", root / "ü ber" / "ä ö talk.flac"]
    for seed, path in enumerate(good):
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, speech(6 + seed, seed), 16_000)
    (root / "text.wav").write_text("this is not audio\n" * 50)
    return {"good": good, "bad": [root / "text.wav"]}


def test_pages_beside_other_outputs_with_an_index(tmp_path):
    root = tmp_path / "in"
    files = small_corpus(root)
    out = tmp_path / "out"
    with FakeServer() as server:
        result = cli(server, "transcribe", root, "--html", "--json", "-o", out)
        assert result.exit_code == 1  # the file that is not audio
        asked = len(server.fake.requests)
        again = cli(server, "transcribe", root, "--html", "--json", "-o", out, "--skip-existing")
        assert len(server.fake.requests) == asked and again.exit_code == 1  # pages count as up to date
    pages = sorted(p for p in out.rglob("*.html") if p.name != "index.html")
    assert len(pages) == len(files["good"])
    for path in files["good"]:
        relative = path.relative_to(root).with_suffix("")
        page = out / relative.parent / f"{relative.name}.html"
        data = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
        elements = Elements(page.read_text(encoding="utf-8"))
        assert elements.times("segment") == [(s["start"], s["end"]) for s in data["segments"]]
        assert json.loads((page.parent / f".{page.name}.moss.json").read_text())["input"] == str(path)
        audio = [attrs for tag, attrs in elements.elements if tag == "audio"][0]
        if audio["data-how"] == "link":  # the link leads from the page's folder to the input
            assert _unquoted(page, audio["src"]) == path.resolve()
        else:
            assert audio["src"].startswith("data:audio/")
    assert not list(out.rglob("*.part"))
    index = Elements((out / "index.html").read_text(encoding="utf-8"))
    links = [attrs["href"] for tag, attrs in index.elements if tag == "a"]
    assert sorted(_unquoted(out / "index.html", href) for href in links) == sorted(p.resolve() for p in pages)
    durations = {attrs["data-audio"]: attrs for tag, attrs in index.elements if tag == "tr" and "data-audio" in attrs}
    assert set(durations) == {str(p) for p in files["good"]}
    counts = [int(a["data-count"]) for _, a in index.elements if "data-count" in a]
    assert sum(counts) == sum(len(json.loads(p.with_suffix(".json").read_text())["segments"]) for p in pages)


def _unquoted(page: Path, href: str) -> Path:
    from urllib.parse import unquote

    return (page.parent / unquote(href)).resolve()


def test_page_on_stdout_embeds_its_audio(tmp_path):
    audio = tmp_path / "talk.wav"
    sf.write(audio, speech(8, 2), 16_000, subtype="PCM_16")
    with FakeServer() as server:
        result = cli(server, "events", audio, "--html", "-q")
        refused = cli(server, "events", audio, "--html", "--html-audio", "link")
        several = cli(server, "events", audio, audio.with_name("x.wav"), "--html")
    assert result.exit_code == 0 and result.stdout.startswith("<!doctype html>")
    src = re.search(r'<audio id="player"[^>]* src="([^"]+)"', result.stdout).group(1)
    assert src.startswith("data:audio/ogg;base64,")
    assert len(Elements(result.stdout).kind("event")) == result.stdout.count('data-kind="event"') > 0
    assert refused.exit_code == 2 and "--html-audio link needs -o" in refused.stderr
    assert several.exit_code == 2 and "need -o" in several.stderr


def test_all_includes_the_page(tmp_path):
    audio = tmp_path / "talk.wav"
    sf.write(audio, speech(6, 6), 16_000, subtype="PCM_16")
    with FakeServer() as server:
        for command in ("transcribe", "events", "caption"):
            result = cli(server, command, audio, "--all", "-o", tmp_path / command, "-q")
            assert result.exit_code == 0, result.stderr
            page = tmp_path / command / "talk.html"
            assert read_summary(page)["task"] == command and (page.parent / ".talk.html.moss.json").is_file()


def test_description_page_and_no_audio(tmp_path):
    audio = tmp_path / "song.wav"
    sf.write(audio, speech(5, 3), 16_000, subtype="PCM_16")
    with FakeServer() as server:
        result = cli(server, "describe-music", audio, "--html", "--json", "--html-audio", "none",
                     "-o", tmp_path / "out")
    assert result.exit_code == 0 and result.stdout == ""
    page = (tmp_path / "out" / "song.html").read_text(encoding="utf-8")
    assert "<audio" not in page and "This page holds no audio." in page
    answer = json.loads((tmp_path / "out" / "song.json").read_text(encoding="utf-8"))["text"]
    assert answer and f'<p class="text">{html.escape(answer)}</p>' in page  # the answer beside the player
    manifest = json.loads((tmp_path / "out" / ".song.html.moss.json").read_text())
    assert manifest["settings"]["html_audio"] == "none" and manifest["settings"]["task"] == "describe-music"


def test_ask_page(tmp_path):
    audio = tmp_path / "talk.wav"
    sf.write(audio, speech(8, 4), 16_000, subtype="PCM_16")
    out = tmp_path / "out"
    with FakeServer() as server:
        plain = cli(server, "ask", audio, "First?", "Second?", "-q")
        to_file = cli(server, "ask", audio, "First?", "Second?", "--html", "-o", out, "-q")
        on_stdout = cli(server, "ask", audio, "First?", "--html", "-q")
        asked = len(server.fake.requests)
        no_html = cli(server, "ask", audio, "First?", "-o", out)
        both = cli(server, "ask", audio, "First?", "--html", "--json")
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "talk.html").write_text("my notes")
        foreign = cli(server, "ask", audio, "First?", "--html", "-o", tmp_path / "mine")
        assert len(server.fake.requests) == asked  # usage errors are found before anything is asked
    assert to_file.exit_code == 0 and to_file.stdout == plain.stdout  # the answers still print
    page = (out / "talk.html").read_text(encoding="utf-8")
    assert re.findall(r'<h2 class="question">(.*?)</h2>', page) == ["First?", "Second?"]
    answers = plain.stdout.rstrip("\n").split("\n\n")
    assert re.findall(r'<p class="text">(.*?)</p>', page) == [html.escape(a) for a in answers] and answers[0]
    assert json.loads((out / ".talk.html.moss.json").read_text())["settings"]["questions"] == ["First?", "Second?"]
    assert on_stdout.exit_code == 0 and on_stdout.stdout.startswith("<!doctype html>")  # the page instead of answers
    assert no_html.exit_code == both.exit_code == foreign.exit_code == 2
    assert "--html" in no_html.stderr and "both want stdout" in both.stderr and "was not made by moss" in foreign.stderr
    assert (tmp_path / "mine" / "talk.html").read_text() == "my notes"


def test_index_leaves_a_foreign_index_alone(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(root / name, speech(4, 5), 16_000, subtype="PCM_16")
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("my own index")
    with FakeServer() as server:
        kept = cli(server, "caption", root, "--html", "-o", out)
        replaced = cli(server, "caption", root, "--html", "-o", out, "--overwrite")
    assert kept.exit_code == 0 and "index.html is not moss's index" in kept.stderr
    assert (out / "a.html").exists() and replaced.exit_code == 0
    index = (out / "index.html").read_text(encoding="utf-8")
    assert [m for m in re.findall(r'<a href="([^"]+)"', index)] == ["a.html", "b.html"]
    assert read_summary(out / "a.html")["task"] == "caption" and read_summary(out / "index.html") is None
