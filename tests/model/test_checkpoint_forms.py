"""Every checkpoint form the official code runs, run the same way (issue 27): more DeepStack mergers
than LLM layers, an encoder out_proj (output_dim != d_model), another downsample_rate, and the tap
lists it refuses. Each tiny checkpoint is written in the official layout (support/tiny_checkpoint.py);
the expected numbers come from the official formulas written out here, not from moss's code paths."""

import pytest
import torch
from support.recordings import synthetic_speechlike
from support.reference_qwen3 import transformers_qwen3
from support.tiny_checkpoint import TinySpec, random_weights, write_checkpoint
from torch.nn import functional as F
from typer.testing import CliRunner

from moss_cli import DecodingOptions, MossAudio
from moss_cli.audio.features import log_mel
from moss_cli.cli.app import app
from moss_cli.errors import CheckpointError

SHORT = DecodingOptions(max_new_tokens=8)
TAPS_FIELD = "audio_config.deepstack_encoder_layer_indexes"


def official_prefill_logits(model, ids, mask, encoded):
    """The official MossAudioModel.forward over a whole prompt, written out: adapter outputs scattered
    into the placeholder embeddings, merger k's output added after LLM layer k for the first
    min(mergers, layers) layers (the hook loop stops at the last layer), logits at the last position. The decoder is transformers'
    Qwen3Model, as the official code runs it."""
    lm = transformers_qwen3(model.language_model)
    embeds = lm.embed_tokens(ids).clone()
    audio = model.audio_adapter(encoded.last_hidden[None])
    embeds.masked_scatter_(mask.unsqueeze(-1).expand_as(embeds), audio)
    mergers = model.deepstack_audio_merger_list
    merged = [mergers[i](tap[None]) for i, tap in enumerate(encoded.taps[: len(mergers)])]

    def hook(k):
        def add(_module, _inputs, output):
            hidden = (output[0] if isinstance(output, tuple) else output).clone()
            hidden[mask] = hidden[mask] + merged[k].reshape(-1, merged[k].shape[-1])
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return add

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(lm.layers) if k < len(merged)]
    try:
        hidden = lm(inputs_embeds=embeds, use_cache=False).last_hidden_state
    finally:
        for handle in handles:
            handle.remove()
    return model.lm_head(hidden[:, -1])


def prefill_both(engine, seconds=3.0):
    """(moss's prefill logits, the official formula's) for one clip and question."""
    clip = engine.encode(synthetic_speechlike(seconds, seed=5))
    prompt = engine.prompts.audio_question("Describe the audio.", clip.n_tokens)
    ids, mask = prompt.tensors(engine.model.device)
    with torch.inference_mode():
        ours = engine.model.prefill(ids, mask, clip.states, engine.model.new_cache())
        theirs = official_prefill_logits(engine.model, ids, mask, clip.states)
    return ours, theirs


# --- 1. more DeepStack mergers than LLM layers ---------------------------------------------------


def test_more_mergers_than_llm_layers_inject_into_every_layer_and_leave_the_rest(tmp_path):
    spec = TinySpec(taps=[0, 1, 2], llm_layers=2)  # three mergers, two LLM layers
    weights = random_weights(spec)
    engine = MossAudio.load(str(write_checkpoint(tmp_path / "deep", spec, weights=weights)), device="cpu")
    assert len(engine.model.deepstack_audio_merger_list) == 3
    ours, theirs = prefill_both(engine)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    # The third merger is unused: the same checkpoint without it answers the same, token for token.
    kept = {k: v for k, v in weights.items() if not k.startswith("deepstack_audio_merger_list.2.")}
    two = MossAudio.load(str(write_checkpoint(tmp_path / "two", TinySpec(taps=[0, 1]), weights=kept)), device="cpu")
    clip = synthetic_speechlike(2.5, seed=6)
    assert engine.ask(clip, "Describe the audio.", SHORT).token_ids == two.ask(clip, "Describe the audio.", SHORT).token_ids


# --- 2. an encoder out_proj: output_dim != d_model -----------------------------------------------


