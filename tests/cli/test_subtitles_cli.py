"""Subtitles end to end: the CLI through a stand-in server that speaks English or Chinese sentences."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt
from support import fake_server
from support.chromium import CHROMIUM, parse_in_chromium
from support.fake_server import FakeServer, phrase_recording
from support.transcripts import CHINESE_WORDS, ENGLISH
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.text import display_width, is_unspaced

runner = CliRunner()
WORDS_PER_SECOND = {"english": 2.6, "chinese": 2.2}  # about 14 and 4.5 characters a second


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    audio, truth = phrase_recording(75.0, seed=3, gaps=(1.1, 3.0))  # the stand-in needs 1 s between phrases
    path = tmp_path_factory.mktemp("subs") / "talk.wav"
    sf.write(path, audio, 16_000, subtype="PCM_16")
    return path, truth


def spoken_words(language: str, phrase: fake_server.Phrase) -> list[tuple[str, float, float]]:
    """What the stand-in says was spoken in a phrase: words spread over it, a sentence ending it."""
    rng = np.random.default_rng(phrase.index)
    count = max(1, int((phrase.end - phrase.start) * WORDS_PER_SECOND[language]))
    vocabulary = ENGLISH if language == "english" else CHINESE_WORDS
    words = [str(rng.choice(vocabulary)) for _ in range(count)]
    words[-1] += "." if language == "english" else "。"
    step = (phrase.end - phrase.start) / count
    return [(w, phrase.start + k * step, phrase.start + (k + 0.9) * step) for k, w in enumerate(words)]


@pytest.fixture(params=["english", "chinese"])
def language(request, monkeypatch):
    """The stand-in server answers in this language, in the model's bracketed formats."""
    def reply_for(prompt, heard):
        if "word-level" in prompt:
            return "".join(f"[{a:.2f}]{w}[{b:.2f}]" for p in heard for w, a, b in spoken_words(request.param, p))
        if "sentence-level" in prompt:
            joiner = " " if request.param == "english" else ""
            return "".join(f"[{p.start:.2f}]{joiner.join(w for w, _, _ in spoken_words(request.param, p))}[{p.end:.2f}]"
                           for p in heard)
        if "sound events" in prompt:
            return "\n".join(f"{p.start:.2f} - {p.end:.2f}: phrase {p.index}, a voice speaking calmly over quiet "
                             "traffic noise far away" for p in heard)
        return "heard " + ",".join(str(p.index) for p in heard)

    monkeypatch.setattr(fake_server, "reply_for", reply_for)
    return request.param


def moss(server, *args, code=0):
    result = runner.invoke(app, [*map(str, args), "--server", server.url, "-q"])
    assert result.exit_code == code, result.stderr
    return result


def seconds(timestamp: str) -> float:
    h, m, s = timestamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def assert_broadcast_rules(cues: list[tuple[float, float, str]], unspaced_language: bool):
    for index, (start, end, text) in enumerate(cues):
        lines = text.split("\n")
        assert len(lines) <= 2 and all(display_width(line) <= 42 for line in lines), text
        assert 0.833 - 1e-6 <= end - start <= 7.0, (start, end, text)
        assert len(text.replace("\n", " ")) / (end - start) <= 20.05, (start, end, text)
        if index + 1 < len(cues):
            assert cues[index + 1][0] - end >= 0.066 - 1e-6
        if unspaced_language:
            assert not any(is_unspaced(a) and is_unspaced(b) for a, b in re.findall(r"(\S) (\S)", text))


