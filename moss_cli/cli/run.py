"""A command's run over its inputs: the command line checked, the engine started on first use, every file processed."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..engine.factory import EngineSpec, validated
from ..errors import EXIT_OK, MossError, UsageError
from .console import report, say
from .engine import LazyEngine, use_threads
from .options import BatchOptions, DiarizeOptions, SamplingOptions

if TYPE_CHECKING:  # the pipeline brings numpy and the VAD: loaded when a file is processed, not for --help
    from ..batch.inputs import InputList
    from ..batch.outputs import OutputSpec
    from ..batch.shards import Shard
    from ..tasks.pipeline import PipelineOptions
    from ..tasks.specs import Task
    from ..tasks.translate import Translation


@dataclass(frozen=True)
class RunPlan:
    """A command line checked before any work: the inputs this machine takes, the engine and pipeline."""

    inputs: InputList
    spec: EngineSpec
    options: PipelineOptions
    shard: Shard | None
    every: int  # inputs before sharding


def run_files(raw_inputs, outputs: OutputSpec, spec: EngineSpec, sampling: SamplingOptions, flags: BatchOptions,
              task: Task, label: str, work, speakers: DiarizeOptions | None = None,
              prompts: list[str] | None = None, language: str | None = None,
              translation: Translation | None = None, settings: dict | None = None) -> None:
    """Check the command line, start the engine on first use, process every file, exit.

    `work(pipeline, recording)` is the task's; `prompts`: what is asked (ask's questions, else the
    task's prompt); `language`: the command's --language, for --output-name's {lang} (--translate's
    language instead when given: the outputs are in it); `translation`: --translate's; `settings`: what
    else shapes the outputs, for their manifests (--skip-existing)."""
    try:
        plan = _planned(raw_inputs, outputs, spec, sampling, flags, task, speakers, prompts,
                        translation.tag if translation else language, translation)
    except (MossError, KeyboardInterrupt) as exc:  # Ctrl-C while a long list is read from stdin
        raise typer.Exit(report(exc)) from None
    if not plan.inputs.files and not plan.inputs.problems:  # a job array's part may hold nothing: that part is done
        if not flags.quiet:
            say(f"shard {plan.shard} holds none of the {plan.every} inputs; nothing to do")
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(_processed(plan, outputs, sampling, flags, task, label, work, settings))


def _planned(raw_inputs, outputs: OutputSpec, spec: EngineSpec, sampling: SamplingOptions, flags: BatchOptions,
             task: Task, speakers: DiarizeOptions | None, prompts: list[str] | None, language: str | None,
             translation: Translation | None = None) -> RunPlan:
    """Everything that can be wrong with the command line, found before any work (usage errors)."""
    from ..batch.inputs import expand_inputs
    from ..batch.outputs import check_errors_file
    from ..batch.shards import in_shard, parse_shard

    check_finite()
    spec = validated(spec, prompts or [task.prompt])
    use_threads(spec.threads)
    shard = parse_shard(flags.shard) if flags.shard is not None else None
    if flags.skip_existing and flags.overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other")
    inputs = expand_inputs(raw_inputs)
    if not inputs.files and not inputs.problems:
        raise UsageError("no audio files among the inputs")
    outputs.check(len(inputs.files))  # before sharding: every machine checks the same command line
    if outputs.name_template is not None:
        inputs = output_naming(outputs.name_template, task, spec, language).apply(inputs)
    check_errors_file(flags.errors, inputs.files, outputs, flags.overwrite)  # against every input and output name
    options = replace(pipeline_options(sampling, spec.max_request_seconds),
                      speakers=speakers.chosen() if speakers else None, translation=translation)
    if options.speakers is not None:  # before any file is transcribed: a missing diarizer fails fast
        from ..speakers.known import known_voices
        from ..speakers.voices import load_diarizer

        known_voices(options.speakers.samples, load_diarizer(options.speakers.diarizer))  # each sample usable
    jobs = flags.jobs or max(1, len(spec.servers or ()))
    return RunPlan(replace(inputs, files=in_shard(inputs.files, shard)), replace(spec, jobs=jobs), options, shard,
                   len(inputs.files))


def _processed(plan: RunPlan, outputs: OutputSpec, sampling: SamplingOptions, flags: BatchOptions, task: Task,
               label: str, work, settings: dict | None = None) -> int:
    """The batch run over the plan's inputs, the engine loaded (or connected) when first needed; its exit code."""
    from .. import interrupts
    from ..batch.runner import BatchPolicy, run_batch
    from .console import ConsoleObserver

    spec, options = plan.spec, plan.options
    engine = LazyEngine(spec, flags.quiet)
    shared = SharedEngine(engine, across_files=not spec.servers and options.speakers is None)
    policy = BatchPolicy(flags.skip_existing, flags.overwrite, flags.errors, spec.jobs,
                         {**output_settings(task, spec, sampling, outputs, options.speakers, options.translation),
                          **(settings or {})},
                         notes=engine.notes,
                         prepare=speech_scan_for(task), warm_up=engine.start, lanes=shared.lanes)

    def process(recording, progress):
        from ..tasks.pipeline import Pipeline

        engine = shared.get()
        with engine.member():
            return work(Pipeline(engine, options, progress), recording)

    # The whole run takes signals (engine.check may load a model for a while), and entering it forgets a
    # signal that ended an earlier run in this process: exit_now below is for this run's signal only.
    with interrupts.signals_interrupt():
        try:
            engine.check()
            code = run_batch(plan.inputs, process, outputs, policy, label, ConsoleObserver(flags.quiet), sys.stdout)
        except (Exception, KeyboardInterrupt) as exc:  # model missing, server gone: ends the whole run
            code = report(exc)
    if interrupts.received is not None:  # threads may still wait on a server or a decoder: don't wait
        interrupts.exit_now(code)
    engine.close()
    return code


