"""Loops caught in streamed text and cut out of kept answers; server-sent events read as they come."""

import json
import random

import pytest

from moss_cli.engine.base import RepetitionGuard
from moss_cli.engine.loops import TextLoopGuard, text_units, trim_loop
from moss_cli.engine.remote.replies import CompletionStream, encoder_cache_limit, sse_data


def pieces(text: str, seed: int = 0):
    """The text cut at random places, as a server's stream may cut it (mid-word, mid-number)."""
    rng, position = random.Random(seed), 0
    while position < len(text):
        step = rng.randint(1, 7)
        yield text[position : position + step]
        position += step


def units_until_loop(text: str, seed: int = 0) -> int | None:
    guard = TextLoopGuard()
    for piece in pieces(text, seed):
        if guard.feed(piece):
            return len(guard.units)
    return None


@pytest.mark.parametrize("loop", [
    "la ", "Thank you. ", "[12.00]And so it goes on and on.[14.50]", "我们走吧。", "0.00 - 1.00: a dog barks\n",
])
def test_the_guard_stops_a_loop_within_a_few_copies(loop):
    text = "The talk begins. " + loop * 200
    stopped = units_until_loop(text)
    copy = len(text_units(loop))
    assert stopped is not None and stopped <= 4 + max(16, 4 * copy) + copy  # the prefix, 4 copies, one to see it


def test_a_loop_with_rising_timestamps_is_still_a_loop():
    text = "".join(f"[{2 * i:.2f}]and then we went home[{2 * i + 2:.2f}]" for i in range(100))
    assert units_until_loop(text) <= 8 * 11 + 11


@pytest.mark.parametrize("seed", range(3))
def test_the_guard_lets_real_text_through(seed):
    sentences = ["[0.00]Good morning, everyone.[2.10]", "[2.10]Today we talk about rivers.[4.80]",
                 "[4.80]They carry water to the sea.[7.00]", "[7.00]Yes.[7.40]", "[7.40]Yes.[7.90]",
                 "[8.00]And the sea gives it back as rain.[11.20]", "[11.20]no no no no no[12.00]"]
    events = "".join(f"{t:.2f} - {t + 0.5:.2f}: a dog barks\n" for t in range(0, 14, 2))  # seven barks: real
    assert units_until_loop("".join(sentences) * 2 + events, seed) is None


def test_cut_pieces_make_the_same_units_as_the_whole_text():
    text = "[12.25]Numbers like 3.14159 and 1,000,000 split anywhere[15.00] 東京へ行く。"
    guard = TextLoopGuard(RepetitionGuard(max_ngram=1, min_repeats=1000, min_span=1000))
    for piece in pieces(text, 3):
        guard.feed(piece)
    guard.feed(" end of it all")
    assert guard.units == text_units(text + " end of")


@pytest.mark.parametrize("text,kept", [
    ("ok " + "la la " * 20, "ok la"),
    ("Intro. " + "thank you very much. " * 6, "Intro. thank you very much."),
    ("[0.00]hi[1.00]" + "".join(f"[{i}.00]so[{i + 1}.00]" for i in range(1, 12)), "[0.00]hi[1.00][1.00]so[2.00]"),
    ("A fine answer that ends well.", "A fine answer that ends well."),
    ("Yes. Yes. And more.", "Yes. Yes. And more."),  # two copies are no loop
    ("[0.00]phrase 1.[1.00][2.00]phrase 2.[3.00]", "[0.00]phrase 1.[1.00][2.00]phrase 2.[3.00]"),
])
def test_trim_keeps_one_copy(text, kept):
    assert trim_loop(text) == kept


def events(*payloads) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n" for p in payloads)


def delta(text, finish=None):
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def test_sse_events_split_anywhere_are_read_whole():
    stream = events(delta("Hel"), delta("lo"), b"[DONE]").replace(b"\n\n", b"\r\n\r\n", 1) + b": comment\n\n"
    for size in (1, 3, 1000):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert [json.loads(d) if d != "[DONE]" else d for d in sse_data(chunks)] == [delta("Hel"), delta("lo"), "[DONE]"]
    assert list(sse_data([b"data: a\ndata: b\n\n", b"data: tail"])) == ["a\nb", "tail"]


