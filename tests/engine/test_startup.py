"""Start-up of the local engine (issue 29): loading a checkpoint and answering imports none of
transformers' model code, nor what it drags in (torch._dynamo, torch.distributed.tensor, scipy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("transformers", "torch._dynamo", "torch.distributed.tensor", "scipy")
PROBE = """
import sys
import numpy as np
from moss_cli.engine.local.engine import MossAudio
from moss_cli import DecodingOptions
clip = np.sin(np.arange(16_000 * 2) / 7.0).astype(np.float32)
for quantize in (None, "int8"):
    engine = MossAudio.load(sys.argv[1], device="cpu", quantize=quantize)
    greedy = engine.ask(clip, "Describe the audio.", DecodingOptions(max_new_tokens=4))
    options = DecodingOptions(max_new_tokens=4, temperature=0.8, top_p=0.9, seed=1)
    sampled = engine.ask(clip, "Describe the audio.", options)
    engine.ask_questions(clip, ["Who speaks?", "Where?"], DecodingOptions(max_new_tokens=2))
    assert len(greedy.token_ids) and len(sampled.token_ids)
heavy = sorted(m for m in sys.modules if m.startswith(HEAVY))
print(type(engine.prompts.tokenizer).__name__, heavy)
""".replace("HEAVY", repr(HEAVY))


def test_loading_and_answering_import_no_transformers_model_code(tiny_checkpoint):
    """In one fresh process: float32 then --quantize int8, greedy, sampled and shared-prefix requests."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(tiny_checkpoint)], capture_output=True,
                          text=True, timeout=300, check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "QwenTokenizer []", done.stdout
