from pathlib import Path

import pytest
from typer.testing import CliRunner

from moss_cli import Answer
from moss_cli.cli.app import app

runner = CliRunner()


def ask(*args):
    return runner.invoke(app, ["ask", *map(str, args)])


def test_ask_prints_only_the_answer(tiny_checkpoint, wav_file, tiny_engine):
    result = ask(wav_file, "Describe the audio.", "--model", tiny_checkpoint, "--max-new-tokens", 8)
    assert result.exit_code == 0, result.stderr
    expected = tiny_engine.ask(wav_file, "Describe the audio.", __import__("moss_cli").DecodingOptions(max_new_tokens=8))
    assert result.stdout == expected.text + "\n"
    assert "loading" in result.stderr  # logs go to stderr, never stdout


def test_quiet_and_several_questions(tiny_checkpoint, wav_file):
    one = ask(wav_file, "First?", "-m", tiny_checkpoint, "--max-new-tokens", 6, "-q")
    two = ask(wav_file, "Second?", "-m", tiny_checkpoint, "--max-new-tokens", 6, "-q")
    both = ask(wav_file, "First?", "Second?", "-m", tiny_checkpoint, "--max-new-tokens", 6, "-q")
    assert both.exit_code == 0 and both.stderr == ""
    assert both.stdout == one.stdout + "\n" + two.stdout


def test_missing_audio_is_one_line_and_exit_1(tiny_checkpoint, tmp_path):
    result = ask(tmp_path / "absent.wav", "Hi", "-m", tiny_checkpoint)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"moss: error: {tmp_path / 'absent.wav'}: no such file"
    assert result.stdout == ""


def test_audio_too_short(tiny_checkpoint, tmp_path):
    import numpy as np
    import soundfile as sf

    path = tmp_path / "blip.wav"
    sf.write(path, np.zeros(100, dtype=np.float32), 16_000)
    result = ask(path, "Hi", "-m", tiny_checkpoint, "-q")
    assert result.exit_code == 1 and "too short" in result.stderr and str(path) in result.stderr


def test_unavailable_model_exit_2_without_traceback(wav_file):
    result = ask(wav_file, "Hi", "--model", "OpenMOSS-Team/MOSS-Audio-4B-Instruct")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("moss: error")]
    assert len(lines) == 1 and "OpenMOSS-Team/MOSS-Audio-4B-Instruct" in lines[0] and "--model" in lines[0]
    assert "Traceback" not in result.stderr


def test_broken_checkpoint_exit_2_naming_the_tensor(tmp_path, wav_file):
    import torch
    from support.tiny_checkpoint import TinySpec, random_weights, write_checkpoint, write_weights

    folder = write_checkpoint(tmp_path / "broken", TinySpec())
    weights = random_weights(TinySpec())
    weights["lm_head.weight"] = torch.zeros(151936, 8)
    write_weights(folder, weights)
    result = ask(wav_file, "Hi", "-m", folder, "-q")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "lm_head.weight" in result.stderr


@pytest.mark.parametrize("flag", [["--temperature", "-1"], ["--top-p", "1.5"], ["--top-p", "0"], ["--max-new-tokens", "0"]])
def test_bad_flags_are_usage_errors(wav_file, flag):
    assert ask(wav_file, "Hi", *flag).exit_code == 2


def test_show_reasoning_goes_to_stderr(monkeypatch, wav_file):
    """The model is outside the unit under test here: a stand-in engine returns a Thinking answer."""

    class ThinkingEngine:
        name = "thinking-stand-in"
        thinking, max_request_seconds, where = True, None, "cpu in float32"

        def ask(self, audio, question, options, guard=None):
            return Answer("Two people talk.", "I hear two voices.", "", [], "stop", 0)

        def counts(self):
            return None

        def close(self):
            pass

    monkeypatch.setattr("moss_cli.engine.local.engine.MossAudio.load", classmethod(lambda cls, *a, **k: ThinkingEngine()))
    monkeypatch.setattr("moss_cli.model.checkpoint.resolve_checkpoint", lambda model, **k: Path(model))
    shown = ask(wav_file, "Who?", "--show-reasoning", "-q")
    hidden = ask(wav_file, "Who?", "-q")
    assert shown.stdout == hidden.stdout == "Two people talk.\n"
    assert "I hear two voices." in shown.stderr and hidden.stderr == ""


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("moss ")


