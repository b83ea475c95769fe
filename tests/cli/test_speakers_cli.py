"""`moss transcribe --speakers`: through a stand-in server (the voices are told apart on the client)
and the local engine, with names, usage errors, and the labels in every format."""

import json

import pytest
import soundfile as sf
from support.conversations import VOICES, best_mapping_accuracy, two_voice_dialogue
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory):
    return two_voice_dialogue(tmp_path_factory.mktemp("talk"), 20)


def transcribe(server, *args):
    return runner.invoke(app, ["transcribe", *map(str, args), "--server", server.url, "-q"])


def sentence_labels(segments, conv):
    """The speaker of the segment that holds each sentence (the server calls sentence i "phrase i.")."""
    by_text = {s["text"]: s["speaker"] for s in segments}
    return [by_text[f"phrase {i}."] for i in range(len(conv.turns))]


def test_auto_through_a_server_labels_every_segment(dialogue, tmp_path):
    path, conv = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "auto", "--json", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    segments = json.loads((tmp_path / "dialogue.json").read_text())["segments"]
    labels = sentence_labels(segments, conv)
    assert labels[0] == "S1" and set(labels) == {"S1", "S2"}  # numbered in order of first appearance
    assert best_mapping_accuracy(labels, [t.voice for t in conv.turns]) >= 0.90


def test_known_count_with_names_and_words(dialogue, tmp_path):
    path, conv = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "2", "--speaker-names", "Alice,Bob", "--words", "--json")
    assert result.exit_code == 0, result.stderr
    segments = json.loads(result.stdout)["segments"]
    assert {s["speaker"] for s in segments} == {"Alice", "Bob"} and segments[0]["speaker"] == "Alice"
    for segment in segments:  # the stand-in says three words per sentence: w{i}a w{i}b w{i}c
        assert {w["speaker"] for w in segment["words"]} == {segment["speaker"]}
    spoken = {w["word"][1:-1]: s["speaker"] for s in segments for w in s["words"]}
    labels = [spoken[str(i)] for i in range(len(conv.turns))]
    assert best_mapping_accuracy(labels, [t.voice for t in conv.turns]) >= 0.95


def test_names_alone_give_the_count(dialogue, tmp_path):
    path, _ = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speaker-names", "Ann,Ben", "--json")
    assert result.exit_code == 0, result.stderr
    assert {s["speaker"] for s in json.loads(result.stdout)["segments"]} == {"Ann", "Ben"}


def test_without_speakers_nothing_is_labelled(dialogue):
    path, _ = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--json")
    assert result.exit_code == 0, result.stderr
    assert '"speaker"' not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--speakers", "many"], "--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not 'many'"),
    (["--speakers", "0"], "--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not '0'"),
    (["--speakers", "4-2"], "--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not '4-2'"),
    (["--speakers", "0-3"], "--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not '0-3'"),
    (["--speakers", "2-"], "--speakers takes a number of speakers (1 or more), a range such as 2-4, or auto, not '2-'"),
    (["--speakers", "2", "--speaker-names", "A,B,C"], "--speaker-names gives 3 names for 2 speakers"),
    (["--speakers", "auto", "--speaker-names", "A,,B"], "speaker names must not be empty"),
    (["--speakers", "auto", "--diarizer", "magic"], "unknown diarizer 'magic': use one of resemblyzer, pyannote"),
    # a name is written into cues and rows as it is: one holding a line break would forge a cue
    (["--speaker-names", "Ann,A\nB"], "speaker name A\\nB is not one line of text: it holds \\n"),
    (["--speaker-names", "A\r\nB"], "speaker name A\\r\\nB is not one line of text: it holds \\r"),
    (["--speaker-names", "A\tB"], "speaker name A\\tB is not one line of text: it holds \\t"),
    (["--speaker-names", "A\u2028B"], "speaker name A\\u2028B is not one line of text: it holds \\u2028"),
    (["--speaker-names", "A\u202eB"], "speaker name A\\u202eB is not one line of text: it holds \\u202e"),
    (["--speaker-names", "A\x1b[2JB"], "speaker name A\\x1b[2JB is not one line of text: it holds \\x1b"),
])
def test_bad_speaker_options_are_one_line_usage_errors(dialogue, args, message):
    path, _ = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, *args)
        assert server.fake.requests == []  # refused before any audio is sent
    assert result.exit_code == 2
    assert result.stderr.strip() == f"moss: error: {message}"


