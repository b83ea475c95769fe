"""Options typed from whisper habits (openai-whisper, faster-whisper, whisperX): moss's own, or one usage line."""

import pytest
import typer
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.cli.habits import translated
from moss_cli.engine.factory import EngineSpec
from moss_cli.model.checkpoint import model_name

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands


@pytest.mark.parametrize("whisper, moss", [
    (["--output_format", "srt"], ["--srt"]),
    (["-f", "VTT"], ["--vtt"]),
    (["--output_format=all"], ["--all"]),
    (["--output_dir", "out"], ["--output-dir", "out"]),
    (["--initial_prompt", "a talk on MOSS"], ["--context", "a talk on MOSS"]),
    (["--word_timestamps", "True"], ["--words"]),
    (["--word_timestamps", "False"], []),
    (["--word_timestamps"], ["--words"]),
    (["--diarize"], ["--speakers", "auto"]),
    (["--task", "transcribe"], []),
    (["--task", "translate"], ["--translate", "en"]),  # whisper translates into English
    (["--task=Translate", "--srt"], ["--translate", "en", "--srt"]),
    (["--diarize", "--min_speakers", "2", "--max_speakers", "4"], ["--speakers", "2-4"]),  # whisperX's range
    (["--max_speakers=3", "--srt"], ["--srt", "--speakers", "1-3"]),
    (["--min_speakers", "2", "--", "x.wav"], ["--speakers", "2-8", "--", "x.wav"]),
    (["--max_line_width", "30", "--max_line_count", "1"], ["--max-line-width", "30", "--max-lines", "1"]),
    (["--batch_size", "4", "--max_new_tokens=8"], ["--batch-size", "4", "--max-new-tokens=8"]),
    (["--language", "en", "--hotwords", "MOSS"], ["--language", "en", "--hotwords", "MOSS"]),
    (["--context", "--diarize"], ["--context", "--diarize"]),  # a moss option's value is left alone
    (["--", "--diarize"], ["--", "--diarize"]),
])
def test_whisper_options_become_moss_options(whisper, moss):
    assert translated(COMMANDS["transcribe"], ["talk.wav", *whisper]) == ["talk.wav", *moss]


@pytest.mark.parametrize("whisper, moss", [
    (["-f", "md"], ["--md"]), (["-f", "chapters.vtt"], ["--chapters-vtt"]), (["-f", "ffmetadata"], ["--ffmetadata"]),
    (["--output_format", "chapters.txt"], ["--chapter-list"]), (["-f", "json"], ["--json"]), (["-f", "all"], ["--all"]),
])
def test_summarize_takes_its_own_formats_by_name(whisper, moss):
    assert translated(COMMANDS["summarize"], ["talk.wav", *whisper]) == ["talk.wav", *moss]


@pytest.mark.parametrize("command, args, names", [
    ("summarize", ["-f", "srt"], "--json, --html, --md, --chapters-vtt, --ffmetadata, --chapter-list"),
    ("summarize", ["-f", "docx"], "--chapters-vtt"),
    ("transcribe", ["-f", "md"], "--srt"),
    ("caption", ["--task", "translate"], "--translate en"),
    ("transcribe", ["--task", "translate", "--words"], "leave out --words"),
    ("events", ["--min_speakers", "2"], "--speakers MIN-MAX"),
    ("transcribe", ["--output_format", "docx"], "--srt"),
    ("caption", ["-f", "srt"], "--json"),
    ("events", ["--diarize"], "--speakers auto"),
    ("events", ["--word_timestamps", "True"], "--words"),
    ("ask", ["--initial_prompt", "x"], "--context"),
    ("transcribe", ["--output_dir"], "needs a value"),
])
def test_whisper_options_moss_cannot_honour_are_one_usage_line(command, args, names, tmp_path):
    result = runner.invoke(app, [command, str(tmp_path / "talk.wav"), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moss: error:") and names in lines[0], result.stderr


def test_an_alias_writes_what_the_moss_options_write(tiny_checkpoint, wav_file, tmp_path):
    common = [str(wav_file), "-m", str(tiny_checkpoint), "--max-new-tokens", "6", "-q"]
    moss = runner.invoke(app, ["transcribe", *common, "--srt", "--json", "-o", str(tmp_path / "moss"),
                               "--context", "a talk", "--words"])
    whisper = runner.invoke(app, ["transcribe", *common, "--output_format", "srt", "-f", "json",
                                  "--output_dir", str(tmp_path / "whisper"), "--initial_prompt", "a talk",
                                  "--word_timestamps", "True"])
    assert moss.exit_code == 0 and whisper.exit_code == 0, moss.stderr + whisper.stderr
    for name in ("clip.srt", "clip.json"):
        assert (tmp_path / "whisper" / name).read_text() == (tmp_path / "moss" / name).read_text()
    events = runner.invoke(app, ["events", *common, "-f", "tsv"])
    assert events.exit_code == 0 and events.stdout == runner.invoke(app, ["events", *common, "--tsv"]).stdout


def test_task_translate_is_translate_en(tiny_checkpoint, wav_file):
    """--task translate runs the translation into English, as --translate en does (same outputs)."""
    common = ["transcribe", str(wav_file), "-m", str(tiny_checkpoint), "--max-new-tokens", "6", "-q", "--json"]
    whisper, moss = runner.invoke(app, [*common, "--task", "translate"]), runner.invoke(app, [*common, "--translate", "en"])
    assert whisper.exit_code == 0 and moss.exit_code == 0, whisper.stderr + moss.stderr
    assert '"translated_to": "en"' in whisper.stdout and whisper.stdout == moss.stdout


def test_whisper_options_stay_out_of_the_help():
    shown = runner.invoke(app, ["transcribe", "--help"]).stdout
    assert "output_format" not in shown and "initial_prompt" not in shown and "word_timestamps" not in shown


@pytest.mark.parametrize("short, hub_id", [
    ("4b", "OpenMOSS-Team/MOSS-Audio-4B-Instruct"),
    ("4B-Instruct", "OpenMOSS-Team/MOSS-Audio-4B-Instruct"),
    ("8b", "OpenMOSS-Team/MOSS-Audio-8B-Instruct"),
    ("4b-thinking", "OpenMOSS-Team/MOSS-Audio-4B-Thinking"),
    ("8B-Thinking", "OpenMOSS-Team/MOSS-Audio-8B-Thinking"),
    ("someone/else", "someone/else"),
])
def test_model_short_names_are_the_hub_ids(short, hub_id):
    assert model_name(short) == hub_id
    assert EngineSpec(short).model == hub_id


def test_a_local_directory_named_like_a_short_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "8b").mkdir()
    assert model_name("8b") == "8b"


def test_a_short_name_not_in_the_cache_is_reported_by_its_hub_id(wav_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = runner.invoke(app, ["transcribe", str(wav_file), "-m", "8b-thinking"])
    assert result.exit_code == 2 and "OpenMOSS-Team/MOSS-Audio-8B-Thinking" in result.stderr, result.stderr
