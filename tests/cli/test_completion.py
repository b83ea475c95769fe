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
