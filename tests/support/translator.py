"""A stand-in translator: reads a translation request's numbered lines and answers them, well or badly.

The "translation" of a line is the line in capitals between « and », so a test can tell exactly which
original each answer line came from (and that none was shifted onto another segment).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from moss_cli.engine.base import Answer
from moss_cli.tasks.specs import TRANSLATE_AFTER, TRANSLATE_LINES

ASKED = re.compile(r"^\[(\d+)\] (.*)$")


def asked_lines(prompt: str) -> list[tuple[int, str]]:
    """The numbered lines a translation request asks for (the context lines are not numbered)."""
    body = prompt.split(TRANSLATE_LINES, 1)[1].split(TRANSLATE_AFTER, 1)[0]
    return [(int(m[1]), m[2]) for line in body.splitlines() if (m := ASKED.match(line))]


def context_lines(prompt: str) -> list[str]:
    """The lines given as context, before and after the numbered ones, without their dashes."""
    head, _, rest = prompt.partition(TRANSLATE_LINES)
    tail = rest.partition(TRANSLATE_AFTER)[2]
    return [line[2:] for line in (head + "\n" + tail).splitlines() if line.startswith("- ")]


def rendered(text: str) -> str:
    return f"«{text.upper()}»"


def good_answer(prompt: str) -> str:
    return "\n".join(f"[{number}] {rendered(text)}" for number, text in asked_lines(prompt))


def is_translation_request(prompt: str) -> bool:
    return TRANSLATE_LINES in prompt


class ScriptedTranslator:
    """An engine whose text-only answers come from `script(prompt, call_number)` (1, 2, ...): a string,
    or an Answer for other finish reasons. Records every prompt."""

    name = "scripted-translator"
    parallelism = 1
    thinking = False
    max_request_seconds = None
    where = None

    def __init__(self, script: Callable[[str, int], str | Answer] = lambda prompt, call: good_answer(prompt)):
        self.script = script
        self.prompts: list[str] = []
        self.budgets: list[int] = []

    def ask_text(self, question, options, guard=None):
        self.prompts.append(question)
        self.budgets.append(options.max_new_tokens)
        reply = self.script(question, len(self.prompts))
        return reply if isinstance(reply, Answer) else Answer(reply, "", reply, [], "stop", 0)

    def counts(self):
        return None

    def close(self):
        pass
