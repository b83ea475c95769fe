"""Fidelity to the official code beyond the shared golden cases: the released dtype (bf16), tap
order, tied heads, the official front end's samples, user prompt layouts and very short clips."""

import numpy as np
import pytest
import torch
from support.official_audio import MP3, RECORDINGS, digest, golden, write_recording
from support.recordings import synthetic_speechlike
from support.tiny_checkpoint import TinySpec, random_weights, write_checkpoint

from moss_cli import DecodingOptions, MossAudio, load_audio
from moss_cli.audio.features import log_mel
from moss_cli.audio.resample import Resampler, resample
from moss_cli.engine.prompts import AUDIO_END_ID, AUDIO_START_ID, AUDIO_TOKEN_ID
from moss_cli.errors import AudioError, MossError, QuestionError

SHORT = DecodingOptions(max_new_tokens=12)  # enough tokens to compare, few enough to stay fast

# --- the official 16 kHz samples ---------------------------------------------------------------


@pytest.mark.parametrize("name", [*RECORDINGS, MP3.name])
def test_load_audio_gives_the_official_samples_bit_for_bit(name, tmp_path, monkeypatch):
    import moss_cli.audio.sources

    monkeypatch.setattr(moss_cli.audio.sources, "BLOCK_SECONDS", 7)  # several blocks even for short files
    path = MP3 if name == MP3.name else write_recording(tmp_path, name)
    expected = golden()["recordings"][name]
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == expected["samples"]
    assert samples[:4].tolist() == expected["head"]
    assert digest(samples) == expected["sha256"]


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000])
def test_blocks_give_the_same_samples_as_the_whole_signal(rate):
    rng = np.random.default_rng(rate)
    signal = (0.3 * rng.standard_normal(int(rate * 9.7) + 13)).astype(np.float32)
    whole = resample(signal, rate, 16_000)
    assert whole.size == int(np.ceil(16_000 * signal.size / rate))
    for block in (rate // 3, 4_097, rate * 4):
        resampler = Resampler(rate, 16_000)
        parts = [resampler.push(signal[i : i + block]) for i in range(0, signal.size, block)]
        assert np.array_equal(np.concatenate([*parts, resampler.finish()]), whole), block


def test_sixteen_khz_mono_is_read_as_stored(wav_file):
    import soundfile as sf

    stored, _ = sf.read(wav_file, dtype="float32")
    assert np.array_equal(load_audio(wav_file), stored)


def test_truncated_file_is_cut_at_its_end_with_a_warning(tmp_path):
    from moss_cli.audio.sources import open_audio

    whole = write_recording(tmp_path, "mono48k.wav")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with open_audio(cut) as source:
        samples = source.read()
        assert source.warnings == ["damaged: 1.1 s of 2.2 s readable"]
    # What was readable is the start of the whole recording (the last samples feel the new end).
    assert np.array_equal(samples[:-100], load_audio(whole)[: samples.size - 100])
    truncated_mp3 = tmp_path / "cut.mp3"
    truncated_mp3.write_bytes(MP3.read_bytes()[:40_000])
    with open_audio(truncated_mp3) as source:
        assert source.warnings and source.warnings[0].startswith("damaged: 3.")
        assert 3.0 < source.duration < 3.6


# --- model numerics --------------------------------------------------------------------------


def test_bf16_stem_rounds_as_the_contiguous_reference(tmp_path):
    """The stem GEMM must see a contiguous input, as the official code gives it: a transposed view
    rounds differently in bf16."""
    spec = TinySpec(conv_channels=32, d_model=64, encoder_heads=4, encoder_ffn=64, dtype="bfloat16")
    folder = write_checkpoint(tmp_path / "bf16", spec)
    engine = MossAudio.load(str(folder), device="cpu", dtype="bfloat16")
    encoder = engine.model.audio_encoder
    mel = log_mel(synthetic_speechlike(4.0, seed=3))[None].to(torch.bfloat16)
    with torch.inference_mode():
        x = mel.unsqueeze(1)
        for conv in (encoder.conv1, encoder.conv2, encoder.conv3):
            x = torch.nn.functional.gelu(conv(x))
        reference = encoder.stem_proj(x.permute(0, 3, 1, 2).contiguous().flatten(2))
        transposed_view = encoder.stem_proj(x.permute(0, 3, 1, 2).flatten(2))
        ours = encoder.stem(mel)
    assert not torch.equal(reference, transposed_view)  # the layouts do round apart here
    assert torch.equal(ours, reference)


def test_taps_reach_the_mergers_in_the_order_the_config_lists_them(tmp_path):
    spec = TinySpec(taps=[2, 0])
    unsorted = MossAudio.load(str(write_checkpoint(tmp_path / "unsorted", spec)), device="cpu")
    weights = random_weights(spec)
    single = {}
    for layer in (2, 0):
        kept = {k: v for k, v in weights.items() if not k.startswith("deepstack_audio_merger_list.1.")}
        folder = write_checkpoint(tmp_path / f"tap{layer}", TinySpec(taps=[layer]), weights=kept)
        single[layer] = MossAudio.load(str(folder), device="cpu")
    mel = log_mel(synthetic_speechlike(5.0, seed=4))
    taps = unsorted.model.encode_audio(mel).taps
    assert torch.equal(taps[0], single[2].model.encode_audio(mel).taps[0])  # merger 0 gets layer 2
    assert torch.equal(taps[1], single[0].model.encode_audio(mel).taps[0])


def test_tied_checkpoint_uses_the_embeddings_as_its_head(tmp_path):
    spec = TinySpec(tied=True)
    weights = random_weights(spec)  # holds an lm_head.weight of its own, which must be ignored
    engine = MossAudio.load(str(write_checkpoint(tmp_path / "tied", spec, weights=weights)), device="cpu")
    embeddings = weights["language_model.embed_tokens.weight"]
    assert torch.equal(engine.model.lm_head.weight, embeddings)
    assert engine.model.lm_head.weight.data_ptr() == engine.model.language_model.embed_tokens.weight.data_ptr()
    del weights["lm_head.weight"]  # a tied checkpoint may also leave it out
    again = MossAudio.load(str(write_checkpoint(tmp_path / "tied2", spec, weights=weights)), device="cpu")
    clip = synthetic_speechlike(2.0)
    assert again.ask(clip, "Describe.", SHORT).token_ids == engine.ask(clip, "Describe.", SHORT).token_ids


def test_untied_checkpoint_keeps_its_own_head(tiny_engine):
    head = tiny_engine.model.lm_head.weight
    assert not torch.equal(head, tiny_engine.model.language_model.embed_tokens.weight)


# --- prompts and short clips -------------------------------------------------------------------


def test_question_with_the_audio_span_is_the_whole_prompt(tiny_engine):
    tokens = tiny_engine.prompts.tokenizer
    layout = "<|im_start|>user\nListen: <|audio_bos|><|AUDIO|><|audio_eos|> and answer.<|im_end|>\n<|im_start|>assistant\n"
    prompt = tiny_engine.prompts.audio_question(layout, 30)
    before = tokens.encode("<|im_start|>user\nListen: ", add_special_tokens=False)
    after = tokens.encode(" and answer.<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    ids = prompt.input_ids
    assert ids[: len(before)] == before and ids[len(ids) - len(after) :] == after
    audio = ids[len(before) : len(ids) - len(after)]
    assert audio[0] == AUDIO_START_ID and audio[-1] == AUDIO_END_ID
    assert audio.count(AUDIO_TOKEN_ID) == 30 and audio[26:27] == tokens.encode("2")  # marker at 2 s
    assert "You are a helpful assistant" not in tiny_engine.prompts.decode(ids)


def test_own_layout_answers_and_shares_no_default_prefix(tiny_engine):
    clip = tiny_engine.encode(synthetic_speechlike(3.0))
    layout = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>What is it?<|im_end|>\n<|im_start|>assistant\n"
    alone = tiny_engine.ask(clip, layout, SHORT)
    together = tiny_engine.ask_questions(clip, [layout, "Describe the audio."], SHORT)
    assert together[0].token_ids == alone.token_ids
    assert together[1].token_ids == tiny_engine.ask(clip, "Describe the audio.", SHORT).token_ids
    with pytest.raises(MossError, match="2 audio spans"):
        tiny_engine.ask(clip, layout + layout, SHORT)


@pytest.mark.parametrize("n_samples", [160, 201, 399])
def test_clips_down_to_one_mel_frame_are_answered(tiny_engine, n_samples):
    samples = synthetic_speechlike(1.0)[:n_samples]
    assert tiny_engine.encode(samples).n_tokens == 1
    assert tiny_engine.ask(samples, "Describe.", SHORT).finish_reason in {"stop", "length"}


def test_shorter_clips_are_refused_clearly():
    with pytest.raises(AudioError, match=r"audio too short: 159 samples \(0\.0099 s\); at least 160"):
        log_mel(np.zeros(159, dtype=np.float32))


def test_cli_ask_takes_an_own_layout(tiny_checkpoint, wav_file, tiny_engine):
    from typer.testing import CliRunner

    from moss_cli.cli.app import app

    layout = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"
    result = CliRunner().invoke(app, ["ask", str(wav_file), layout, "-m", str(tiny_checkpoint),
                                      "--max-new-tokens", "8", "-q"])
    assert result.exit_code == 0, result.stderr
    expected = tiny_engine.ask(wav_file, layout, DecodingOptions(max_new_tokens=8))
    assert result.stdout == expected.text + "\n"
    assert expected.prompt_tokens < tiny_engine.ask(wav_file, "What is it?", SHORT).prompt_tokens


# --- a question that spells the audio placeholder ------------------------------------------------

PLACEHOLDER = "<|vision_pad|>"  # the released vocabulary's string for id 151654, the audio placeholder


def test_tokenizer_maps_the_placeholder_spelling_to_the_audio_id(tiny_engine):
    assert tiny_engine.prompts.tokenizer.encode(PLACEHOLDER, add_special_tokens=False) == [AUDIO_TOKEN_ID]


@pytest.mark.parametrize("question", [
    f"What does {PLACEHOLDER} mean?",
    f"<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>{PLACEHOLDER}?<|im_end|>\n<|im_start|>assistant\n",
])
def test_a_question_spelling_the_placeholder_is_refused_naming_it(tiny_engine, question):
    """The official code refuses it too (more placeholders than audio tokens); one line, about this input."""
    clip = synthetic_speechlike(2.0)
    for ask in (lambda: tiny_engine.ask(clip, question, SHORT),
                lambda: tiny_engine.ask_questions(clip, ["Describe.", question], SHORT)):
        with pytest.raises(QuestionError) as info:
            ask()
        message = str(info.value)
        assert repr(PLACEHOLDER) in message and str(AUDIO_TOKEN_ID) in message and "\n" not in message
    assert info.value.exit_code == 2 and info.value.fails_input
    assert tiny_engine.ask(clip, "Describe.", SHORT).finish_reason in {"stop", "length"}  # nothing else changed


def test_cli_ask_refuses_such_a_question_in_one_line_with_exit_2(tiny_checkpoint, wav_file):
    from typer.testing import CliRunner

    from moss_cli.cli.app import app

    result = CliRunner().invoke(app, ["ask", str(wav_file), f"Say {PLACEHOLDER}", "-m", str(tiny_checkpoint), "-q"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(PLACEHOLDER) in lines[0] and "internal error" not in lines[0]
