"""--translate and --bilingual end to end: the CLI through the stand-in server, every format parsed back."""

import json
import re

import pysubs2
import pytest
import soundfile as sf
import srt
import webvtt
from support import fake_server
from support.fake_server import FakeMoss, FakeServer, phrase_recording
from support.translator import asked_lines, good_answer, is_translation_request, rendered
from typer.testing import CliRunner

from moss_cli.batch.manifest import read_manifest
from moss_cli.cli.app import app
from moss_cli.text import display_width

runner = CliRunner()
LONG = ("this sentence is said much too fast and it goes on and on about the weather and the trains "
        "and the people waiting for them")  # more than one cue holds


def sentence(index: int) -> str:
    return f"phrase {index}, {LONG}." if index % 3 == 1 else f"phrase {index} is short."


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    audio, truth = phrase_recording(30.0, seed=4, gaps=(1.2, 2.5))  # the stand-in needs 1 s between phrases
    path = tmp_path_factory.mktemp("translate") / "talk.wav"
    sf.write(path, audio, 16_000, subtype="PCM_16")
    return path, truth


@pytest.fixture(autouse=True)
def translating_server(monkeypatch):
    """The stand-in transcribes sentence(i) for phrase i, describes events, and translates (rendered)."""
    def reply_for(prompt, heard):
        if is_translation_request(prompt):
            return good_answer(prompt)
        if "sentence-level" in prompt:
            return "".join(f"[{p.start:.2f}]{sentence(p.index)}[{p.end:.2f}]" for p in heard)
        if "sound events" in prompt:
            return "\n".join(f"{p.start:.2f} - {p.end:.2f}: phrase {p.index} spoken by a calm voice" for p in heard)
        return "heard"

    monkeypatch.setattr(fake_server, "reply_for", reply_for)


def moss(server, *args, code=0):
    result = runner.invoke(app, [*map(str, args), "--server", server.url])
    assert result.exit_code == code, result.stderr
    return result


def flat(texts) -> str:
    return " ".join(" ".join(texts).split())


def test_every_format_holds_the_translation_at_the_original_times(recording, tmp_path):
    path, truth = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--json", "-o", tmp_path / "plain", "-q")
        moss(server, "transcribe", path, "--translate", "fr", "--all", "-o", tmp_path, "-q")
    plain = json.loads((tmp_path / "plain" / "talk.json").read_text(encoding="utf-8"))
    data = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))
    originals = [sentence(p.index) for p in truth]
    translations = [rendered(text) for text in originals]
    assert data["translated_to"] == "fr" and "translated_to" not in plain
    assert [(s["start"], s["end"]) for s in data["segments"]] == [(s["start"], s["end"]) for s in plain["segments"]]
    assert [s["original"] for s in data["segments"]] == [s["text"] for s in plain["segments"]] == originals
    assert [s["text"] for s in data["segments"]] == translations
    assert (tmp_path / "talk.txt").read_text(encoding="utf-8").splitlines() == translations
    tsv = [row.split("\t") for row in (tmp_path / "talk.tsv").read_text(encoding="utf-8").splitlines()]
    assert tsv[0] == ["start", "end", "text"]
    assert [(int(a), int(b), t) for a, b, t in tsv[1:]] == \
        [(round(s["start"] * 1000), round(s["end"] * 1000), s["text"]) for s in data["segments"]]

    starts = {round(s["start"] * 1000) for s in data["segments"]}
    subs = list(srt.parse((tmp_path / "talk.srt").read_text(encoding="utf-8")))
    assert flat(s.content for s in subs) == flat(translations)
    assert starts <= {round(s.start.total_seconds() * 1000) for s in subs}  # each sentence's cue starts with it
    assert all(display_width(line) <= 42 for s in subs for line in s.content.split("\n"))
    captions = webvtt.read(str(tmp_path / "talk.vtt")).captions
    assert flat(c.text for c in captions) == flat(translations) and len(captions) == len(subs)
    ass = pysubs2.load(str(tmp_path / "talk.ass"))
    assert flat(e.plaintext for e in ass.events) == flat(translations)
    assert len(ass.events) == len(subs)
    assert all(abs(e.start - s.start.total_seconds() * 1000) <= 10 for e, s in zip(ass.events, subs))  # centiseconds
    page = (tmp_path / "talk.html").read_text(encoding="utf-8")
    assert all(t in page for t in translations) and page.count('data-kind="segment"') == len(truth)
    assert 'class="original"' not in page  # the original only with --bilingual