def output_naming(template: str, task, spec: EngineSpec, language: str | None):
    """--output-name's fields that hold for the whole run, the template checked. {lang} is --language
    where the command has one and it was given, else "und" (undetermined, ISO 639-2): a language the
    model reports is known only after a file is processed, too late for the names that
    --skip-existing and the clash check need before any work."""
    import datetime

    from ..batch.inputs import OutputName

    model = spec.server_model if spec.servers and spec.server_model else spec.model
    naming = OutputName(template, task.name, Path(model.rstrip("/")).name or model, (language or "").strip() or "und",
                        datetime.date.today().isoformat())
    naming.check()
    return naming


def speech_scan_for(task: Task):
    """Transcripts and events are cut where Silero VAD finds speech: the batch runner opens the next
    input and starts its scan in the background while the model (or the servers) work on the current
    one; the current input's later blocks are scanned while its first chunks are asked (pipeline)."""
    if not task.scans_for_speech:
        return None
    from ..audio.vad import scan_ahead

    return scan_ahead


def check_finite() -> None:
    """inf and nan pass click's range checks; no option of moss means anything with them."""
    import math

    try:  # typer 0.2x carries its own copy of click
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context

    context = get_current_context(silent=True)
    for parameter in context.command.params if context else []:
        value = context.params.get(parameter.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{parameter.opts[0]}: {value} is not a finite number")


def output_settings(task, spec: EngineSpec, sampling: SamplingOptions, outputs, speakers=None, translation=None) -> dict:
    """Everything that shapes an output, recorded in its manifest for --skip-existing."""
    from dataclasses import asdict

    from ..engine.factory import recorded_settings

    engine = recorded_settings(spec)  # the model and options that shape answers, no key or password
    settings = {"task": task.name, "prompt": task.prompt, "output": task.output, "engine": engine,
                "sampling": asdict(sampling), "layout": asdict(outputs.layout)}
    if "html" in outputs.formats:
        settings["html_audio"] = outputs.html_audio
    if speakers is not None:  # only when asked: outputs made before speakers existed stay up to date
        settings["speakers"] = speakers.settings()
    if translation is not None:  # likewise: the language the texts were translated into
        settings["translate"] = translation.settings()
    return settings


def pipeline_options(sampling: SamplingOptions, max_request_seconds: float | None = None):
    from ..engine.base import DecodingOptions
    from ..tasks.pipeline import PipelineOptions

    try:
        decoding = DecodingOptions(sampling.temperature, sampling.top_p, sampling.top_k,
                                   sampling.max_new_tokens or 1024, sampling.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return PipelineOptions(decoding=decoding, token_cap=sampling.max_new_tokens, max_request_seconds=max_request_seconds)


class SharedEngine:
    """The engine as the files worked on at once share it: a local model fills its batches with the
    chunks of several files (many short recordings no longer decode one row at a time). Servers
    already take requests from one file in parallel; speaker finding runs a model of its own per
    file, so both keep one file at a time. MOSS_ACROSS_FILES=0 turns sharing off, for benchmarks."""

    def __init__(self, engine: LazyEngine, across_files: bool):
        self._engine = engine
        self.across_files = across_files and os.environ.get("MOSS_ACROSS_FILES") != "0"
        self._shared = None
        self._lock = threading.Lock()

    def get(self):
        engine = self._engine.get()  # waits for the model interruptibly, before taking the lock
        with self._lock:
            if self._shared is None:
                from ..engine.shared import SharedBatches

                self._shared = SharedBatches(engine)
            return self._shared

    def lanes(self) -> int:
        """Files at once: the engine's batch width when they share it."""
        return self.get().parallelism if self.across_files else 1
