"""--translate: a timed result's texts translated by the model itself, in text-only requests.

The segments (or events) go out in batches of numbered lines, with a few lines before and after the
batch as context; the answer must come back under the same numbers. Each answer is checked line by
line and matched by number, never by position, so a translation cannot land on another segment: a
number missing, given twice with different texts, empty, broken over several lines, far longer than
its original or cut off by the token cap is asked again in smaller batches, and so is a whole answer
whose numbering moved (counted from zero, or a line merged and the rest renumbered); numbers that
were not asked and commentary around the lines are dropped. A line still untranslated after the last try keeps its original text, with
a warning naming its time. Times are never touched: every cue keeps its segment's time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..engine.base import DecodingOptions, Engine, RepetitionGuard
from ..errors import HintError
from ..progress import NoProgress, Progress
from ..results import Event, Result, Segment
from ..text import printable
from ..timeref import format_clock
from .answers import joined_text
from .hints import SCRIPT_WORDING, parse_language
from .specs import THINKING_TOKENS, TRANSLATE_AFTER, TRANSLATE_BEFORE, TRANSLATE_LINES, TRANSLATE_PROMPT

BATCH_LINES = 20  # lines per request: enough context for the model, short enough to check and redo cheaply
CONTEXT_LINES = 3  # neighbouring lines shown on each side of a batch, not translated
TRIES = 3  # a line is asked at most this often; each retry halves the batches
TOKENS_PER_CHAR = 2  # generous: CJK takes about a token a character, and a translation can be longer
LINE_TOKENS = 8  # a line's number, brackets and newline
BASE_TOKENS = 64
# A translation longer than this many times its original, plus this many characters, is not one (a loop
# or a ramble that would fill the screen for its cue): asked again. Generous: two Chinese characters
# make an English sentence.
MOST_GROWTH, GROWTH_SLACK = 4, 80

# "[3] text", "3. text", "(3) text", "3: text", "【3】text", also after a list dash: the number, then the text.
NUMBERED = re.compile(r"^\s*(?:[-*•]\s+)?[\[(（【]?\s*(\d{1,4})\s*[\])）】.:：、]\s*(.*?)\s*$")


@dataclass(frozen=True)
class Translation:
    """What --translate and --bilingual ask for."""

    tag: str  # the language's BCP 47 tag, as results and manifests record it: "fr", "zh-Hant"
    wording: str  # how the prompt names it: "French", "Chinese, in traditional Chinese characters"
    bilingual: bool = False  # outputs show each original text, then its translation
    batch_lines: int = BATCH_LINES
    context_lines: int = CONTEXT_LINES

    def settings(self) -> dict:
        """What an output's manifest records (--skip-existing redoes an output translated otherwise)."""
        return {"language": self.tag, "bilingual": self.bilingual}


def translation_for(value: str, bilingual: bool = False) -> Translation:
    """--translate LANG: a code (fr, zh-Hant, pt-BR) or an English name; HintError for anything else."""
    import langcodes  # loaded by parse_language anyway

    try:
        language = parse_language(value)
    except HintError as exc:
        raise HintError(str(exc).replace("--language", "--translate", 1)) from None
    wording = langcodes.get(language.tag).display_name()  # "Portuguese (Brazil)": the region's words too
    if language.script in SCRIPT_WORDING.values():  # Chinese: the characters matter more than the name
        wording = f"{language.name}, in {language.script}"
    return Translation(language.tag, wording, bilingual)


def translate_result(result: Result, engine: Engine, translation: Translation,
                     decoding: DecodingOptions = DecodingOptions(), token_cap: int | None = None,
                     guard: RepetitionGuard | None = None, progress: Progress | None = None) -> Result:
    """The result with each segment's (or event's) text translated in place, the original kept beside it."""
    items: list[Segment] | list[Event] = result.events if result.task == "events" else result.segments
    texts = [_text(item) for item in items]
    progress = progress or NoProgress()
    progress.begin(f"translating into {translation.wording}", sum(item.end - item.start for item in items))
    kind = "list of sound events heard in a recording" if result.task == "events" else "speech transcript"
    translator = LineTranslator(engine, translation, kind, decoding, guard, token_cap)
    done = translator.translate(texts, lambda batch: progress.advance(sum(items[i].end - items[i].start
                                                                          for i in batch)))
    for item, original, text in zip(items, texts, done):
        _set_text(item, original, original if text is None else text)
    missed = [index for index, text in enumerate(done) if text is None]
    runs = batches(missed, max(1, len(missed)))  # neighbouring lines left untranslated: a warning each run
    result.warnings += [_untranslated(items[run[0]:run[-1] + 1], translation) for run in runs]
    result.translated_to, result.bilingual = translation.tag, translation.bilingual
    result.text = joined_text(result)
    return result


def _untranslated(items: list[Segment] | list[Event], translation: Translation) -> str:
    """The warning for neighbouring lines left untranslated: one for the run, not one a line."""
    when = f"{format_clock(items[0].start)}-{format_clock(max(item.end for item in items))}"
    if len(items) == 1:
        return f"{when}: not translated into {translation.wording} after {TRIES} tries; the original text is kept"
    return (f"{when}: {len(items)} lines not translated into {translation.wording} after {TRIES} tries; "
            "their original text is kept")


def _text(item: Segment | Event) -> str:
    return item.description if isinstance(item, Event) else item.text


def _set_text(item: Segment | Event, original: str, text: str) -> None:
    item.original = original
    if isinstance(item, Event):
        item.description = text
    else:
        item.text = text
        item.words = []  # the words' times are the original's: a translation has none