@pytest.mark.parametrize("missing", ["resemblyzer", "webrtcvad"])
def test_speakers_without_the_extra_name_its_install_command_before_any_work(dialogue, monkeypatch, missing):
    """Resemblyzer is the `speakers` extra (its webrtcvad needs a C compiler): without it, or with it
    but not its webrtcvad, --speakers is one line naming the install command, before any request."""
    import sys

    from moss_cli.speakers import voices as speakers

    for name in [name for name in sys.modules if name.split(".")[0] == "resemblyzer"]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, so that the missing module is looked for
    monkeypatch.setitem(sys.modules, missing, None)
    speakers.load_diarizer.cache_clear()
    path, _ = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "2")
        assert server.fake.requests == []
    speakers.load_diarizer.cache_clear()
    assert result.exit_code == 2
    assert result.stderr == (f"moss: error: --speakers needs the speakers extra ({missing} is not installed): "
                             "pip install 'moss-cli[speakers]'\n")


def test_pyannote_not_installed_fails_before_any_transcription(dialogue, monkeypatch):
    import sys

    from moss_cli.speakers import voices as speakers

    monkeypatch.setitem(sys.modules, "pyannote.audio", None)
    speakers.load_diarizer.cache_clear()
    path, _ = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "2", "--diarizer", "pyannote")
        assert server.fake.requests == []
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "needs pyannote.audio" in result.stderr