def test_json_lines_one_object_per_question(tiny_checkpoint, wav_file):
    import json

    plain = ask(wav_file, "First?", "-m", tiny_checkpoint, "--max-new-tokens", 6, "-q")
    result = ask(wav_file, "First?", "Second?", "-m", tiny_checkpoint, "--max-new-tokens", 6, "-q", "--json")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in records] == ["First?", "Second?"]
    assert records[0]["answer"] + "\n" == plain.stdout
    assert all(r["audio"] == str(wav_file) and r["finish_reason"] in {"stop", "length"} for r in records)


def test_a_missing_model_is_reported_before_any_audio_is_decoded(tmp_path, wav_file):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    missing = tmp_path / "no-such-checkpoint"
    batch = runner.invoke(app, ["transcribe", str(garbage), str(wav_file), "-m", str(missing)])
    single = ask(garbage, "Hi?", "-m", missing)
    for result in (batch, single):
        assert result.exit_code == 2 and str(missing) in result.stderr
        assert "garbage" not in result.stderr  # the audio was never opened


def test_threads_hold_for_the_run_and_no_import_changes_them(tiny_checkpoint, wav_file):
    import subprocess
    import sys

    import torch

    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["transcribe", str(wav_file), "-m", str(tiny_checkpoint), "--threads", "1",
                                     "--max-new-tokens", "4", "-q"])
        assert result.exit_code == 0, result.stderr
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    # Loading every stage and scanning audio for speech leaves the count as the process set it
    # (the silero_vad package used to set it to 1 on import).
    script = ("import numpy as np, torch; torch.set_num_threads(2); "
              "import moss_cli.engine.local.engine, moss_cli.tasks.pipeline, moss_cli.speakers.voices, moss_cli.audio.vad as v; "
              "from moss_cli.audio.sources import AudioSource; "
              "v.speech_regions(AudioSource.from_array('x', np.random.default_rng(0).standard_normal(48000).astype('float32') * 0.1)); "
              "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "2", out.stderr


def test_quantize_int8_runs_locally_and_is_refused_for_a_server(tiny_checkpoint, wav_file):
    result = runner.invoke(app, ["transcribe", str(wav_file), "-m", str(tiny_checkpoint), "--quantize", "int8",
                                 "--max-new-tokens", "4", "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert __import__("json").loads(result.stdout)["duration"] == 5.0
    bad = runner.invoke(app, ["transcribe", str(wav_file), "--quantize", "int4", "-m", str(tiny_checkpoint)])
    assert bad.exit_code == 2 and "'int4' is not one of 'int8'" in bad.stderr  # a choice, checked by the parser
    remote = runner.invoke(app, ["caption", str(wav_file), "--quantize", "int8", "--server", "http://127.0.0.1:9/v1"])
    assert remote.exit_code == 2 and "--quantize applies to the local model" in remote.stderr


@pytest.mark.parametrize("command", [["ask", "{wav}", "Hi", "--server"], ["check-server"], ["doctor", "--server"],
                                     ["transcribe", "{wav}", "--server"]])
def test_a_malformed_ipv6_server_url_is_one_usage_line_not_an_internal_error(command, wav_file):
    args = [part.format(wav=wav_file) for part in command] + ["http://u:secret@[::1/v1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("moss: error: --server 'http://***@[::1/v1'") and "internal" not in result.stderr
    assert "secret" not in result.stderr


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_non_ascii_text_on_a_stream_that_cannot_encode_it_is_escaped_not_a_crash(tiny_checkpoint, wav_file, encoding):
    import json
    import os
    import shutil
    import subprocess
    import sys

    named = shutil.copy(wav_file, wav_file.parent / "café ☕.wav")
    env = {**os.environ, "PYTHONIOENCODING": encoding, "PYTHONPATH": str(Path(__file__).parents[2])}
    run = subprocess.run([sys.executable, "-m", "moss_cli.cli", "transcribe", named, wav_file.parent / "absent ☕.wav",
                          "--json", "-m", tiny_checkpoint, "--max-new-tokens", "4"], capture_output=True, env=env)
    assert run.returncode == 1 and b"Traceback" not in run.stderr, run.stderr
    first = json.loads(run.stdout.decode(encoding).splitlines()[0])  # still valid JSON: \u escapes
    assert first["audio"].endswith("café ☕.wav")
    assert "moss: error:" in run.stderr.decode(encoding) and "absent" in run.stderr.decode(encoding)