class LineTranslator:
    """Lines translated in checked batches of numbered lines (see the module's docstring)."""

    def __init__(self, engine: Engine, translation: Translation, kind: str, decoding: DecodingOptions,
                 guard: RepetitionGuard | None = None, token_cap: int | None = None):
        self.engine, self.translation, self.kind = engine, translation, kind
        self.decoding, self.guard, self.token_cap = decoding, guard, token_cap

    def translate(self, texts: list[str], answered: Callable[[list[int]], None] | None = None) -> list[str | None]:
        """Each text's translation, None where every try failed; blank texts stay as they are.
        `answered(batch)` is called as each first-round batch is answered (progress)."""
        done: dict[int, str] = {}
        pending = [index for index, text in enumerate(texts) if text.strip()]
        size = max(1, self.translation.batch_lines)
        for attempt in range(TRIES):
            for batch in batches(pending, size):
                done.update(self.ask(texts, batch))
                if attempt == 0 and answered is not None:
                    answered(batch)
            pending = [index for index in pending if index not in done]
            if not pending:
                break
            size = max(1, size // 2)
        return [done.get(index) if text.strip() else text for index, text in enumerate(texts)]

    def ask(self, texts: list[str], batch: list[int]) -> dict[int, str]:
        """One request for `batch` (indices into `texts`): the lines its answer gave correctly."""
        prompt = translation_prompt(texts, batch, self.translation.wording, self.kind, self.translation.context_lines)
        answer = self.engine.ask_text(prompt, self._options(texts, batch), self.guard)
        lines = numbered_lines(answer.text, len(batch), complete=answer.finish_reason == "stop")
        return {batch[number - 1]: printable(text) for number, text in lines.items()
                if len(text) <= MOST_GROWTH * len(texts[batch[number - 1]]) + GROWTH_SLACK}

    def _options(self, texts: list[str], batch: list[int]) -> DecodingOptions:
        """Room for the batch's translation (a Thinking model's reasoning too), unless --max-new-tokens says."""
        if self.token_cap:
            return replace(self.decoding, max_new_tokens=self.token_cap)
        budget = BASE_TOKENS + sum(TOKENS_PER_CHAR * len(texts[index]) + LINE_TOKENS for index in batch)
        return replace(self.decoding, max_new_tokens=budget + (THINKING_TOKENS if self.engine.thinking else 0))


def batches(indices: list[int], size: int) -> list[list[int]]:
    """Runs of consecutive indices cut into batches of at most `size`: a batch's lines follow each other,
    so the lines around it are its real context."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return [run[start:start + size] for run in runs for start in range(0, len(run), size)]


def translation_prompt(texts: list[str], batch: list[int], language: str, kind: str, context: int) -> str:
    """The request for `batch`: the instruction, the lines before it, its numbered lines, the lines after."""
    first, last = batch[0], batch[-1]
    before = [_one_line(text) for text in texts[max(0, first - context):first] if text.strip()]
    after = [_one_line(text) for text in texts[last + 1:last + 1 + context] if text.strip()]
    parts = [TRANSLATE_PROMPT.format(language=language, kind=kind, count=len(batch))]
    if before:
        parts += ["", TRANSLATE_BEFORE, *(f"- {text}" for text in before)]
    parts += ["", TRANSLATE_LINES, *(f"[{number}] {_one_line(texts[index])}" for number, index in enumerate(batch, 1))]
    if after:
        parts += ["", TRANSLATE_AFTER, *(f"- {text}" for text in after)]
    return "\n".join(parts)


def numbered_lines(answer: str, count: int, complete: bool = True) -> dict[int, str]:
    """The lines of an answer that can be trusted, by number (1..count).

    Dropped: numbers outside 1..count (extra lines), a number given twice with different texts, an
    empty text, a line followed by unnumbered text before the next number (the model broke it in two,
    or wrote something between lines), and, when the answer did not end by itself (`complete` False:
    the token cap or the loop guard cut it), its last line, which may be cut short. Text before the
    first number and after the last (a preamble, a note) is ignored. An answer whose numbering moved
    (see _renumbered) gives nothing: its lines would land one segment off."""
    found: dict[int, set[str]] = {}
    doubtful: set[int] = set()
    first, last, stray = None, None, False
    for line in answer.splitlines():
        if not line.strip():
            continue
        match = NUMBERED.match(line)
        if match is None:
            stray = last is not None
            continue
        if stray:
            doubtful.add(last)
        number, text = int(match[1]), match[2]
        text = re.sub(rf"^[\[(（【]\s*{number}\s*[\])）】]\s*", "", text)  # "[1] [1] un": the number echoed
        first = number if first is None else first
        found.setdefault(number, set()).add(text)
        last, stray = number, False
    if not complete and last is not None:
        doubtful.add(last)
    if _renumbered(found, first, count, complete):
        return {}
    return {number: next(iter(texts)) for number, texts in sorted(found.items())
            if 1 <= number <= count and len(texts) == 1 and next(iter(texts)) and number not in doubtful}


def _renumbered(found: dict[int, set[str]], first: int | None, count: int, complete: bool) -> bool:
    """Whether the numbers of an answer moved against the lines asked, so that no number can be trusted:
    counted from zero; counted from two (1 missing, count + 1 given); or, in an answer that ended by
    itself, the last line asked missing: a line was lost or two were merged and those after it moved up."""
    if first == 0:
        return True
    if 1 not in found and count + 1 in found:
        return True
    return complete and first is not None and count not in found


def _one_line(text: str) -> str:
    """A text as one request line: a line break inside it would read as the next numbered line."""
    return " ".join(text.split())
