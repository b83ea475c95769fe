"""Shell completion through Typer's own --show-completion and Click's completion protocol."""

import os
import subprocess
import sys
import time

from typer.testing import CliRunner

from moss_cli.cli.app import app

runner = CliRunner()
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}  # name the shell instead of asking shellingham


def moss_process(*args, env=None):
    """`moss` in a fresh interpreter: Typer reads the shell-detection switch when the app is built."""
    code = "import sys; from moss_cli.cli.app import app; app(prog_name='moss')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_show_completion_prints_a_bash_script():
    result = moss_process("--show-completion", "bash", env=NO_DETECTION)
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _moss_completion moss" in result.stdout
    assert "_MOSS_COMPLETE=complete_bash" in result.stdout


def test_completion_protocol_lists_commands_and_options():
    commands = runner.invoke(app, [], prog_name="moss",
                             env={"_MOSS_COMPLETE": "complete_bash", "COMP_WORDS": "moss tra", "COMP_CWORD": "1"})
    assert commands.exit_code == 0
    assert commands.stdout.split() == ["transcribe"]
    options = runner.invoke(app, [], prog_name="moss", env={
        "_MOSS_COMPLETE": "complete_bash", "COMP_WORDS": "moss transcribe --max-li", "COMP_CWORD": "2"})
    assert set(options.stdout.split()) == {"--max-line-width", "--max-lines", "--max-line-chars"}


def test_no_arguments_still_shows_help():
    result = runner.invoke(app, [], prog_name="moss")
    assert result.exit_code == 2  # click's no_args_is_help exits 2 after the help
    assert "transcribe" in result.output and "--install-completion" in result.output


def test_help_stays_fast():
    """Completion support must not make `moss --help` import anything heavy (torch, transformers)."""
    code = "import sys; from moss_cli.cli.app import app; app(['--help'], prog_name='moss', standalone_mode=False); " \
           "print('loaded:', *(m for m in ('torch', 'transformers') if m in sys.modules))"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "loaded:"
    assert time.monotonic() - started < 10  # seconds; about 0.3 s on the 2-core CI machine


def completed(line: str) -> list[str]:
    """What bash completion offers for the last word of `line`."""
    words = line.split(" ")
    result = runner.invoke(app, [], prog_name="moss", env={
        "_MOSS_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_choices_complete_their_values():
    """--device, --dtype, --quantize and --html-audio offer their values; the format flags their names."""
    assert completed("moss transcribe a.wav --device ") == ["auto", "cpu", "cuda", "mps", "cuda:0"]
    assert completed("moss transcribe a.wav --device cu") == ["cuda", "cuda:0"]
    assert completed("moss ask a.wav --dtype ") == ["auto", "float32", "bfloat16", "float16"]
    assert completed("moss caption a.wav --dtype b") == ["bfloat16"]
    assert completed("moss events a.wav --quantize ") == ["int8"]
    assert completed("moss transcribe a.wav --html-audio ") == ["auto", "link", "embed", "none"]
    assert set(completed("moss transcribe a.wav --s")) >= {"--srt", "--speakers", "--server"}
    assert completed("moss events a.wav --ts") == ["--tsv"]


def test_choices_are_checked_before_any_work_and_shown_in_help(tmp_path):
    """A value outside the choices is a usage error (exit 2) before the input is even looked at."""
    missing = tmp_path / "nowhere.wav"  # never opened: the option fails first
    for option, value in (("--device", "gpu"), ("--dtype", "fp16"), ("--quantize", "int4")):
        result = runner.invoke(app, ["transcribe", str(missing), option, value])
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
        assert "nowhere.wav" not in result.output
    for good in ("cpu", "CUDA:1", "mps"):
        from moss_cli.cli.options import device_choice

        assert device_choice(good) == good.lower()
    # The help as a fresh process shows it: rich's width, once another test has fixed it in this
    # process, may shorten a long choice list with an ellipsis.
    env = {**os.environ, "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "moss_cli.cli", "transcribe", "--help"], env=env,
                           capture_output=True, text=True, timeout=60).stdout
    for choices in ("<auto|cpu|cuda|cuda:N|mps>", "<auto|float32|bfloat16|float16>", "<int8>"):
        assert choices in shown
