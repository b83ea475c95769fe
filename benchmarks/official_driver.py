"""Runs the official MOSS-Audio code on a job that benchmarks/bench.py planned; our own driver.

    OFFICIAL_PYTHON benchmarks/official_driver.py --src DIR --job JOB.json

Run by the official code's Python (transformers 4.57.1, made by official_env.sh), never by moss's.
DIR is a checkout of the official repository; its `src` package is imported from there at run time
(no official code lives in this repository). JOB.json names the checkpoint, the prompt, the tokens
per chunk, the thread count and the chunk files (float32 16 kHz .npy, the exact samples moss gets).

Each chunk is one request, as `src/hf_inference.py` makes it: the official processor builds the
prompt and the log-mel, the mel is cast to the model's dtype, the audio mask is set, and the
model's own `generate` decodes greedily, exactly `tokens` new tokens (min_new_tokens =
max_new_tokens, so the end of turn cannot stop it early).

Protocol, JSON Lines on stdout: one `{"event": "loaded", ...}` line after the model, processor and
a warm-up request, then for each line `run` read on stdin one `{"event": "run", ...}` line with
the wall time of all chunks and the tokens each produced. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

WARM_UP_TOKENS = 4  # like the moss side: kernels and allocator warmed before anything is timed


def revision(src: Path) -> dict:
    """Which official code this is: its git commit where DIR is a checkout, and the model file's hash."""
    modeling = (src / "src" / "modeling_moss_audio.py").read_text(encoding="utf-8")
    found = subprocess.run(["git", "-C", str(src), "rev-parse", "--show-toplevel", "HEAD"],
                           capture_output=True, text=True)
    top, _, commit = found.stdout.strip().partition("\n")
    own = found.returncode == 0 and Path(top).resolve() == src.resolve()  # not a repository DIR sits inside
    return {
        "commit": commit if own else None,
        "modeling_sha256": hashlib.sha256(modeling.encode()).hexdigest()[:16],
        # The later revision cuts the mel into n_window windows; the public one encodes the clip whole.
        "encoder": "windowed" if "n_window" in modeling else "whole-clip",
    }


def load(src: Path, checkpoint: str):
    sys.path.insert(0, str(src))
    from src.modeling_moss_audio import MossAudioModel
    from src.processing_moss_audio import MossAudioProcessor

    model = MossAudioModel.from_pretrained(checkpoint, trust_remote_code=True, dtype="auto", device_map="cpu")
    model.eval()
    processor = MossAudioProcessor.from_pretrained(checkpoint, trust_remote_code=True, enable_time_marker=True)
    return model, processor


def ask(model, processor, question: str, audio, tokens: int) -> int:
    """One request the way hf_inference.MossAudioHFInference.generate makes it; returns tokens produced."""
    import torch

    inputs = processor(text=question, audios=[audio], return_tensors="pt").to(model.device)
    inputs["audio_data"] = inputs["audio_data"].to(model.dtype)
    inputs["audio_input_mask"] = inputs["input_ids"] == processor.audio_token_id
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, num_beams=1,
                                   do_sample=False, use_cache=True, pad_token_id=processor.tokenizer.eos_token_id)
    return int(generated.shape[1] - inputs["input_ids"].shape[1])


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="checkout of the official repository")
    parser.add_argument("--job", type=Path, required=True, help="the job bench.py wrote")
    args = parser.parse_args()
    job = json.loads(args.job.read_text(encoding="utf-8"))

    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(job["threads"])
    chunks = [np.load(args.job.parent / name) for name in job["chunks"]]
    start = time.perf_counter()
    model, processor = load(args.src, job["checkpoint"])
    ask(model, processor, job["prompt"], chunks[0], WARM_UP_TOKENS)
    emit({"event": "loaded", "load_seconds": time.perf_counter() - start, "revision": revision(args.src),
          "transformers": transformers.__version__, "torch": torch.__version__,
          "threads": torch.get_num_threads(), "dtype": str(model.dtype).removeprefix("torch.")})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        produced = [ask(model, processor, job["prompt"], audio, job["tokens"]) for audio in chunks]
        emit({"event": "run", "seconds": time.perf_counter() - start, "tokens_per_chunk": produced,
              "audio_seconds": sum(len(audio) for audio in chunks) / job["sample_rate"]})


if __name__ == "__main__":
    main()
