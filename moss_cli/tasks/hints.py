"""--language, --context and --hotwords: sentences appended to a task's prompt as hints.

MOSS-Audio has no language token or biasing decoder (unlike Whisper): all it takes is an instruction.
So a hint is text after the official prompt, which stays intact (its timestamp format included),
and the model may still follow the speech rather than the hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import HintError

# Han scripts read best to the model as characters, not as "Simplified script".
SCRIPT_WORDING = {"Hans": "simplified Chinese characters", "Hant": "traditional Chinese characters"}
VALID_LANGUAGES_HINT = ("an ISO 639-1 or 639-3 code (en, zh, de, ja, yue), a tag with a script or region "
                        "(zh-Hant, zh-TW) or an English name (German); codes: https://iso639-3.sil.org/code_tables/639/data")



@dataclass(frozen=True)
class Language:
    tag: str  # normalised BCP 47 tag: "zh", "zh-Hant", "yue"
    name: str  # English name: "Chinese", "Cantonese"
    script: str  # how its text is written: "Latin script", "simplified Chinese characters"


def parse_language(value: str) -> Language:
    """A language from a code (ISO 639-1/-3, BCP 47) or an English name, with the script it is written in.

    langcodes knows every ISO 639 code and CLDR's likely script for each (zh: Hans, yue: Hant).
    """
    import langcodes

    text = value.strip()
    try:
        language = langcodes.get(text) if text else None
    except (langcodes.tag_parser.LanguageTagError, ValueError):
        language = None
    if language is None or not language.is_valid() or not language.language or not language.has_name_data():
        try:
            language = langcodes.find(text)
        except LookupError:  # also every code langcodes has no name for (qaa-qtz, private use)
            raise HintError(f"--language {value!r}: not a language code or name; use {VALID_LANGUAGES_HINT}") from None
    likely = language.maximize()
    script = SCRIPT_WORDING.get(likely.script or "", f"{likely.script_name()} script")
    return Language(language.to_tag(), language.language_name(), script)


def split_terms(values: list[str] | None) -> tuple[str, ...]:
    """--hotwords "A,B" given once or several times: the terms in order, each once."""
    terms = (_one_line(term) for value in values or () for term in value.split(","))
    return tuple(dict.fromkeys(term for term in terms if term))


@dataclass(frozen=True)
class PromptHints:
    language: Language | None = None
    context: str | None = None
    hotwords: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.language is not None or bool(self.context) or bool(self.hotwords)

    def sentences(self) -> str:
        """The hint sentences, in one line, to put after the prompt ("" when there is none)."""
        parts = []
        if self.language is not None:
            name = self.language.name
            parts.append(f"The speech is in {name}: write the transcript in {name}, in {self.language.script}.")
        context = _one_line(self.context or "").rstrip(".")
        if context:
            parts.append(f"Context: {context}.")
        if self.hotwords:
            parts.append(f"Names and terms that may occur, spelled as they should be written: {', '.join(self.hotwords)}.")
        return " ".join(parts)


def hints_from_options(language: str | None, context: str | None, hotwords: list[str] | None) -> PromptHints:
    if context is not None and not _one_line(context):
        raise HintError("--context: give some text (names, jargon, what the recording is about)")
    if hotwords and not split_terms(hotwords):
        raise HintError("--hotwords: give terms separated by commas, like --hotwords 'Kubernetes,Jane Doe'")
    return PromptHints(parse_language(language) if language is not None else None, context, split_terms(hotwords))


def _one_line(text: str) -> str:
    """Whitespace (newlines, tabs) collapsed to single spaces: a hint must not break the prompt's layout."""
    return re.sub(r"\s+", " ", text).strip()
