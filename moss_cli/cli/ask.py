"""`moss ask`: questions about one recording, or every question about every recording as a batch."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ..batch.outputs import OutputSpec
from ..engine.factory import validated
from ..errors import EXIT_OK, UsageError
from ..results import json_text
from ..text import printable_name
from .console import report, say, stderr
from .engine import LazyEngine, use_threads
from .options import BatchOptions
from .run import check_finite, output_settings, pipeline_options, run_files


def asked_questions(given: list[str] | None, from_file: str | None, stdin_inputs: bool) -> list[str] | None:
    """-Q questions, then --questions FILE's lines; None when neither is given (the single form)."""
    if not given and from_file is None:
        return None
    asked = list(given or [])
    if from_file is not None:
        if from_file == "-" and stdin_inputs:
            raise UsageError("--questions - and the input - both want stdin; put the questions in a file")
        try:
            if from_file == "-":
                text = sys.stdin.read()
            else:
                with open(from_file, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--questions {from_file}: cannot read the questions ({reason})") from None
        asked += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not asked:
        raise UsageError(f"--questions {from_file}: no questions in it")
    return asked


def refuse_empty_questions(questions: list[str]) -> None:
    """An empty question would send the audio alone, whose answer is anyone's guess: most likely a
    quoting slip ("$QUESTION" unset)."""
    if any(not question.strip() for question in questions):
        raise UsageError("a question is empty: give its words (moss ask FILE \"What is said?\")")


def ask_every_recording(inputs, questions, spec, sampling, flags: BatchOptions, json_lines, show_reasoning) -> None:
    """Every recording, every question: the batch machinery of the other commands, answers as JSON Lines
    (or, for one recording without --json, as text). Several questions share one encode and prefill."""
    from ..tasks.specs import ASK

    def work(pipeline, recording):
        results = pipeline.ask_all(recording, questions)
        for result in results if show_reasoning else []:  # model text, made printable by the pipeline
            if result.reasoning:
                sys.stderr.write(result.reasoning + "\n")
        return results

    # Text only for one file named alone: a folder, glob or list (or a job array's part of one) always
    # gives JSON Lines, however many files it turns out to hold.
    one_file = len(inputs) == 1 and inputs[0] != "-" and not inputs[0].startswith("@") and Path(inputs[0]).is_file()
    outputs = OutputSpec(("answers",) if json_lines or not one_file else ("answer",))
    run_files(inputs, outputs, spec, sampling, flags, ASK, "asking about", work, prompts=questions)


def ask_one_recording(path, questions, spec, sampling, quiet, json_lines, show_reasoning, page=None) -> int:
    """One recording, several questions: the audio is read once and (locally) encoded once.

    `page` (--html): the page goes to stdout instead of the answers, or with -o DIR to a file.
    """
    if not quiet:
        warn_questions_naming_files(path, questions)
    try:
        check_finite()
        target = _page_target(path, page, json_lines)
        spec = validated(spec, questions)
        use_threads(spec.threads)
        spec = replace(spec, jobs=max(1, len(spec.servers)))  # each server one question
        engine = LazyEngine(spec, quiet)
        options = pipeline_options(sampling, spec.max_request_seconds)
        engine.check()  # a missing model is reported before the audio is decoded
        results = _answers(path, questions, engine, options, quiet,
                           page and (lambda results, source: _write_page(results, source, path, target, page, spec,
                                                                         sampling, questions)))
        page_on_stdout = page is not None and page.output_dir is None
        for index, result in enumerate(results):
            print_answer(result, index, json_lines, show_reasoning, quiet, to_stdout=not page_on_stdout)
        for note in [] if quiet else engine.notes():
            say(note)
        engine.close()  # its connections or memory: a caller that goes on (tests, a server mode) gets them back
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    return EXIT_OK


def warn_questions_naming_files(path: Path, questions: list[str]) -> None:
    """`moss ask a.wav b.flac "q"` asks "b.flac" as a question about a.wav: most likely several
    recordings were meant, which -Q asks about (the run goes on: a question may name a file)."""
    import shlex

    named = [question for question in questions if _names_a_path(question)]
    if not named:
        return
    asked = [question for question in questions if question not in named] or ["QUESTION"]
    form = shlex.join(["moss", "ask", str(path), *named]) + "".join(f" -Q {shlex.quote(q)}" for q in asked)
    listed = ", ".join(printable_name(repr(question)) for question in named)
    say(printable_name(f"warning: the question{'s' if len(named) > 1 else ''} {listed} "
                       f"name{'' if len(named) > 1 else 's'} an existing file; to ask about several recordings, "
                       f"give the questions with -Q: {form}"))


def _names_a_path(question: str) -> bool:
    try:
        return bool(question.strip()) and Path(question).expanduser().exists()
    except (OSError, ValueError):  # a question too long or odd for a path names none
        return False


def _page_target(path: Path, page, json_lines: bool):
    """Where --html's page goes (None: stdout), checked before the model loads: a bad command line fails fast."""
    if page is None:
        return None
    from ..batch.pages import ask_page_target

    if json_lines and page.output_dir is None:
        raise UsageError("--html and --json both want stdout; -o DIR writes the page to a file")
    page.check(1)
    return ask_page_target(path, page)


def _answers(path: Path, questions, engine, options, quiet: bool, with_source=None) -> list:
    """The recording read, every question's time checked, then asked; `with_source(results, source)`
    runs while the recording is still open (the page reads its audio)."""
    from ..batch.runner import read_recording
    from ..interrupts import signals_interrupt
    from ..tasks.asking import asked_time
    from ..tasks.pipeline import Pipeline
    from .progress import ProgressBar

    with signals_interrupt():  # SIGTERM too ends the run through here, so temporary files go
        recording = read_recording(path)  # before the model loads: a bad path fails fast
        for warning in [] if quiet else recording.source.warnings:
            stderr.print(printable_name(f"moss: warning: {path}: {warning}"), markup=False)
        with recording.source:  # a converted input's temporary file goes with it
            for question in questions:  # a time past the end fails before the model loads
                asked_time(question, recording)
            label = f"asking about {printable_name(path.name)}"
            with ProgressBar(label, recording.duration, enabled=not quiet) as bar:
                results = Pipeline(engine.get(), options, bar).ask_all(recording, questions)
            if with_source:
                with_source(results, recording.source)
    return results


def _write_page(results, source, path: Path, target, page, spec, sampling, questions) -> None:
    from ..batch.pages import write_ask_page
    from ..tasks.specs import ASK

    settings = {**output_settings(ASK, spec, sampling, page), "questions": questions}
    write_ask_page(results, source, path, target, page, settings, sys.stdout)


def print_answer(result, index: int, json_lines: bool, show_reasoning: bool, quiet: bool,
                  to_stdout: bool = True) -> None:
    if show_reasoning and result.reasoning:  # model text, made printable by the pipeline
        sys.stderr.write(result.reasoning + "\n")
        sys.stderr.flush()
    if not quiet:
        for warning in result.warnings:
            stderr.print(f"moss: warning: {result.audio}: {warning}", markup=False)
    if not to_stdout:  # stdout carries the --html page
        return
    if json_lines:
        sys.stdout.write(json_text(result.answer_dict()) + "\n")
    else:
        sys.stdout.write(("\n" if index else "") + result.text + "\n")
    sys.stdout.flush()