def test_words_in_every_format(recording, language, tmp_path):
    path, truth = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--words", "--all", "-o", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == \
        sorted(f"talk.{ext}" for ext in ("txt", "srt", "vtt", "ass", "tsv", "json", "html"))
    data = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))
    words = [w["word"] for s in data["segments"] for w in s["words"]]
    assert words == [w for p in truth for w, _, _ in spoken_words(language, p)]  # JSON keeps every word

    captions = webvtt.read(str(tmp_path / "talk.vtt")).captions
    cues = [(seconds(c.start), seconds(c.end), c.text) for c in captions]
    assert_broadcast_rules(cues, language == "chinese")
    in_cues = []
    for caption in captions:  # inline word times: inside the cue and in order
        marks = [seconds(m) for m in re.findall(r"<(\d\d:\d\d:\d\d\.\d{3})>", caption.raw_text)]
        assert marks == sorted(set(marks)) and all(seconds(caption.start) < m < seconds(caption.end) for m in marks)
        in_cues += re.split(r"<[^>]*>| |\n", caption.raw_text)
    assert [w for w in in_cues if w] == words  # every word exactly once, in order
    assert len(words) / len(captions) >= 3
    if CHROMIUM:  # the browser's own parser reads every cue and every inline time
        browser = parse_in_chromium({"talk.vtt": (tmp_path / "talk.vtt").read_text(encoding="utf-8")},
                                    tmp_path / "browser")["talk.vtt"]
        assert [(round(c["start"] * 1000), round(c["end"] * 1000), len(c["marks"])) for c in browser] == \
            [(round(start * 1000), round(end * 1000), caption.raw_text.count("<"))
             for (start, end, _), caption in zip(cues, captions)]

    subs = list(srt.parse((tmp_path / "talk.srt").read_text(encoding="utf-8")))
    assert [s.content for s in subs] == [c[2] for c in cues]
    ass = (tmp_path / "talk.ass").read_text(encoding="utf-8")
    assert ass.count("Dialogue:") == len(cues) and ass.count("\\k") == len(words)
    tsv = (tmp_path / "talk.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "start\tend\ttext" and len(tsv) == len(data["segments"]) + 1


def test_sentences_keep_the_rules_and_the_text(recording, language, tmp_path):
    path, _ = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--vtt", "--json", "-o", tmp_path)
    captions = webvtt.read(str(tmp_path / "talk.vtt")).captions
    text = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))["text"]
    assert_broadcast_rules([(seconds(c.start), seconds(c.end), c.text) for c in captions], language == "chinese")
    assert re.sub(r"\s", "", "".join(c.text for c in captions)) == re.sub(r"\s", "", text)


def test_highlight_words_and_tsv(recording, language, tmp_path):
    path, truth = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--highlight-words", "--srt", "--tsv", "-o", tmp_path)
    highlighted = list(srt.parse((tmp_path / "talk.srt").read_text(encoding="utf-8")))
    words = [w for p in truth for w, _, _ in spoken_words(language, p)]
    assert [re.search(r"<u>(.*?)</u>", s.content).group(1) for s in highlighted] == words
    tsv = (tmp_path / "talk.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "start\tend\ttext"
    assert len(tsv) == len(truth) + 1  # a row per sentence


def test_cps_and_line_options_are_passed_through(recording, language):
    path, _ = recording
    with FakeServer() as server:
        narrow = list(srt.parse(moss(server, "transcribe", path, "--srt", "--max-line-width", "16", "--max-lines", "1",
                                     "--max-cue-seconds", "3", "--max-cps", "8", "--min-gap-seconds", "0.1").stdout))
    assert all("\n" not in s.content and display_width(s.content) <= 16 for s in narrow)
    assert all((s.end - s.start).total_seconds() <= 3.0 for s in narrow)
    for cue, following in zip(narrow, narrow[1:]):
        room = (following.start - cue.end).total_seconds()
        assert room >= 0.1 - 1e-6
        # 8 characters a second, or as long as the speech and the silence after it allow
        assert len(cue.content) / (cue.end - cue.start).total_seconds() <= 8.01 or abs(room - 0.1) < 1e-6 \
            or (cue.end - cue.start).total_seconds() == 3.0


@pytest.mark.parametrize("language", ["english"], indirect=True)  # events are described in English
def test_events_honour_lines_and_longest_cue(recording, language):
    path, truth = recording
    with FakeServer() as server:
        cues = list(srt.parse(moss(server, "events", path, "--srt", "--max-lines", "1", "--max-cue-seconds", "2.5").stdout))
    assert len(cues) > len(truth)  # long descriptions need several one-line cues
    assert all("\n" not in c.content and display_width(c.content) <= 42 for c in cues)
    assert all((c.end - c.start).total_seconds() <= 2.5 for c in cues)


@pytest.mark.parametrize("args", [["--min-cue-seconds", "9"], ["--max-cps", "-1"]])
def test_impossible_layout_is_a_usage_error(wav_file, args):
    result = runner.invoke(app, ["transcribe", str(wav_file), "--srt", *args])
    assert result.exit_code == 2 and "Traceback" not in result.stderr and result.stdout == ""


def test_all_needs_an_output_dir_and_covers_caption_formats(wav_file, tmp_path):
    assert runner.invoke(app, ["events", str(wav_file), "--all"]).exit_code == 2
    with FakeServer() as server:
        moss(server, "caption", wav_file, "--all", "-o", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        ["clip.html", "clip.json", "clip.txt"]
