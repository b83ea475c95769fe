"""Prompt layout: chat template around the audio span, audio placeholders and time markers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..audio.constants import TOKENS_PER_SECOND
from ..errors import MossError, QuestionError
from ..model.encoder import conv_output_length
from .base import AUDIO_SPAN, SYSTEM_PROMPT, has_audio_span

AUDIO_TOKEN_ID = 151654  # placeholder, replaced by audio embeddings ('<|AUDIO|>' in the reference)
AUDIO_START_ID = 151669  # '<|audio_bos|>'
AUDIO_END_ID = 151670  # '<|audio_eos|>'
IM_END_ID = 151645  # '<|im_end|>', the end of every turn and the checkpoint's eos
DIGIT_IDS = {str(d): 15 + d for d in range(10)}  # '0'..'9' in the Qwen vocabulary
MARKER_EVERY_SECONDS = 2
TOKENS_PER_MARKER = round(TOKENS_PER_SECOND * MARKER_EVERY_SECONDS)  # 25 audio tokens between markers


def audio_token_count(mel_frames: int) -> int:
    """Audio tokens the encoder yields for `mel_frames` frames (12.5 per second)."""
    return int(conv_output_length(mel_frames))


def audio_placeholder_ids(n_tokens: int, time_markers: bool = True) -> list[int]:
    """n_tokens placeholders; with markers, the digits of each even second after every 25 of them.

    Markers run up to floor(n_tokens / 12.5) s, so one can close the span when it ends on a marker.
    """
    if not time_markers:
        return [AUDIO_TOKEN_ID] * n_tokens
    ids: list[int] = []
    consumed = 0
    last_second = int(n_tokens / TOKENS_PER_SECOND)
    for second in range(MARKER_EVERY_SECONDS, last_second + 1, MARKER_EVERY_SECONDS):
        boundary = (second // MARKER_EVERY_SECONDS) * TOKENS_PER_MARKER
        ids += [AUDIO_TOKEN_ID] * (boundary - consumed)
        consumed = boundary
        ids += [DIGIT_IDS[d] for d in str(second)]
    return ids + [AUDIO_TOKEN_ID] * (n_tokens - consumed)


@dataclass(frozen=True)
class Prompt:
    input_ids: list[int]

    @property
    def audio_token_count(self) -> int:
        return self.input_ids.count(AUDIO_TOKEN_ID)

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, S) ids and the (1, S) boolean mask of audio positions."""
        ids = torch.tensor([self.input_ids], dtype=torch.long, device=device)
        return ids, ids == AUDIO_TOKEN_ID


class PromptBuilder:
    """Builds the default single-turn layout the processor, fine-tuning data and serving ports share."""

    def __init__(self, tokenizer, *, time_markers: bool = True, system_prompt: str = SYSTEM_PROMPT):
        self.tokenizer = tokenizer
        self.time_markers = time_markers
        self.system_prompt = system_prompt

    def audio_question(self, question: str, n_audio_tokens: int) -> Prompt:
        """system, then the user turn: <audio start> audio <audio end> newline question.

        A question holding the audio span is used as the whole prompt instead (see AUDIO_SPAN).
        """
        if has_audio_span(question):
            return self.own_layout(question, n_audio_tokens)
        return Prompt(self.audio_prefix(n_audio_tokens).input_ids + self.question_suffix(question).input_ids)

    def check_question(self, question: str) -> None:
        """QuestionError if the question's text becomes the audio placeholder id, which only the audio may
        fill: the prompt would hold more placeholders than the audio has tokens, and the official code
        refuses it too. Cheap (one tokenization), so callers check before encoding any audio."""
        for text in AUDIO_SPAN.split(question):  # an own layout's text around its audio span, tokenized apart
            self._checked_text(text)

    def audio_prefix(self, n_audio_tokens: int) -> Prompt:
        """Everything up to the end of the audio span: the part several questions share."""
        # Text before and after the audio span is tokenized separately, as the reference does,
        # so the prompt splits cleanly here.
        before = f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n<|im_start|>user\n"
        audio = [AUDIO_START_ID, *audio_placeholder_ids(n_audio_tokens, self.time_markers), AUDIO_END_ID]
        return Prompt(self._encode(before) + audio)

    def question_suffix(self, question: str) -> Prompt:
        return Prompt(self._checked_text(f"\n{question}<|im_end|>\n<|im_start|>assistant\n"))

    def own_layout(self, prompt: str, n_audio_tokens: int) -> Prompt:
        """The user's own layout: text before the span, the audio, text after, each tokenized apart."""
        spans = list(AUDIO_SPAN.finditer(prompt))
        if len(spans) != 1:
            raise MossError(
                f"the prompt holds {len(spans)} audio spans (<|audio_bos|><|AUDIO|><|audio_eos|>); "
                "one recording fills exactly one"
            )
        span = spans[0]
        audio = [AUDIO_START_ID, *audio_placeholder_ids(n_audio_tokens, self.time_markers), AUDIO_END_ID]
        before, after = self._checked_text(prompt[: span.start()]), self._checked_text(prompt[span.end() :])
        return Prompt(before + audio + after)

    def text_question(self, question: str) -> Prompt:
        """The same layout without audio, for requests over text alone."""
        text = (
            f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        )
        return Prompt(self._encode(text))

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _checked_text(self, text: str) -> list[int]:
        """A question's text tokenized, refused where it spells the audio placeholder (check_question)."""
        ids = self._encode(text)
        if AUDIO_TOKEN_ID in ids:
            token = placeholder_spelling(self.tokenizer)
            raise QuestionError(f"the question holds {token}, the audio placeholder token (id {AUDIO_TOKEN_ID}), "
                                "which only the recording's audio may fill; leave it out of the question")
        return ids


def placeholder_spelling(tokenizer) -> str:
    """How the tokenizer spells the audio placeholder ('<|vision_pad|>' in the released Qwen3 vocabulary)."""
    try:
        return repr(tokenizer.convert_ids_to_tokens(AUDIO_TOKEN_ID))
    except Exception:  # a tokenizer without the id's string: name the id alone
        return "a token"
