"""The sides of benchmarks/peers.py, each run in a process of its own (peers.py --worker SIDE): load,
say so, then answer each 'run' line on stdin with a JSON record of the work done."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

VLLM_JOBS = 8  # requests in flight, as `moss transcribe --server --jobs 8`


class MossSide:
    def __init__(self, job: dict, quantize: str | None, model: str | None = None):
        """model: another checkpoint of the same weights (moss quantize's int8 one), else the job's."""
        import torch

        from moss_cli.engine.local.engine import MossAudio
        from moss_cli.model.allocator import keep_freed_memory

        torch.set_num_threads(job["threads"])
        keep_freed_memory()  # as `moss` does for a local model
        self.engine = MossAudio.load(model or job["checkpoint"], device="cpu", dtype="float32", quantize=quantize)
        self.engine.stop_ids = set()  # every request decodes exactly its tokens, as the peers are told to

    def run(self, chunks: list, prompt: str, tokens: int) -> dict:
        from moss_cli.engine.base import DecodingOptions
        from moss_cli.engine.local.engine import Request

        options = DecodingOptions(max_new_tokens=tokens)
        self.engine._last_clip = None  # each run encodes its audio again, as a new recording would be
        answers = self.engine.ask_many([Request(samples, prompt, options) for samples in chunks])
        return {"tokens_per_request": [len(answer.token_ids) for answer in answers]}

    def close(self) -> None:
        pass


class VllmSide:
    def __init__(self, job: dict, python: str, log: Path):
        from support.vllm_server import FLAGS, VllmServer

        self.checkpoint = job["checkpoint"]
        # No prefix or processor cache: the repeated runs of a case would be answered from them.
        flags = (*FLAGS, "--no-enable-prefix-caching", "--mm-processor-cache-gb", "0")
        self.server = VllmServer(python, Path(self.checkpoint), log, flags=flags).start()

    def _ask(self, samples, prompt: str, tokens: int) -> tuple[int, int]:
        """Completion tokens and prompt tokens taken from a cache, as vLLM reports them."""
        import requests

        from moss_cli.engine.remote.engine import audio_content

        body = {"model": self.checkpoint, "max_tokens": tokens, "min_tokens": tokens, "temperature": 0,
                "messages": [{"role": "user", "content": audio_content(samples, prompt)}]}
        reply = requests.post(self.server.url + "/chat/completions", json=body, timeout=3600)
        reply.raise_for_status()
        usage = reply.json()["usage"]
        return usage["completion_tokens"], (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0

    def run(self, chunks: list, prompt: str, tokens: int) -> dict:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(VLLM_JOBS) as pool:
            counts = list(pool.map(lambda samples: self._ask(samples, prompt, tokens), chunks))
        return {"tokens_per_request": [n for n, _ in counts], "cached_prompt_tokens": [c for _, c in counts]}

    def close(self) -> None:
        self.server.stop()


class CrispSide:
    """CrispASR's `moss-audio` backend. It reports its token count only in its log ("generated N
    tokens", at verbosity 1, on the C library's stderr), which is read back per request."""

    REPORTED = re.compile(rb"generated (\d+) tokens")

    def __init__(self, job: dict, gguf: str):
        from crispasr import Session

        self.session = Session(gguf, n_threads=job["threads"], backend="moss-audio", verbosity=1)

    def run(self, chunks: list, prompt: str, tokens: int) -> dict:
        self.session.set_ask(prompt)
        self.session.set_max_new_tokens(tokens)  # version 0.8.45 decodes up to 512 whatever this says
        counts = []
        for samples in chunks:
            log = self._logged(lambda samples=samples: self.session.transcribe(samples))
            reported = self.REPORTED.findall(log)
            counts.append(int(reported[-1]) if reported else None)
        return {"tokens_per_request": counts}

    @staticmethod
    def _logged(call) -> bytes:
        """What `call` writes to file descriptor 2 (the C library's log; kept from the terminal)."""
        with tempfile.TemporaryFile() as capture:
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                call()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            return capture.read()

    def close(self) -> None:
        self.session.close()


def worker(args: argparse.Namespace) -> None:
    if args.worker == "moss":  # as the `moss` command does, before torch loads
        from moss_cli.model.openmp import short_openmp_spin

        short_openmp_spin()
    import numpy as np

    started = time.perf_counter()
    job = json.loads(args.job.read_text(encoding="utf-8"))
    chunks = [np.load(args.job.parent / name) for name in job["chunks"]]
    if args.worker == "moss":
        side = MossSide(job, args.quantize, args.model)
    elif args.worker == "vllm":
        side = VllmSide(job, args.vllm_python, args.job.parent / f"vllm-{os.getpid()}.log")
    else:
        side = CrispSide(job, args.gguf)
    emit({"event": "loaded", "seconds": time.perf_counter() - started})
    try:
        for line in sys.stdin:
            if line.strip() == "run":
                start = time.perf_counter()
                record = side.run(chunks, job["prompt"], job["tokens"])
                emit({"event": "run", "seconds": time.perf_counter() - start, "chunks": len(chunks), **record})
    finally:
        side.close()


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