def cue_lines(texts: list[str]) -> list[tuple[list[str], list[str]]]:
    """Each bilingual cue's (original lines, translation lines); translations are «CAPITALS»."""
    cues = []
    for text in texts:
        lines = text.split("\n")
        kinds = [line.isupper() or line.startswith("«") for line in lines]
        assert kinds == sorted(kinds), f"a translation line before an original one: {text!r}"
        cues.append(([l for l, k in zip(lines, kinds) if not k], [l for l, k in zip(lines, kinds) if k]))
    return cues


def test_bilingual_cues_show_the_original_then_its_translation(recording, tmp_path):
    path, truth = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--translate", "fr", "--bilingual", "--srt", "--vtt", "--txt", "--tsv",
             "--json", "--html", "-o", tmp_path, "-q")
    originals = [sentence(p.index) for p in truth]
    segments = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))["segments"]
    srt_cues = [s.content for s in srt.parse((tmp_path / "talk.srt").read_text(encoding="utf-8"))]
    vtt_cues = [c.text for c in webvtt.read(str(tmp_path / "talk.vtt")).captions]
    assert srt_cues == vtt_cues
    cues = cue_lines(srt_cues)
    assert len(cues) > len(truth)  # the long sentences take several cues, each with its share of the translation
    assert all(first and second for first, second in cues)
    assert all(len(first) <= 2 and all(display_width(line) <= 42 for line in first + second) for first, second in cues)
    assert flat(line for first, _ in cues for line in first) == flat(originals)
    assert flat(line for _, second in cues for line in second) == flat(rendered(t) for t in originals)
    for segment in segments:  # a cue holds one sentence: its lines and translation start together
        start = srt.timedelta_to_srt_timestamp(srt.timedelta(seconds=segment["start"]))
        assert start in (tmp_path / "talk.srt").read_text(encoding="utf-8")
    text = (tmp_path / "talk.txt").read_text(encoding="utf-8").splitlines()
    assert text == [line for original in originals for line in (original, rendered(original))]
    tsv = (tmp_path / "talk.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "start\tend\toriginal\ttext"
    assert [row.split("\t")[2:] for row in tsv[1:]] == [[o, rendered(o)] for o in originals]
    page = (tmp_path / "talk.html").read_text(encoding="utf-8")  # each item: the original, then its translation
    shown = re.findall(r'<span class="original"[^>]*>([^<]*)</span>([^<]*)</span>', page)
    assert [(o, t.strip()) for o, t in shown] == [(o, rendered(o)) for o in originals]


def test_events_translated_bilingual(recording, tmp_path):
    path, truth = recording
    with FakeServer() as server:
        out = moss(server, "events", path, "--translate", "German", "--bilingual", "--srt", "-q").stdout
        data = json.loads(moss(server, "events", path, "--translate", "de", "--json", "-q").stdout)
    described = [f"phrase {p.index} spoken by a calm voice" for p in truth]
    assert [e["description"] for e in data["events"]] == [rendered(d) for d in described]
    assert [e["original"] for e in data["events"]] == described and data["translated_to"] == "de"
    cues = cue_lines([s.content for s in srt.parse(out)])
    assert [" ".join(first) for first, _ in cues] == described
    assert [" ".join(second) for _, second in cues] == [rendered(d) for d in described]


def test_the_manifest_records_the_language(recording, tmp_path):
    path, _ = recording
    fake = FakeMoss()
    with FakeServer(fake) as server:
        moss(server, "transcribe", path, "--srt", "-o", tmp_path / "plain", "-q")
        moss(server, "transcribe", path, "--srt", "--translate", "fr", "-o", tmp_path, "-q")
        asked = len(fake.requests)
        moss(server, "transcribe", path, "--srt", "--translate", "fr", "-o", tmp_path, "--skip-existing", "-q")
        assert len(fake.requests) == asked  # up to date: nothing asked
        moss(server, "transcribe", path, "--srt", "--translate", "fr", "--bilingual", "-o", tmp_path,
             "--skip-existing", "--overwrite", code=2)  # (contradictory flags stay refused)
        moss(server, "transcribe", path, "--srt", "--translate", "de", "-o", tmp_path, "--skip-existing", "-q")
        assert len(fake.requests) > asked  # another language: made again
    assert read_manifest(tmp_path / "talk.srt")["settings"]["translate"] == {"language": "de", "bilingual": False}
    assert "translate" not in read_manifest(tmp_path / "plain" / "talk.srt")["settings"]


def test_output_names_take_the_translation_language(recording, tmp_path):
    path, _ = recording
    with FakeServer() as server:
        moss(server, "transcribe", path, "--srt", "--translate", "pt-BR", "--language", "en",
             "--output-name", "{stem}.{lang}", "-o", tmp_path, "-q")
    assert (tmp_path / "talk.pt-BR.srt").is_file()


def test_a_line_the_model_never_translates_is_kept_with_a_warning(recording, tmp_path, monkeypatch):
    path, truth = recording
    translate = fake_server.reply_for

    def stubborn(prompt, heard):  # never answers the line of phrase 2
        if is_translation_request(prompt):
            return "\n".join(f"[{n}] {rendered(t)}" for n, t in asked_lines(prompt) if not t.startswith("phrase 2 "))
        return translate(prompt, heard)

    monkeypatch.setattr(fake_server, "reply_for", stubborn)
    with FakeServer() as server:
        result = moss(server, "transcribe", path, "--translate", "fr", "--json")
    segments = json.loads(result.stdout)["segments"]
    assert segments[2]["text"] == segments[2]["original"] == sentence(truth[2].index)
    assert [s["text"] for i, s in enumerate(segments) if i != 2] == \
        [rendered(sentence(p.index)) for i, p in enumerate(truth) if i != 2]
    warning = [line for line in result.stderr.splitlines() if "not translated" in line]
    assert len(warning) == 1 and "talk.wav" in warning[0] and re.search(r"\d:\d\d-\d:\d\d", warning[0])


def test_hostile_server_answers_are_put_right(recording, monkeypatch):
    """The server's first translation reverses the lines, drops one, leaves one empty and adds one: the
    run asks again for what is missing and every segment gets its own translation."""
    path, truth = recording
    answer = fake_server.reply_for
    translations = []

    def hostile(prompt, heard):
        if not is_translation_request(prompt):
            return answer(prompt, heard)
        translations.append(prompt)
        lines = [f"[{n}] {rendered(t)}" for n, t in asked_lines(prompt)]
        if len(translations) > 1:
            return "\n".join(lines)
        return "\n".join(["Sure! Here you go:", *reversed(lines[2:]), "[2]", "[40] extra", "Enjoy."])

    monkeypatch.setattr(fake_server, "reply_for", hostile)
    with FakeServer() as server:
        result = moss(server, "transcribe", path, "--translate", "fr", "--json")
    assert [s["text"] for s in json.loads(result.stdout)["segments"]] == [rendered(sentence(p.index)) for p in truth]
    assert len(translations) == 2 and [n for n, _ in asked_lines(translations[1])] == [1, 2]
    assert "not translated" not in result.stderr


@pytest.mark.parametrize("args, says", [
    (["--bilingual"], "--bilingual needs --translate"),
    (["--translate", "qqq-zz"], "--translate 'qqq-zz'"),
    (["--translate", "fr", "--words"], "leave out --words"),
    (["--translate", "fr", "--highlight-words"], "leave out --words"),
])
def test_translation_usage_errors_are_one_line(wav_file, args, says):
    result = runner.invoke(app, ["transcribe", str(wav_file), *args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and says in lines[0], result.stderr
