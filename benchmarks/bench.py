"""moss against the official code (or an imitation of it) on the same checkpoint and recording.

    python benchmarks/bench.py --size small --seconds 300 --tokens 64 --threads 2   # random checkpoint
    python benchmarks/bench.py --size small --tokens 64 --threads 2 \
        --official-src ~/MOSS-Audio --official-python ~/moss-official/bin/python    # the official code itself
    python benchmarks/bench.py --model /path/to/MOSS-Audio-4B-Instruct --audio talk.wav --device cuda

Both sides get the same chunk plan and prompt and decode exactly --tokens tokens per chunk
(end-of-turn ignored), so the work is the same and only the engine differs. The sides run
interleaved (moss, baseline, moss, baseline, ...) --repeats times; each run is printed, then the
median and min-max of each side and the ratio of medians. Not a test: it prints figures.

The baseline is, with --official-src DIR --official-python PATH, the official repository's own
code (DIR/src, imported at run time by benchmarks/official_driver.py under PATH, a Python with the
official pins that benchmarks/official_env.sh creates): one request per chunk through its
processor and `generate`, as its hf_inference.py does, on the checkpoint files moss loads (a random
one is written in the official layout) and the chunk samples moss gets. The revision timed (git
commit, model file hash, windowed or whole-clip encoder) is printed. Without them, the baseline is
an imitation of the official path inside this process (one request per chunk, each encoded on its
own, eager attention, logits over the whole prompt at prefill, batch size 1); --imitation times it
beside the official code too, to calibrate it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from moss_cli.audio.chunking import ChunkPolicy, plan_chunks  # noqa: E402
from moss_cli.audio.constants import SAMPLE_RATE  # noqa: E402
from moss_cli.audio.vad import speech_regions  # noqa: E402
from moss_cli.engine.base import DecodingOptions  # noqa: E402
from moss_cli.engine.local.engine import MossAudio, Request  # noqa: E402
from moss_cli.model.allocator import keep_freed_memory  # noqa: E402
from moss_cli.model.quantize import Int8Linear  # noqa: E402
from moss_cli.tasks.recording import Recording  # noqa: E402
from moss_cli.tasks.specs import TRANSCRIBE_SENTENCES  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from runs import Spread, ratios, read_event, run_interleaved  # noqa: E402

DRIVER = ROOT / "benchmarks" / "official_driver.py"

# Sizes: tiny and small for any machine; 4b and 8b are the released configurations.
SIZES = {
    "tiny": dict(d_model=16, encoder_layers=3, encoder_heads=2, encoder_ffn=32, conv_channels=4, adapter_hidden=24,
                 hidden=16, intermediate=32, llm_layers=2, heads=2, kv_heads=1, head_dim=8),
    "small": dict(d_model=256, encoder_layers=4, encoder_heads=4, encoder_ffn=1024, conv_channels=32,
                  adapter_hidden=1024, hidden=512, intermediate=1536, llm_layers=8, heads=8, kv_heads=2, head_dim=64),
    # Mid-size: layers, not the output layer, dominate (for --quantize figures).
    "mid": dict(d_model=256, encoder_layers=4, encoder_heads=4, encoder_ffn=1024, conv_channels=32,
                adapter_hidden=2048, hidden=1024, intermediate=3072, llm_layers=12, heads=16, kv_heads=4, head_dim=64),
    # The 4B model's language width with 8 of its 36 layers: weights, not operations, dominate a step.
    "large": dict(d_model=256, encoder_layers=4, encoder_heads=4, encoder_ffn=1024, conv_channels=32,
                  adapter_hidden=2048, hidden=2560, intermediate=9728, llm_layers=8, heads=32, kv_heads=8, head_dim=128),
    "4b": dict(d_model=1280, encoder_layers=32, encoder_heads=20, encoder_ffn=5120, conv_channels=480,
               adapter_hidden=8192, hidden=2560, intermediate=9728, llm_layers=36, heads=32, kv_heads=8, head_dim=128,
               taps=[8, 16, 24], inject=3),
    "8b": dict(d_model=1280, encoder_layers=32, encoder_heads=20, encoder_ffn=5120, conv_channels=480,
               adapter_hidden=8192, hidden=4096, intermediate=12288, llm_layers=36, heads=32, kv_heads=8, head_dim=128,
               taps=[8, 16, 24], inject=3),
}


def random_engine(size: str, device: torch.device, dtype: torch.dtype, batch_size: int | None) -> MossAudio:
    """A random checkpoint of a named size, built in place (no file for 4b/8b: they are 8-16 GB)."""
    from support.tiny_checkpoint import TinySpec, config_json, write_tokenizer

    from moss_cli.model.config import MossAudioConfig
    from moss_cli.model.loading import load_tokenizer
    from moss_cli.model.modeling import MossAudioModel

    spec = TinySpec(**SIZES[size])
    config = MossAudioConfig.from_dict(config_json(spec))
    torch.manual_seed(0)
    with torch.device(device):
        model = MossAudioModel(config).to(dtype).eval()
    model.prepare_for_cpu()  # as MossAudio.load does
    model.greedy_screen  # built before any timing (and before compare_int8 copies the model)
    folder = Path(tempfile.mkdtemp(prefix="moss-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    write_tokenizer(folder)
    return MossAudio(model, load_tokenizer(folder), name=f"random-{size}", stop_ids=set(), batch_size=batch_size)


def recording(path: str | None, seconds: float) -> Recording:
    if path:
        from moss_cli.audio.sources import open_audio

        return Recording(path, open_audio(path))
    from support.fake_server import phrase_recording

    audio, _ = phrase_recording(seconds, seed=0, gaps=(0.3, 2.0))
    return Recording(f"synthetic {seconds:.0f} s", __import__("moss_cli.audio.sources", fromlist=["x"]).AudioSource.from_array("synthetic", audio))


def run_moss(engine: MossAudio, rec: Recording, chunks, tokens: int, keep: list | None = None) -> int:
    options = DecodingOptions(max_new_tokens=tokens)
    answers = engine.ask_many([Request(rec.cut(c), TRANSCRIBE_SENTENCES.prompt, options) for c in chunks])
    if keep is not None:
        keep[:] = [a.token_ids for a in answers]
    return sum(len(a.token_ids) for a in answers)


def weights_megabytes(model: torch.nn.Module) -> float:
    """Memory the weights take, int8 packed layers included."""
    total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    for module in model.modules():
        if isinstance(module, Int8Linear):  # its int8 layouts live outside parameters and buffers
            total += module.int8_bytes()
    return total / 2**20


def compare_int8(engine: MossAudio, rec: Recording, chunks, tokens: int, repeats: int,
                 memory: dict[str, tuple[float, float]] | None = None) -> None:
    """float32 against --quantize int8 on the same weights, interleaved `repeats` times: speed (medians),
    weight memory, token agreement; `memory`: each side's (peak, held) resident MB from `memory_of`."""
    import copy

    from moss_cli.model.quantize import quantize_int8

    quantized = copy.copy(engine)
    quantized.model = quantize_int8(copy.deepcopy(engine.model))
    engines = {"float32": engine, "int8": quantized}
    outputs = {name: [] for name in engines}
    for name, which in engines.items():
        run_moss(which, rec, chunks[:1], 4)  # warm-up
    seconds = run_interleaved(
        {name: (lambda which=which, kept=outputs[name]: timed(lambda: run_moss(which, rec, chunks, tokens, kept)))
         for name, which in engines.items()},
        repeats, report=lambda n, side, s: print(f"run {n} {side:<10}{s:>9.2f} s", flush=True))
    total = len(chunks) * tokens
    print(f"{'weights':<10}{'median s':>10}{'min-max s':>14}{'x realtime':>12}{'tokens/s':>11}{'weights MB':>12}"
          + (f"{'peak MB':>10}{'held MB':>10}" if memory else ""))
    for name, which in engines.items():
        spread = Spread.of(seconds[name])
        print(f"{name:<10}{spread.median:>10.2f}{spread.low:>8.2f}-{spread.high:<5.2f}{rec.duration / spread.median:>12.1f}"
              f"{total / spread.median:>11.1f}{weights_megabytes(which.model):>12.0f}"
              + (f"{memory[name][0]:>10.0f}{memory[name][1]:>10.0f}" if memory else ""))
    if memory:
        print("peak/held MB: resident memory of a fresh process that loads the checkpoint as `moss` does and runs "
              "these chunks once (peak over its life; held at the end)")
    pairs = list(zip(outputs["float32"], outputs["int8"]))  # the last run's tokens
    same_tokens = sum(a == b for x, y in pairs for a, b in zip(x, y))
    ratio = Spread.of(seconds["float32"]).median / Spread.of(seconds["int8"]).median
    print(f"int8 is {ratio:.2f}x float32 (median against median, {repeats} interleaved runs each); greedy tokens "
          f"agree on {same_tokens}/{sum(len(x) for x, _ in pairs)} positions, "
          f"{sum(x == y for x, y in pairs)}/{len(pairs)} chunks whole")