def test_local_engine_labels_what_it_transcribes(tiny_checkpoint, dialogue):
    path, _ = dialogue
    result = runner.invoke(app, ["transcribe", str(path), "-m", str(tiny_checkpoint), "--max-new-tokens", "6",
                                 "--speakers", "2", "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    segments = json.loads(result.stdout)["segments"]
    assert segments and all(s["speaker"] in ("S1", "S2") for s in segments)


def test_local_engine_describes_voices_in_the_same_batch_rules(tiny_checkpoint, dialogue):
    """Random weights answer no JSON: every caption is left out with a warning, nothing fails."""
    path, _ = dialogue
    result = runner.invoke(app, ["transcribe", str(path), "-m", str(tiny_checkpoint), "--max-new-tokens", "4",
                                 "--speakers", "2", "--voices", "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output["voices"]) == {"speakers", "timeline"}
    assert all(set(entry) >= {"segment", "start", "end", "speaker"} for entry in output["voices"]["timeline"])
    assert any(w.startswith("voices: the caption of") for w in output["warnings"])


def test_every_format_carries_the_labels(dialogue, tmp_path):
    import webvtt

    path, conv = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "2", "--vtt", "--srt", "--txt", "--tsv", "--ass", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    segments = [line.split("\t") for line in (tmp_path / "dialogue.tsv").read_text().splitlines()[1:]]
    voices = {text: speaker for _, _, speaker, text in segments}
    captions = webvtt.read(str(tmp_path / "dialogue.vtt")).captions
    assert captions and all(voices[c.text] == c.voice for c in captions)  # every cue is its sentence's voice
    changes = sum(a != b for a, b in zip([s[2] for s in segments], [s[2] for s in segments][1:])) + 1
    txt = (tmp_path / "dialogue.txt").read_text().splitlines()
    assert sum(line.startswith(("[S1] ", "[S2] ")) for line in txt) == changes
    assert (tmp_path / "dialogue.srt").read_text().count("[S") == changes
    assert "[S1] " in (tmp_path / "dialogue.ass").read_text()


def test_a_batch_is_labelled_file_by_file_and_options_count_for_skip_existing(dialogue, tmp_path):
    import shutil

    path, _ = dialogue
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        shutil.copy(path, tmp_path / "in" / folder / "talk.wav")
    out = tmp_path / "out"
    with FakeServer() as server:
        plain = transcribe(server, tmp_path / "in", "--json", "-o", out)
        labelled = transcribe(server, tmp_path / "in", "--json", "-o", out, "--speakers", "2", "--skip-existing")
    assert plain.exit_code == 0 and labelled.exit_code == 0, labelled.stderr
    for folder in ("a", "b"):  # made without speakers, so not up to date: made again, labelled
        segments = json.loads((out / folder / "talk.json").read_text())["segments"]
        assert {s["speaker"] for s in segments} == {"S1", "S2"}


def test_a_range_of_speakers_finds_how_many_within_it(dialogue):
    path, conv = dialogue
    with FakeServer() as server:
        result = transcribe(server, path, "--speakers", "2-4", "--json")
        whisper = transcribe(server, path, "--diarize", "--min_speakers", "2", "--max_speakers", "4", "--json")
    assert result.exit_code == 0 and whisper.exit_code == 0, result.stderr + whisper.stderr
    labels = sentence_labels(json.loads(result.stdout)["segments"], conv)
    assert set(labels) == {"S1", "S2"} and best_mapping_accuracy(labels, [t.voice for t in conv.turns]) >= 0.90
    assert whisper.stdout == result.stdout  # whisperX's spelling is the same run


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A few seconds of each dialogue voice (and of one absent voice), saying what the dialogue does not."""
    import numpy as np
    from support.conversations import speak

    folder = tmp_path_factory.mktemp("voices")
    paths = {}
    for name, voice in (("ann", VOICES[0]), ("ben", VOICES[1]), ("cleo", "en+linda")):
        audio = np.concatenate([speak("A quick brown fox jumps over the lazy dog by the river.", voice),
                                np.zeros(8000, np.float32), speak("She sells sea shells on the shore all summer.", voice)])
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], audio, 16_000)
    return paths


@pytest.mark.parametrize("voices, expected", [
    ({"Ann": "ann", "Ben": "ben"}, ["Ann", "Ben"]),
    ({"Ben": "ben"}, ["S1", "Ben"]),  # an unknown voice keeps its number
    ({"Cleo": "cleo"}, ["S1", "S2"]),  # a sample of a voice that is not heard names nobody
])
def test_voice_samples_name_the_speakers_they_sound_like(dialogue, samples, voices, expected):
    path, conv = dialogue
    args = [arg for name, sample in voices.items() for arg in ("--voice", f"{name}={samples[sample]}")]
    with FakeServer() as server:
        result = transcribe(server, path, *args, "--json")
    assert result.exit_code == 0, result.stderr
    labels = sentence_labels(json.loads(result.stdout)["segments"], conv)
    assert set(labels) == set(expected)
    truth = [expected[t.voice] for t in conv.turns]
    assert sum(a == b for a, b in zip(labels, truth)) >= 0.9 * len(truth)  # each name on its own voice


def test_a_bad_voice_sample_is_one_line_naming_it(dialogue, tmp_path):
    path, _ = dialogue
    (tmp_path / "notes.wav").write_text("not audio at all")
    sf.write(tmp_path / "blip.wav", [0.1] * 4000, 16_000)
    cases = {f"Ann={tmp_path / 'missing.wav'}": f"--voice Ann={tmp_path / 'missing.wav'}: ",
             f"Ann={tmp_path / 'notes.wav'}": f"--voice Ann={tmp_path / 'notes.wav'}: ",
             f"Ann={tmp_path / 'blip.wav'}": f"--voice Ann={tmp_path / 'blip.wav'}: 0.2 s of audio is too short",
             "Ann": "--voice takes NAME=FILE (a name and a short sample of that voice), not 'Ann'"}
    for value, message in cases.items():
        with FakeServer() as server:
            result = transcribe(server, path, "--voice", value)
            assert server.fake.requests == []  # refused before any audio is sent
        assert result.exit_code == 2, value
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"moss: error: {message}"), result.stderr


def captions_of_what_is_heard(number, body, headers):
    """The stand-in's speech captions: each field says which sentences (by peak) the clip holds."""
    from support.fake_server import completion, phrases_in, request_parts

    audio, text = request_parts(body)
    if "vocal characteristics" not in text:
        return None  # transcription: the stand-in's own answer
    said = " ".join(str(p.index) for p in phrases_in(audio))
    fields = {name: f"{name} {said}" for name in ("gender", "age", "accent", "pitch", "speed", "emotion", "tone")}
    return 200, completion(json.dumps(fields))


def test_voices_profile_each_speaker_from_their_own_speech_and_time_each_segments_mood(dialogue, tmp_path):
    path, conv = dialogue
    with FakeServer() as server:
        server.fake.override = captions_of_what_is_heard
        result = transcribe(server, path, "--speakers", "2", "--voices", "--json", "--html", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    output = json.loads((tmp_path / "dialogue.json").read_text())
    segments, voices = output["segments"], output["voices"]
    spoken_by = {int(s["text"].split()[1].rstrip(".")): s["speaker"] for s in segments}
    assert set(voices["speakers"]) == {"S1", "S2"}
    for speaker, profile in voices["speakers"].items():
        assert set(profile) == {"gender", "age", "accent", "pitch", "speed", "emotion", "tone"}
        heard = [int(i) for i in profile["emotion"].split()[1:]]
        assert heard and all(spoken_by[i] == speaker for i in heard)  # their own sentences only
    assert [t["segment"] for t in voices["timeline"]] == [s["id"] for s in segments]
    for entry, segment in zip(voices["timeline"], segments):
        sentence = segment["text"].split()[1].rstrip(".")
        assert (entry["speaker"], entry["emotion"], entry["tone"]) == (segment["speaker"], f"emotion {sentence}",
                                                                     f"tone {sentence}")
        assert (entry["start"], entry["end"]) == (segment["start"], segment["end"])
    page = (tmp_path / "dialogue.html").read_text()
    assert page.count('data-kind="mood-box"') == len(segments)
    assert f'title="{_clock(segments[0]["start"])} emotion 0 · tone 0"' in page


def _clock(seconds):
    from moss_cli.timeref import format_clock

    return format_clock(seconds)


def test_voices_alone_finds_the_speakers_itself(dialogue):
    path, _ = dialogue
    with FakeServer() as server:
        server.fake.override = captions_of_what_is_heard
        result = transcribe(server, path, "--voices", "--json")
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output["voices"]["speakers"]) == {s["speaker"] for s in output["segments"]} == {"S1", "S2"}
