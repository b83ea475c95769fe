"""The official code's greedy outputs on its own tiny checkpoint, reproduced exactly."""

import json

import pytest
from typer.testing import CliRunner

from moss_cli import DecodingOptions, MossAudio
from moss_cli.cli.app import app


def golden_cases():
    from support.paths import FIXTURES

    path = FIXTURES / "moss-tiny-ref" / "golden.json"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no conformance fixtures at {path}"))]
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return [pytest.param(case, id=f"{case['audio']}-{i}") for i, case in enumerate(cases)]


@pytest.fixture(scope="module")
def reference_engine(shared_fixtures):
    return MossAudio.load(str(shared_fixtures / "moss-tiny-ref"), device="cpu")


@pytest.mark.parametrize("case", golden_cases())
def test_prompt_ids_and_greedy_tokens(case, reference_engine, shared_fixtures):
    clip = reference_engine.encode(shared_fixtures / "audio" / case["audio"])
    assert reference_engine.prompts.audio_question(case["prompt"], clip.n_tokens).input_ids == case["input_ids"]
    answer = reference_engine.ask(clip, case["prompt"], DecodingOptions(max_new_tokens=case["max_new_tokens"]))
    assert answer.token_ids == case["generated_ids"]


@pytest.mark.parametrize("case", golden_cases())
def test_cli_prints_the_golden_text(case, shared_fixtures):
    args = ["ask", str(shared_fixtures / "audio" / case["audio"]), case["prompt"],
            "--model", str(shared_fixtures / "moss-tiny-ref"), "--temperature", "0",
            "--max-new-tokens", str(case["max_new_tokens"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == case["generated_text"].strip()
