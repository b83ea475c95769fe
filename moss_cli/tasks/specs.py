"""What each command asks the model, how long its chunks are and how many tokens a chunk may take."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.base import has_audio_span

# The authors' evaluation and demo prompts (MOSS-AUDIO.md), verbatim.
SENTENCE_PROMPT = (
    "Transcribe the audio into sentence-level timestamps using the format [xx.xx]text[yy.yy], where xx.xx "
    "and yy.yy are timestamps with centisecond precision rounded to two decimal places. Concatenate "
    "consecutive segments without breaks. For example: [0.00]hello there[2.01][2.01]the weather is nice "
    "today[4.32]. Do not include any additional content such as explanations, headings, or annotations."
)
# There is no official word-level prompt: the same bracket format, one word per span.
WORD_PROMPT = (
    "Transcribe the audio into word-level timestamps using the format [xx.xx]word[yy.yy], where xx.xx "
    "and yy.yy are timestamps with centisecond precision rounded to two decimal places. Concatenate "
    "consecutive words without breaks. For example: [0.00]hello[0.42][0.42]there[0.80]. Do not include "
    "any additional content such as explanations, headings, or annotations."
)
SPEECH_CAPTION_PROMPT = (
    "Describe the vocal characteristics in the audio in JSON format. Include the following fields: gender, "
    "age, pitch, speed, volume, clarity, fluency, accent, texture, emotion, tone, personality, and summary. "
    "Fill each field with the corresponding description."
)
CAPTION_PROMPT = "Describe the audio."
MUSIC_PROMPT = (
    "Please describe this piece of music in terms of style and tempo, tonality and harmony, instrumentation, "
    "structural arrangement, and overall mood."
)
EVENTS_PROMPT = (
    "Analyze the audio and describe the main sound events in chronological order. Output one event per line "
    "using this format:\nstart_sec - end_sec: event description\nUse plain decimal seconds for start_sec and "
    "end_sec. Cover the full timeline from beginning to end when possible."
)
# Text-only requests that translate a timed transcript's lines (tasks/translate.py): numbered lines in,
# numbered lines out, so that every answer can be checked line by line against what was asked.
TRANSLATE_PROMPT = (
    "Translate the numbered lines below into {language}. They are consecutive lines of a {kind}, in time "
    "order. Translate each numbered line on its own, so that it still fits the same moment; keep names as "
    "they are. Answer with exactly {count} lines, numbered [1] to [{count}] as in the input, in the same "
    "order, each holding only its translation, and nothing else."
)
TRANSLATE_BEFORE = "Lines just before, for context only (do not translate them):"
TRANSLATE_LINES = "Lines to translate:"
TRANSLATE_AFTER = "Lines just after, for context only (do not translate them):"

THINKING_TOKENS = 1024  # extra budget for a Thinking model's reasoning
ONE_REQUEST_SECONDS = 600.0  # the authors recommend under 10 minutes of audio per request
LONG_WINDOW_SECONDS = 480.0  # windows for long captions and questions, cut in silence, at most 10 min


@dataclass(frozen=True)
class Task:
    name: str  # as the command is called and as the JSON says
    prompt: str
    output: str  # "sentences", "words", "events", "text" or "json" (a JSON object, as text)
    chunk_seconds: float  # target chunk length for timed tasks
    tokens_per_second: float  # expected output tokens per second of audio, for the token budget
    base_tokens: int = 96  # headroom for short chunks and Thinking preambles
    custom_prompt: bool = False  # the user's --prompt, not the official one
    combine_instruction: str = ""  # described tasks: how the answers of a long file's windows become one

    @property
    def scans_for_speech(self) -> bool:
        """Timed tasks cut their audio where voice activity detection finds speech; a task asked in one
        request per file up to 10 minutes would mostly waste the scan."""
        return self.output in ("sentences", "words", "events", "digest")  # a digest is made on a transcript

    def token_budget(self, seconds: float, cap: int | None = None, thinking: bool = False) -> int:
        """max_new_tokens for a request: scales with the audio's length unless the user set one (`cap`).

        Thinking checkpoints reason in <think>...</think> first, which needs room of its own.
        """
        if cap:
            return cap
        return int(self.base_tokens + self.tokens_per_second * seconds + (THINKING_TOKENS if thinking else 0))

    def with_prompt(self, prompt: str | None) -> Task:
        if not prompt:
            return self
        return replace(self, prompt=prompt, custom_prompt=True)

    def with_hints(self, hints: str) -> Task:
        """The prompt exactly as it was, then the hint sentences (--language, --context, --hotwords).

        Appended, never woven in, so the official format instruction reaches the model unchanged.
        """
        if not hints:
            return self
        if has_audio_span(self.prompt):  # the prompt's end is the assistant turn: no place for a hint
            raise ValueError("--language, --context and --hotwords need a --prompt without its own audio span")
        return replace(self, prompt=f"{self.prompt} {hints}")


# Budgets: ~3 words/s of speech; a sentence span costs ~12 timestamp tokens per ~3 s, a word span ~14.
TRANSCRIBE_SENTENCES = Task("transcribe", SENTENCE_PROMPT, "sentences", 60.0, 12.0)
TRANSCRIBE_WORDS = Task("transcribe", WORD_PROMPT, "words", 30.0, 48.0)
EVENTS = Task("events", EVENTS_PROMPT, "events", 60.0, 4.0)
CAPTION = Task("caption", CAPTION_PROMPT, "text", LONG_WINDOW_SECONDS, 1.0, 512,
               combine_instruction="Combine these into one description of the whole recording.")
SPEECH_CAPTION = Task("caption", SPEECH_CAPTION_PROMPT, "json", LONG_WINDOW_SECONDS, 1.0, 512,
                      combine_instruction="Combine these into one JSON object with the same fields, describing the "
                      "voice over the whole recording.")
MUSIC = Task("describe-music", MUSIC_PROMPT, "text", LONG_WINDOW_SECONDS, 1.0, 512,
             combine_instruction="Combine these into one description of the whole piece, covering the same aspects.")
ASK = Task("ask", "", "text", LONG_WINDOW_SECONDS, 0.0, 1024)