def memory_of(checkpoint: str, quantize: str | None, args: argparse.Namespace) -> tuple[float, float]:
    """Resident MB (peak, held at the end) of a fresh process that loads `checkpoint` on the CPU in
    float32 as `moss` does, with or without `quantize`, and runs the benchmark's chunks once."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_memory, (checkpoint, quantize, args.audio, args.seconds, args.chunk_seconds,
                                            args.tokens, args.threads))


def _measure_memory(checkpoint, quantize, audio, seconds, chunk_seconds, tokens, threads) -> tuple[float, float]:
    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()
    engine = MossAudio.load(checkpoint, device="cpu", dtype="float32", quantize=quantize)
    engine.stop_ids = set()
    rec = recording(audio, seconds)
    run_moss(engine, rec, speech_chunks(rec, chunk_seconds), tokens)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    with open("/proc/self/statm") as statm:
        held = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return peak, held


def speech_chunks(rec: Recording, chunk_seconds: float) -> list:
    return [c for c in plan_chunks(rec.n_samples, speech_regions(rec.source),
                                   ChunkPolicy(chunk_seconds, 120.0, skip_silence=True)) if c.speech]


@torch.inference_mode()
def run_baseline(engine: MossAudio, rec: Recording, chunks, tokens: int) -> int:
    """The official path's costs: per-request encoding, eager attention, full-prompt logits, batch 1."""
    model = engine.model
    previous = model.config.language.attention
    model.config.language.attention = "eager"
    produced = 0
    try:
        for chunk in chunks:
            clip = engine.encode(rec.cut(chunk).copy())
            engine._last_clip = None  # the official path keeps nothing between requests
            prompt = engine.prompts.audio_question(TRANSCRIBE_SENTENCES.prompt, clip.n_tokens)
            ids, audio_mask = prompt.tensors(model.device)
            cache = model.new_cache()
            hidden = _prefill_hidden(model, ids, audio_mask, clip.states, cache)
            logits = model.lm_head(hidden)[:, -1]  # generate() computes the whole prompt's logits
            for step in range(tokens):
                token = int(logits.float().argmax(-1))
                produced += 1
                if step + 1 < tokens:
                    logits = model.decode_step(torch.tensor([[token]], device=model.device), cache)
    finally:
        model.config.language.attention = previous
    return produced


