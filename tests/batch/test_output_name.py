"""--output-name TEMPLATE: output names from the input and the run, through the CLI and a stand-in server."""

import datetime
import json

import soundfile as sf
from support.corpus import speech
from support.fake_server import FakeServer
from typer.testing import CliRunner

from moss_cli.batch.manifest import manifest_path
from moss_cli.cli.app import app

runner = CliRunner()


def recordings(root, *names):
    for index, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, speech(3, index), 16_000, subtype="PCM_16")
    return root


def transcribe(server, *args):
    result = runner.invoke(app, ["transcribe", *map(str, args), "--server", server.url, "-q"])
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    return result


def written(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_fields_mirrored_tree_and_several_formats(tmp_path):
    root = recordings(tmp_path / "in", "a/x.wav", "b/y.flac")
    out = tmp_path / "out"
    with FakeServer() as server:
        result = transcribe(server, root, "--srt", "--vtt", "--json", "-o", out,
                            "--output-name", "{stem}.{lang}.{task}-{model}_{date}_{name}")
    assert result.exit_code == 0, result.stderr
    today = datetime.date.today().isoformat()
    stems = [f"a/x.und.transcribe-MOSS-Audio-4B-Instruct_{today}_x.wav", f"b/y.und.transcribe-MOSS-Audio-4B-Instruct_{today}_y.flac"]
    assert written(out) == sorted(f"{stem}.{ext}" for stem in stems for ext in ("json", "srt", "vtt"))
    assert json.loads((out / f"{stems[0]}.json").read_text())["audio"] == str(root / "a" / "x.wav")


def test_lang_is_the_language_given(tmp_path):
    root = recordings(tmp_path / "in", "x.wav")
    out = tmp_path / "out"
    with FakeServer() as server:
        result = transcribe(server, root, "--srt", "-o", out, "--language", "de", "--output-name", "{stem}.{lang}")
    assert result.exit_code == 0, result.stderr
    assert written(out) == ["x.de.srt"]


def test_skip_existing_uses_the_templated_names(tmp_path):
    root = recordings(tmp_path / "in", "x.wav", "y.wav")
    out = tmp_path / "out"
    with FakeServer() as server:
        first = transcribe(server, root, "--srt", "-o", out, "--output-name", "{stem}.en")
        assert first.exit_code == 0 and written(out) == ["x.en.srt", "y.en.srt"]
        assert manifest_path(out / "x.en.srt").is_file()
        (out / "y.en.srt").unlink()
        requests = len(server.fake.requests)
        again = runner.invoke(app, ["transcribe", str(root), "--srt", "-o", str(out), "--output-name", "{stem}.en",
                                    "--skip-existing", "--server", server.url])
        assert again.exit_code == 0, again.stderr
        assert "1 done, 1 skipped, 0 failed" in again.stderr
        assert len(server.fake.requests) > requests and written(out) == ["x.en.srt", "y.en.srt"]
        # Today's names are other files: nothing of the templated run is taken for them.
        plain = transcribe(server, root, "--srt", "-o", out, "--skip-existing")
    assert plain.exit_code == 0 and written(out) == ["x.en.srt", "x.srt", "y.en.srt", "y.srt"]


def test_collision_is_reported_not_overwritten(tmp_path):
    root = recordings(tmp_path / "in", "x.wav", "x.flac", "z.wav")
    out = tmp_path / "out"
    with FakeServer() as server:
        result = transcribe(server, root, "--json", "-o", out, "--output-name", "{stem}")
    assert result.exit_code == 1
    assert written(out) == ["x.json", "z.json"]
    assert json.loads((out / "x.json").read_text())["audio"] == str(root / "x.flac")  # the first in order
    error = [line for line in result.stderr.splitlines() if line.startswith("moss: error:")]
    assert error == [f"moss: error: {root / 'x.wav'}: its outputs would have the same names as those of "
                     f"{root / 'x.flac'}; give inputs with the same names in separate runs"]


def test_bad_templates_are_usage_errors(tmp_path):
    root = recordings(tmp_path / "in", "x.wav")
    cases = {"{stem}/{lang}": "without a path separator", "{speaker}": "unknown field {speaker}",
             "{stem!r}": "plain", "{stem:>9}": "plain", "{0}": "unknown field {0}", "{stem": "braces",
             "{lang}": None, " ": "non-empty"}
    with FakeServer() as server:
        for template, reason in cases.items():
            result = transcribe(server, root, "--srt", "-o", tmp_path / "out", "--output-name", template)
            if reason is None:  # {lang} alone is a name: und.srt
                assert result.exit_code == 0 and written(tmp_path / "out") == ["und.srt"]
                continue
            assert result.exit_code == 2, (template, result.stderr)
            assert result.stderr.count("\n") == 1 and reason in result.stderr and "--output-name" in result.stderr
        no_dir = transcribe(server, root, "--srt", "--output-name", "{stem}")
        assert no_dir.exit_code == 2 and "-o" in no_dir.stderr
        assert not server.fake.requests[1:]  # usage errors come before any request
