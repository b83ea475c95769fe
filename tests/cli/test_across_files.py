"""Many short recordings share the local model's batches, and their outputs do not change."""

import numpy as np
import pytest
import soundfile as sf
from support.recordings import synthetic_speechlike
from typer.testing import CliRunner

from moss_cli.cli.app import app


@pytest.fixture
def eight_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(8):
        audio = synthetic_speechlike(10.0, seed=index) * (0.5 + 0.05 * index)
        sf.write(folder / f"clip{index}.wav", audio.astype(np.float32), 16_000, subtype="PCM_16")
    return folder


def transcribe(folder, out, tiny_checkpoint, monkeypatch, *, across: bool):
    from moss_cli.engine.local.engine import MossAudio

    pulls = []  # how many requests each pull for free rows took
    original = MossAudio.decode_continuously

    def spy(self, next_requests, deliver):
        def pull(count):
            taken = next_requests(count)
            pulls.extend([len(taken)] if taken else [])
            return taken

        return original(self, pull, deliver)

    with monkeypatch.context() as patched:
        patched.setattr(MossAudio, "decode_continuously", spy)
        patched.setenv("MOSS_ACROSS_FILES", "1" if across else "0")
        result = CliRunner().invoke(app, ["transcribe", str(folder), "-m", str(tiny_checkpoint), "--batch-size", "8",
                                          "--max-new-tokens", "6", "--json", "--srt", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return pulls, {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
                     and not p.name.endswith(".moss.json")}


def test_eight_ten_second_files_fill_the_rows_together_with_the_same_outputs(eight_files, tmp_path, tiny_checkpoint,
                                                                          monkeypatch):
    alone, one_by_one = transcribe(eight_files, tmp_path / "alone", tiny_checkpoint, monkeypatch, across=False)
    shared, together = transcribe(eight_files, tmp_path / "shared", tiny_checkpoint, monkeypatch, across=True)
    # Random weights never end an answer: each chunk hits the token cap and is asked again in parts.
    assert alone[0] == 1 and len(alone) >= 8  # one file at a time: each file's one chunk alone at first
    assert shared[0] == 8  # the eight files' chunks start together
    assert all(size <= 8 for size in shared) and sum(shared) == sum(alone) and len(shared) < len(alone)
    assert len(together) == 16 and together == one_by_one  # byte for byte