def _prefill_hidden(model, ids, audio_mask, states, cache):
    captured = {}
    handle = model.language_model.norm.register_forward_hook(lambda _m, _i, out: captured.setdefault("h", out))
    try:
        model.prefill(ids, audio_mask, states, cache)
    finally:
        handle.remove()
    return captured["h"]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def write_random_checkpoint(size: str, folder: Path) -> Path:
    """The random checkpoint on disk in the official layout, for both sides to load (seeded)."""
    from support.tiny_checkpoint import TinySpec, write_checkpoint

    return write_checkpoint(folder, TinySpec(**SIZES[size]), seed=0)


def write_job(folder: Path, checkpoint: str, rec: Recording, chunks, tokens: int, threads: int) -> Path:
    """What the official driver is asked to do: every chunk's exact samples (float32 .npy), prompt, tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, chunk in enumerate(chunks):
        names.append(f"chunk-{index:03d}.npy")
        np.save(folder / names[-1], np.ascontiguousarray(rec.cut(chunk), dtype=np.float32))
    job = {"checkpoint": str(Path(checkpoint).resolve()) if Path(checkpoint).exists() else checkpoint,
           "prompt": TRANSCRIBE_SENTENCES.prompt, "tokens": tokens, "threads": threads,
           "sample_rate": SAMPLE_RATE, "chunks": names}
    path = folder / "job.json"
    path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    return path


def job_audio_seconds(rec: Recording, chunks) -> float:
    return sum(c.end - c.start for c in chunks) / SAMPLE_RATE


class OfficialSide:
    """The official code in its own Python, loaded once; each run() times all chunks there."""

    def __init__(self, python: str, src: Path, job: Path):
        self.process = subprocess.Popen([python, str(DRIVER), "--src", str(src), "--job", str(job)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.loaded = self._read("loaded")

    def _read(self, event: str) -> dict:
        if (record := read_event(self.process, event)) is not None:
            return record
        raise SystemExit(f"bench: the official driver stopped (exit code {self.process.wait()}); "
                         "its messages are above")

    def run(self, n_chunks: int, tokens: int, audio_seconds: float) -> float:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        record = self._read("run")
        check_same_work(record, n_chunks, tokens, audio_seconds)
        return record["seconds"]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()


def check_same_work(record: dict, n_chunks: int, tokens: int, audio_seconds: float) -> None:
    """The official side did the moss side's work: as many chunks, audio seconds and tokens each."""
    produced = record["tokens_per_chunk"]
    if len(produced) != n_chunks or any(n != tokens for n in produced):
        raise SystemExit(f"bench: the official side produced {produced} tokens, expected {n_chunks} x {tokens}")
    if abs(record["audio_seconds"] - audio_seconds) > 1 / SAMPLE_RATE:
        raise SystemExit(f"bench: the official side heard {record['audio_seconds']:.3f} s, "
                         f"moss {audio_seconds:.3f} s")