def test_a_stream_becomes_an_answer_and_stops_on_a_loop():
    stream = CompletionStream(RepetitionGuard())
    for data in sse_data([events(delta("<think>hm</think>"), delta("A dog"), delta(" barks.", "stop"),
                                 {"choices": [], "usage": {"prompt_tokens": 93}}, b"[DONE]")]):
        if stream.feed(data):
            break
    answer = stream.answer()
    assert (answer.text, answer.reasoning, answer.finish_reason, answer.prompt_tokens) == ("A dog barks.", "hm", "stop", 93)
    looping = CompletionStream(RepetitionGuard())
    fed = 0
    for data in sse_data([events(*[delta(" la")] * 100)]):
        fed += 1
        if looping.feed(data):
            break
    assert fed < 25 and looping.complete and looping.answer().finish_reason == "repetition"


@pytest.mark.parametrize("payload,message", [
    (b"not json", "not JSON"),
    ({"choices": [{"delta": "text"}]}, "delta is not an object"),
])
def test_malformed_streams_say_why(payload, message):
    stream = CompletionStream()
    with pytest.raises(ValueError, match=message):
        for data in sse_data([events(payload)]):
            stream.feed(data)


@pytest.mark.parametrize("payload,message", [
    ({"error": {"message": "CUDA out of memory", "code": 400}}, "CUDA out of memory"),
    ({"object": "error", "message": "engine\ndead"}, "engine dead"),
    ({"error": {"code": 500}}, "unknown"),
])
def test_an_error_inside_the_stream_ends_it_and_is_kept_for_the_engine(payload, message):
    stream = CompletionStream()
    fed = []
    for data in sse_data([events(delta("so"), payload, delta("far"))]):
        fed.append(stream.feed(data))
        if fed[-1]:
            break
    assert fed == [False, True] and stream.complete and stream.error == message
    with pytest.raises(ValueError, match=f"mid-answer: {message}"):
        stream.answer()


def test_vllm_encoder_cache_message_is_read():
    message = ("The decoder prompt contains a(n) audio item with 7500 embedding tokens, which exceeds the "
               "pre-allocated encoder cache size 2048. Please reduce the input size or increase the encoder "
               "cache size by setting --limit-mm-per-prompt at startup.")
    assert encoder_cache_limit(message) == (7500, 2048)
    assert encoder_cache_limit("prompt is too long") is None
    assert encoder_cache_limit("it exceeds the pre-allocated encoder cache size 1024.") == (None, 1024)


# ---- one loop rule, local or remote: periodic sounds are events, rising times past the audio a loop ----
TICKS = "".join(f"{i * 0.25:.2f} - {(i + 1) * 0.25:.2f}: tick\n" for i in range(388))  # 97 s of a clock


def units_until_loop_in(text: str, seconds: float | None, seed: int = 0) -> int | None:
    guard = TextLoopGuard(seconds=seconds)
    for piece in pieces(text, seed):
        if guard.feed(piece):
            return len(guard.units)
    return None


def test_a_periodic_sound_inside_the_audio_is_no_loop_streamed_or_finished():
    from moss_cli.engine.base import Answer
    from moss_cli.tasks.answers import cut_short, ends_in_loop, without_loop

    assert units_until_loop_in(TICKS, 97.0) is None
    assert not ends_in_loop(TICKS, 97.0) and trim_loop(TICKS, 97.0) == TICKS
    answer = Answer(TICKS, "", TICKS, [], "stop", 0)
    assert cut_short(answer, 97.0) is None and without_loop(answer, 97.0) is answer
    stream = CompletionStream(RepetitionGuard(), 97.0)
    assert not any(stream.feed(json.dumps(delta(piece))) for piece in pieces(TICKS))


def test_rising_times_past_the_end_of_the_audio_are_a_loop_streamed_or_finished():
    from moss_cli.tasks.answers import ends_in_loop

    text = "[0.00]hi[2.01]" + "".join(f"[{2.01 * i:.2f}]so[{2.01 * (i + 1):.2f}]" for i in range(1, 40))
    stopped = units_until_loop_in(text, 30.0)
    assert stopped is not None and stopped < len(text_units(text))  # stopped soon after passing 31 s
    assert ends_in_loop(text, 30.0) and not ends_in_loop(text, 90.0)  # inside 90 s: a word said every 2 s
    assert trim_loop(text, 30.0) == "[0.00]hi[2.01][2.01]so[4.02]"
    assert trim_loop(text, 90.0) == text


@pytest.mark.parametrize("seconds", [None, 30.0, 1e9])
def test_plain_repetition_is_a_loop_whatever_the_audio(seconds):
    from moss_cli.tasks.answers import ends_in_loop

    text = "The talk begins. " + "thank you very much. " * 50
    assert units_until_loop_in(text, seconds) is not None and ends_in_loop(text, seconds)
    assert trim_loop(text, seconds) == "The talk begins. thank you very much."