def with_out_proj(tmp_path, dtype="float32"):
    """A checkpoint whose encoder projects 16 -> 24, and one with the same encoder and no projection."""
    spec = TinySpec(output_dim=24, dtype=dtype)
    weights = random_weights(spec)
    projected = MossAudio.load(str(write_checkpoint(tmp_path / "proj", spec, weights=weights)), device="cpu",
                               dtype=dtype)
    plain_spec = TinySpec(dtype=dtype)
    plain_weights = random_weights(plain_spec, seed=1)
    encoder = {k: v for k, v in weights.items() if k.startswith("audio_encoder.")}
    plain_weights |= {k: v for k, v in encoder.items() if k != "audio_encoder.out_proj.weight"}
    plain = MossAudio.load(str(write_checkpoint(tmp_path / "plain", plain_spec, weights=plain_weights)),
                           device="cpu", dtype=dtype)
    return projected, plain, weights["audio_encoder.out_proj.weight"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_out_proj_projects_the_output_and_each_tap_after_the_final_norm(tmp_path, dtype):
    projected, plain, out_proj = with_out_proj(tmp_path, dtype)
    assert projected.model.audio_encoder.out_proj.bias is None
    mel = log_mel(synthetic_speechlike(3.5, seed=2))  # one window: one encoder batch of one
    ours = projected.model.encode_audio(mel)
    before = plain.model.encode_audio(mel)  # the official encoder without its out_proj (golden-checked)
    weight = out_proj.to(getattr(torch, dtype))
    # The official formula: out_proj(layer_norm(x)) for the output, out_proj(tap) for each tap, over
    # the encoder batch (B, L, d).
    assert torch.equal(ours.last_hidden, F.linear(before.last_hidden[None], weight)[0])
    assert len(ours.taps) == 2
    for tap, plain_tap in zip(ours.taps, before.taps):
        assert tap.shape == (before.last_hidden.shape[0], 24)
        assert torch.equal(tap, F.linear(plain_tap[None], weight)[0])


def test_out_proj_over_several_windows_and_through_the_model(tmp_path):
    projected, plain, out_proj = with_out_proj(tmp_path)
    mel = log_mel(synthetic_speechlike(9.0, seed=3))  # three windows in one batch
    ours, before = projected.model.encode_audio(mel), plain.model.encode_audio(mel)
    assert torch.allclose(ours.last_hidden, before.last_hidden @ out_proj.T, atol=1e-5, rtol=0)
    assert all(torch.allclose(t, p @ out_proj.T, atol=1e-5, rtol=0) for t, p in zip(ours.taps, before.taps))
    logits, official = prefill_both(projected)
    assert torch.allclose(logits, official, atol=1e-5, rtol=0)
    assert len(projected.ask(synthetic_speechlike(2.0), "Describe the audio.", SHORT).token_ids) == 8


# --- 3. downsample_rate other than 8 -----------------------------------------------------------


def test_downsample_rate_is_ignored_as_the_official_code_ignores_it(tmp_path):
    weights = random_weights(TinySpec())  # stem_proj takes conv_channels * 16 inputs, whatever the rate
    usual = MossAudio.load(str(write_checkpoint(tmp_path / "r8", TinySpec(), weights=weights)), device="cpu")
    for rate in (4, 16):
        other = MossAudio.load(str(write_checkpoint(tmp_path / f"r{rate}", TinySpec(downsample_rate=rate),
                                                    weights=weights)), device="cpu")
        assert other.model.audio_encoder.stem_proj.in_features == 4 * 16
        clip = synthetic_speechlike(5.0, seed=rate)
        mel = log_mel(clip)
        assert torch.equal(other.model.encode_audio(mel).last_hidden, usual.model.encode_audio(mel).last_hidden)
        assert other.ask(clip, "Describe.", SHORT).token_ids == usual.ask(clip, "Describe.", SHORT).token_ids


# --- 4. tap lists the official code refuses ----------------------------------------------------


@pytest.mark.parametrize("taps, named", [([1, 1], "repeats layer 1"), ([0, 3], "names layer 3"),
                                         ([-1, 0], "names layer -1")])
def test_taps_that_repeat_or_leave_the_encoder_are_refused_naming_the_field(tmp_path, taps, named):
    folder = write_checkpoint(tmp_path / "taps", TinySpec(taps=taps))  # three encoder layers: 0, 1, 2
    with pytest.raises(CheckpointError) as info:
        MossAudio.load(str(folder), device="cpu")
    message = str(info.value)
    assert TAPS_FIELD in message and named in message and "\n" not in message


def test_cli_refuses_such_a_checkpoint_in_one_line_with_exit_2(tmp_path, wav_file):
    folder = write_checkpoint(tmp_path / "taps", TinySpec(taps=[0, 0]))
    result = CliRunner().invoke(app, ["ask", str(wav_file), "Describe.", "--model", str(folder), "-q"])
    assert result.exit_code == 2
    assert TAPS_FIELD in result.stderr and "internal error" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"moss: error: config.json: {TAPS_FIELD} [0, 0] repeats layer 0; each tap must be a distinct layer"]
