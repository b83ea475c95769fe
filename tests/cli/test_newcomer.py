"""What a newcomer meets in the first runs: run summaries in readable units, a warning when `moss ask`'s
question names a file, a recording with no speech said so, and the examples' recommended forms."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.corpus import speech
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.cli.console import readable_duration

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def recordings(folder: Path, seconds=(3.0, 4.0)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, length in enumerate(seconds):
        paths.append(folder / f"r{index}.wav")
        sf.write(paths[-1], speech(length, index), 16_000, subtype="PCM_16")
    return paths


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0.0 s"), (4.24, "4.2 s"), (9.96, "10 s"), (47.3, "47 s"), (59.6, "1 min 0 s"), (60, "1 min 0 s"),
    (185, "3 min 5 s"), (3599.4, "59 min 59 s"), (3600, "1 h 0 min"), (8040, "2 h 14 min"), (90_000, "25 h 0 min"),
])
def test_readable_duration_uses_the_unit_a_person_would(seconds, text):
    assert readable_duration(seconds) == text


def test_a_batch_summary_says_seconds_of_audio_in_seconds(tmp_path):
    first, second = recordings(tmp_path / "in")
    with FakeServer() as server:
        result = runner.invoke(app, ["transcribe", str(first), str(second), "--server", server.url])
    assert result.exit_code == 0, result.stderr
    [summary] = [line for line in result.stderr.splitlines() if " done, " in line]
    head, took = summary.split(" of audio in ")
    assert head == "moss: 2 done, 0 skipped, 0 failed; 7.0 s"  # 3 s + 4 s, not "0.00 h"
    number, unit = took.split()
    assert unit == "s" and 0 <= float(number) < 60


def ask(*args):
    return runner.invoke(app, ["ask", *map(str, args)])


def test_ask_warns_when_a_question_names_an_existing_file_and_suggests_q(tmp_path):
    first, second = recordings(tmp_path / "in")
    with FakeServer() as server:
        result = ask(first, second, "Who speaks?", "--server", server.url)
        asked = [request["body"] for request in server.fake.requests]
    assert result.exit_code == 0, result.stderr  # still asked as written: a question may name a file
    assert len(asked) == 2
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning == [f"moss: warning: the question '{second}' names an existing file; to ask about several "
                       f"recordings, give the questions with -Q: moss ask {first} {second} -Q 'Who speaks?'"]


def test_ask_says_nothing_when_the_questions_are_questions_or_quiet(tmp_path):
    first, second = recordings(tmp_path / "in")
    with FakeServer() as server:
        plain = ask(first, "Who speaks?", "r1.wav", "--server", server.url)  # no such file here: a question
        quiet = ask(first, second, "--server", server.url, "-q")
        several = ask(first, second, "-Q", "Who speaks?", "--server", server.url)
    assert plain.exit_code == quiet.exit_code == several.exit_code == 0
    assert "warning" not in plain.stderr + quiet.stderr + several.stderr


def test_a_recording_without_speech_says_so_on_stderr_and_in_json(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(5 * 16_000, np.float32), 16_000, subtype="PCM_16")
    spoken = recordings(tmp_path / "in", (3.0,))[0]
    with FakeServer() as server:
        result = runner.invoke(app, ["transcribe", str(silent), "--server", server.url])
        as_json = runner.invoke(app, ["transcribe", str(silent), "--json", "-q", "--server", server.url])
        assert server.fake.requests == []  # nothing to ask
        heard = runner.invoke(app, ["transcribe", str(spoken), "--server", server.url])
        assert server.fake.requests
    assert result.exit_code == 0 and result.stdout == ""
    assert f"moss: warning: {silent}: no speech found: the transcript is empty" in result.stderr.splitlines()
    assert json.loads(as_json.stdout)["warnings"] == ["no speech found: the transcript is empty"]
    assert as_json.stderr == ""  # -q: no warning lines
    assert heard.exit_code == 0 and "no speech" not in heard.stderr


def test_examples_use_the_recommended_forms():
    """One `moss` process per run (a folder and -Q), never a shell loop starting one per file."""
    for script in EXAMPLES.glob("*.sh"):
        code = [line.strip() for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in code if re.match(r"(for|while|until)\b|.*\bxargs\b", line)], script.name
        for line in code:
            if line.startswith("moss ask"):
                assert " -Q " in line or "--questions" in line, line


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ask_many_example_answers_every_recording_of_a_folder(tmp_path):
    folder = tmp_path / "recordings"
    first, second = recordings(folder)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    moss = bin_dir / "moss"  # the CLI of this checkout, whichever moss is installed
    moss.write_text(f"#!/bin/sh\nexec {sys.executable} -m moss_cli.cli \"$@\"\n")
    moss.chmod(0o755)
    root = str(Path(__file__).resolve().parents[2])
    with FakeServer() as server:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MOSS_SERVER": server.url,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(["bash", str(EXAMPLES / "ask_many.sh"), str(folder)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        requests = len(server.fake.requests)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["audio"], a["question"]) for a in answers] == [
        (str(path), question) for path in (first, second)
        for question in ("What language is spoken?", "How many speakers are there?")]
    assert requests == 4 and all(a["answer"] for a in answers)