def describe_official(loaded: dict) -> None:
    rev = loaded["revision"]
    print(f"official code: commit {rev['commit'] or 'unknown (not a git checkout)'}, modeling_moss_audio.py "
          f"sha256 {rev['modeling_sha256']}, {rev['encoder']} encoder; transformers {loaded['transformers']}, "
          f"torch {loaded['torch']}, {loaded['dtype']}, {loaded['threads']} threads; "
          f"load and warm-up {loaded['load_seconds']:.1f} s (not timed)", flush=True)


LABELS = {"moss": "moss", "official": "official code", "imitation": "imitation of the official path"}


def print_summary(seconds: dict[str, list[float]], audio_seconds: float, tokens: int) -> None:
    """Median and min-max per side, real-time factor and tokens/s at the median, ratio of medians."""
    print(f"{'side':<32}{'median s':>10}{'min-max s':>16}{'x realtime':>12}{'tokens/s':>10}")
    for side, times in seconds.items():
        spread = Spread.of(times)
        print(f"{LABELS[side]:<32}{spread.median:>10.2f}{f'{spread.low:.2f}-{spread.high:.2f}':>16}"
              f"{audio_seconds / spread.median:>12.1f}{tokens / spread.median:>10.1f}")
    for side, ratio in ratios(seconds, "moss").items():
        print(f"moss is {ratio:.2f}x faster than the {LABELS[side]} (median against median, "
              f"{len(seconds[side])} interleaved runs each)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small", help="random checkpoint size (without --model)")
    parser.add_argument("--model", help="a real checkpoint directory or hub id instead of random weights")
    parser.add_argument("--audio", help="recording (default: synthetic speech of --seconds)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per chunk, both sides")
    parser.add_argument("--chunk-seconds", type=float, default=60.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads, both sides (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each side")
    parser.add_argument("--official-src", type=Path, help="checkout of the official repository (code in DIR/src)")
    parser.add_argument("--official-python", help="a Python with the official pins (benchmarks/official_env.sh)")
    parser.add_argument("--imitation", action="store_true",
                        help="with --official-*: also time the imitation of the official path (calibration)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--quantize", choices=["int8"], help="compare float32 with int8 weights instead of the baseline")
    args = parser.parse_args(argv)
    if (args.official_src is None) != (args.official_python is None):
        parser.error("--official-src and --official-python go together")
    if args.official_src and not (args.official_src / "src" / "modeling_moss_audio.py").is_file():
        parser.error(f"--official-src {args.official_src}: no src/modeling_moss_audio.py there")
    return args


def main() -> None:
    args = parse_args()
    from moss_cli.engine.local.engine import resolve_device, resolve_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `moss` does for a local model (the official side is a process of its own)
    threads = torch.get_num_threads()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    work = Path(tempfile.mkdtemp(prefix="moss-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # checkpoint and chunk files: hundreds of MB
    checkpoint = args.model
    if (args.official_src or args.quantize) and not checkpoint:  # both sides must read the same files
        checkpoint = str(write_random_checkpoint(args.size, work / "checkpoint"))
    if checkpoint:
        engine = MossAudio.load(checkpoint, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
        engine.stop_ids = set()
        engine.model.greedy_screen  # its background build ends before any timing
    else:
        engine = random_engine(args.size, device, dtype, args.batch_size)
    rec = recording(args.audio, args.seconds)
    chunks = speech_chunks(rec, args.chunk_seconds)
    print(f"{engine.name} on {device} ({str(dtype).removeprefix('torch.')}), {rec.name}: {rec.duration:.0f} s "
          f"in {len(chunks)} chunks ({sum(c.end - c.start for c in chunks) / SAMPLE_RATE:.1f} s sent), "
          f"{args.tokens} tokens each, batch size {engine.batch_size}, {threads} threads", flush=True)
    if args.quantize:
        memory = None
        if device.type == "cpu" and dtype == torch.float32:
            memory = {name: memory_of(checkpoint, quantize, args) for name, quantize in (("float32", None),
                                                                                         ("int8", "int8"))}
        compare_int8(engine, rec, chunks, args.tokens, args.repeats, memory)
        return
    run_moss(engine, rec, chunks[:1], 4)  # warm-up: kernels, allocator
    sides = {"moss": lambda: timed(lambda: run_moss(engine, rec, chunks, args.tokens))}
    official = None
    try:
        if args.official_src:
            job = write_job(work / "job", checkpoint, rec, chunks, args.tokens, threads)
            official = OfficialSide(args.official_python, args.official_src, job)
            describe_official(official.loaded)
            sides["official"] = lambda: official.run(len(chunks), args.tokens, job_audio_seconds(rec, chunks))
        if (not args.official_src or args.imitation) and not args.skip_baseline:
            sides["imitation"] = lambda: timed(lambda: run_baseline(engine, rec, chunks, args.tokens))
        seconds = run_interleaved(sides, args.repeats, report=lambda n, side, s: print(
            f"run {n} {side:<10}{s:>9.2f} s", flush=True))
    finally:
        if official:
            official.close()
    print_summary(seconds, rec.duration, len(chunks) * args.tokens)


if __name__ == "__main__":
    main()
