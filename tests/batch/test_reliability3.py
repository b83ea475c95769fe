"""Reliability 3: the --errors file never writes over data, outputs stay under -o, the sweep and the
manifests touch only moss's own files, one input's trouble never stops the batch, and same-named
files in two folders given both get their outputs."""

import errno
import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from support.corpus import speech
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()


def transcribe(server, *args, input=None):
    return runner.invoke(app, ["transcribe", *map(str, args), "--server", server.url], input=input)


def wav(path: Path, seconds: float = 3, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), speech(seconds, seed), 16_000, subtype="PCM_16", format="WAV")
    return path


def errors_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("moss: error: ")]


# ---- 6: one input's trouble is that input's failure ---------------------------------------------
@pytest.mark.parametrize("output", [[], ["-o", "out"]])
def test_a_name_over_255_bytes_fails_alone_given_or_listed(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    good, long = wav(tmp_path / "a.wav"), "x" * 300 + ".wav"
    (tmp_path / "list.txt").write_text(f"{long}\n{good}\n")
    with FakeServer() as server:
        for inputs in ([long, good], ["@list.txt"]):
            result = transcribe(server, *inputs, "--txt", *output)
            assert result.exit_code == 1 and "internal error" not in result.stderr, result.stderr
            [line] = errors_lines(result.stderr)
            assert line.startswith(f"moss: error: {long}: ")
            assert "Traceback" not in result.output
    ask = runner.invoke(app, ["ask", long, "Hi", "--server", "http://127.0.0.1:9/v1"])
    assert ask.exit_code == 1 and errors_lines(ask.stderr) and "internal error" not in ask.stderr


@pytest.mark.parametrize("raised", ["eio", "full"])
@pytest.mark.parametrize("output", [[], ["-o", "out"]])
def test_a_read_or_conversion_failure_fails_that_input_and_is_counted(tmp_path, monkeypatch, raised, output):
    import soundfile

    from moss_cli.audio import sources

    monkeypatch.chdir(tmp_path)
    bad, good = wav(tmp_path / "bad.wav"), wav(tmp_path / "good.wav", seed=2)
    real = sources.open_audio

    def open_audio(path, *args, **kwargs):
        if Path(path).name == "bad.wav":
            if raised == "eio":
                raise OSError(errno.EIO, "Input/output error", str(path))
            raise soundfile.LibsndfileError(2, "")  # what a full temporary folder gives while converting
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open_audio", open_audio)
    with FakeServer() as server:
        result = transcribe(server, bad, good, "--txt", *output, "--errors", "failed.jsonl")
    assert result.exit_code == 1 and "internal error" not in result.stderr, result.stderr
    [line] = errors_lines(result.stderr)
    assert line.startswith(f"moss: error: {bad}: cannot read or convert the audio")
    assert "1 done, 0 skipped, 1 failed" in result.stderr
    [record] = [json.loads(x) for x in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert record["input"] == str(bad) and record["kind"] == "AudioError"


def test_html_pages_and_index_for_a_name_that_is_not_utf8(tmp_path):
    folder = tmp_path / "in"
    odd = wav(Path(os.fsdecode(bytes(folder) + b"/caf\xe9.wav")))
    wav(folder / "b.wav", seed=2)
    out = tmp_path / "out"
    with FakeServer() as server:
        result = transcribe(server, folder, "--html", "-o", out)
        single = transcribe(server, odd, "--html")  # the page on stdout
    assert result.exit_code == 0 and "internal error" not in result.stderr, result.stderr
    page = Path(os.fsdecode(bytes(out) + b"/caf\xe9.html")).read_text(encoding="utf-8")
    assert 'src="../in/caf%E9.wav"' in page  # the link names the file's own bytes
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="caf%E9.html"' in index and "caf\\xe9.wav" in index
    assert single.exit_code == 0 and "<html" in single.stdout, single.stderr


# ---- 10: same-named files in two folders given ---------------------------------------------------
def test_two_folders_given_are_placed_under_their_names_as_cp_r_would(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wav(tmp_path / "d1" / "x.wav", seed=1), wav(tmp_path / "d2" / "sub" / "x.wav", seed=2)
    with FakeServer() as server:
        both = transcribe(server, "d1", "d2/", "--txt", "-o", "out")
        one = transcribe(server, "d1", "d1/", "--txt", "-o", "one")  # one folder, given twice: today's mirror
    assert both.exit_code == 0 and errors_lines(both.stderr) == [], both.stderr
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.txt")) == \
        ["d1/x.txt", "d2/sub/x.txt"]
    assert one.exit_code == 0 and [p.name for p in (tmp_path / "one").glob("*.txt")] == ["x.txt"]


# ---- 5: outputs stay under -o; the sweep and manifests touch only moss's files --------------------
def test_a_glob_that_climbs_out_still_writes_inside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wav(tmp_path / "x1.wav"), wav(tmp_path / "in" / "deep" / "keep.wav", seed=2)
    with FakeServer() as server:
        result = transcribe(server, "in/*/../../x*.wav", "--txt", "-o", "in/out")
    assert result.exit_code == 0, result.stderr
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.txt"))
    assert made == ["in/out/x1.txt"]  # not in/x1.txt beside -o


def test_the_sweep_and_the_outputs_leave_files_named_like_moss_files_alone(tmp_path):
    from moss_cli.files import sweep_parts

    out = tmp_path / "out"
    out.mkdir()
    notes, killed = out / ".moss-notes.part", out / ".moss-0123abcd.part"
    notes.write_text("mine"), killed.write_text("left by a killed run")
    sweep_parts(out)
    assert notes.read_text() == "mine" and not killed.exists()
    # An input whose output would take a manifest's name (.x.txt.moss.json) fails; x.txt's manifest stays.
    wav(tmp_path / "x.wav"), wav(tmp_path / ".x.txt.moss.wav", seed=2)
    with FakeServer() as server:
        result = transcribe(server, tmp_path / "x.wav", tmp_path / ".x.txt.moss.wav", "--txt", "--json",
                            "-o", out, "--overwrite")
    [line] = errors_lines(result.stderr)
    assert ".x.txt.moss.wav" in line and "keeps for its own manifests" in line
    assert json.loads((out / ".x.txt.moss.json").read_text())["input"] == str(tmp_path / "x.wav")


# ---- 3: --errors never writes over data ----------------------------------------------------------
def test_the_errors_file_never_takes_an_input_an_output_or_another_tools_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = wav(tmp_path / "a.wav"), wav(tmp_path / "b.wav", seed=2)
    Path("notes.txt").write_text("mine\n")
    with FakeServer() as server:
        assert transcribe(server, "a.wav", "--txt", "-o", "subs").exit_code == 0  # subs/a.txt, vouched for
        cases = {("--errors", "a.wav", "b.wav"): "a.wav is an audio file",  # `--errors *.wav`
                 ("--errors", "a.wav", "b.wav", "--overwrite"): "a.wav is an audio file",
                 ("b.wav", "--errors", "b.wav"): "b.wav is an input of this run",
                 ("b.wav", "--errors", "subs/b.txt"): "subs/b.txt is an output of this run",
                 ("b.wav", "--errors", "subs/.b.txt.moss.json"): "is a name moss keeps",
                 ("b.wav", "--errors", "subs/a.txt", "--overwrite"): "subs/a.txt is an output moss made",
                 ("b.wav", "--errors", "notes.txt"): "notes.txt exists and is not an errors file",
                 # the --html index of several inputs, written at the end of the run, even on a first run
                 ("a.wav", "b.wav", "--html", "--errors", "subs/index.html"): "subs/index.html is an output of this run"}
        before = {p: p.read_bytes() for p in (first, second, Path("subs/a.txt"), Path("notes.txt"))}
        for args, message in cases.items():
            result = transcribe(server, *args, "--txt", "-o", "subs")
            assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, (args, result.stderr)
            assert result.stderr.startswith("moss: error: --errors: ") and message in result.stderr, result.stderr
        assert {p: p.read_bytes() for p in before} == before
        # An empty file, or an errors file moss wrote, is replaced; so is another file with --overwrite.
        for args in (("absent.wav", "--errors", "failed.jsonl"), ("absent.wav", "--errors", "failed.jsonl"),
                     ("absent.wav", "--errors", "notes.txt", "--overwrite")):
            assert transcribe(server, *args, "--txt", "-o", "subs").exit_code == 1
        assert json.loads(Path("notes.txt").read_text())["kind"] == "AudioError"
