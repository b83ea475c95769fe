"""Every task through the local engine on a tiny random checkpoint: garbage text, but valid outputs."""

import json

import pytest
import srt
import webvtt
from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == code, result.stderr
    return result


@pytest.fixture
def local(tiny_checkpoint):
    return ["-m", tiny_checkpoint, "--max-new-tokens", 12, "-q"]


def test_transcribe_srt_is_valid(wav_file, local):
    cues = list(srt.parse(run("transcribe", wav_file, "--srt", *local).stdout))
    assert cues and all(c.end > c.start for c in cues)
    assert all(c.start.total_seconds() >= 0 and c.end.total_seconds() <= 5.0 for c in cues)
    assert [c.start for c in cues] == sorted(c.start for c in cues)


def test_transcribe_vtt_json_txt_files(wav_file, local, tmp_path):
    run("transcribe", wav_file, "--vtt", "--json", "--txt", "-o", tmp_path, *local)
    assert webvtt.read(str(tmp_path / "clip.vtt")).captions
    data = json.loads((tmp_path / "clip.json").read_text(encoding="utf-8"))
    assert data["task"] == "transcribe" and data["duration"] == 5.0 and data["segments"]
    for segment in data["segments"]:
        assert 0 <= segment["start"] <= segment["end"] <= 5.0
    assert (tmp_path / "clip.txt").read_text(encoding="utf-8").strip()
    assert not list(tmp_path.glob("*.part"))


def test_several_inputs_json_lines(wav_file, local, tmp_path):
    other = tmp_path / "second.wav"
    other.write_bytes(wav_file.read_bytes())
    result = run("caption", wav_file, other, "--json", *local)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["audio"] for r in records] == [str(wav_file), str(other)]
    assert all(r["task"] == "caption" for r in records)


def test_one_bad_input_among_good_ones(wav_file, local, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    copy = tmp_path / "copy.wav"
    copy.write_bytes(wav_file.read_bytes())
    result = run("describe-music", wav_file, bad, copy, *local, code=1)
    assert result.stdout.count("==> ") == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("moss: error")]
    assert len(errors) == 1 and str(bad) in errors[0]


def test_events_tsv_and_speech_caption(wav_file, local):
    lines = run("events", wav_file, "--tsv", *local).stdout.splitlines()
    assert lines[0] == "start\tend\ttext"
    for line in lines[1:]:
        start, end, _ = line.split("\t", 2)
        assert 0 <= int(start) <= int(end) <= 5000
    assert run("caption", wav_file, "--speech", *local).stdout.strip()


@pytest.mark.parametrize("args", [["--srt", "--vtt"], ["--json", "--txt"]])
def test_several_formats_need_an_output_dir(wav_file, args):
    result = runner.invoke(app, ["transcribe", str(wav_file), *args])
    assert result.exit_code == 2 and "--output-dir" in result.stderr


def test_several_inputs_with_srt_need_an_output_dir(wav_file):
    result = runner.invoke(app, ["transcribe", str(wav_file), str(wav_file), "--srt"])
    assert result.exit_code == 2


def test_custom_prompt_is_sent(wav_file, tiny_checkpoint, monkeypatch):
    from moss_cli.engine.local.engine import MossAudio

    asked = []
    original = MossAudio.decode_continuously  # the local engine's rows, shared by the files of a run

    def spy(self, next_requests, deliver):
        def pulled(count):
            requests = next_requests(count)
            asked.extend(request.question for _, request in requests)
            return requests

        return original(self, pulled, deliver)

    monkeypatch.setattr(MossAudio, "decode_continuously", spy)
    run("caption", wav_file, "--prompt", "What instrument is this?", "-m", tiny_checkpoint, "--max-new-tokens", 4, "-q")
    assert asked == ["What instrument is this?"]
