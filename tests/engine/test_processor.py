import pytest
from support.recordings import synthetic_speechlike

from moss_cli.audio.constants import SAMPLE_RATE
from moss_cli.audio.features import log_mel
from moss_cli.engine.prompts import (
    AUDIO_END_ID,
    AUDIO_START_ID,
    AUDIO_TOKEN_ID,
    DIGIT_IDS,
    PromptBuilder,
    audio_placeholder_ids,
    audio_token_count,
)


def tokens_for(seconds: float) -> int:
    return audio_token_count(int(seconds * SAMPLE_RATE) // 160)


def split_markers(ids):
    """[(run of placeholders, marker digits), ...] for checking the layout."""
    runs, count, digits = [], 0, ""
    for token in ids:
        if token == AUDIO_TOKEN_ID:
            if digits:
                runs.append((count, digits))
                count, digits = 0, ""
            count += 1
        else:
            digits += str(token - 15)
    runs.append((count, digits))
    return runs


def test_digit_ids_match_the_tokenizer(tiny_engine):
    tokenizer = tiny_engine.prompts.tokenizer
    for digit, token_id in DIGIT_IDS.items():
        assert tokenizer.encode(digit, add_special_tokens=False) == [token_id]


def test_no_markers_under_two_seconds():
    n = tokens_for(1.9)
    assert n == 24  # 190 frames -> ceil(190 / 8)
    assert audio_placeholder_ids(n) == [AUDIO_TOKEN_ID] * 24


def test_five_seconds_has_markers_two_and_four():
    n = tokens_for(5.0)
    assert n == 63
    assert split_markers(audio_placeholder_ids(n)) == [(25, "2"), (25, "4"), (13, "")]


def test_markers_reach_three_digits_at_130_seconds():
    n = tokens_for(130.0)
    runs = split_markers(audio_placeholder_ids(n))
    # 1625 tokens = exactly 130 s: the span ends on the "130" marker.
    assert [m for _, m in runs] == [str(s) for s in range(2, 131, 2)]
    assert all(count == 25 for count, _ in runs)
    assert sum(count for count, _ in runs) == n == 1625


def test_markers_off():
    assert audio_placeholder_ids(63, time_markers=False) == [AUDIO_TOKEN_ID] * 63


@pytest.mark.parametrize("seconds", [0.03, 1.9, 4.0, 4.01, 12.345, 61.7])
def test_token_count_matches_mel_frames(seconds):
    samples = synthetic_speechlike(seconds)
    frames = log_mel(samples).shape[-1]
    assert frames == samples.size // 160
    assert audio_token_count(frames) == -(-frames // 8)


def test_prompt_layout(tiny_engine):
    builder = PromptBuilder(tiny_engine.prompts.tokenizer)
    question = 'Was sagt „der Sprecher"? 他说了什么？'
    ids = builder.audio_question(question, 63).input_ids
    start, end = ids.index(AUDIO_START_ID), ids.index(AUDIO_END_ID)
    assert ids[start + 1:end] == audio_placeholder_ids(63)
    decode = builder.tokenizer.decode
    assert decode(ids[:start]) == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert decode(ids[end + 1:]) == f"\n{question}<|im_end|>\n<|im_start|>assistant\n"
    assert ids[:3] == [151644, 8948, 198]  # <|im_start|> "system" "\n"
