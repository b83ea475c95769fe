import pytest
import torch
from support.recordings import synthetic_speechlike
from support.tiny_checkpoint import TinySpec, config_json, official_shapes, write_checkpoint

from moss_cli import DecodingOptions, MossAudio
from moss_cli.audio.features import log_mel
from moss_cli.engine.prompts import Prompt
from moss_cli.model.config import MossAudioConfig
from moss_cli.model.modeling import MossAudioModel


def test_attribute_names_are_the_official_keys():
    for spec in (TinySpec(), TinySpec(taps=[0, 1, 2], inject=2)):
        with torch.device("meta"):
            model = MossAudioModel(MossAudioConfig.from_dict(config_json(spec)))
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official_shapes(spec)


def test_encoder_yields_one_token_per_eight_frames(tiny_engine):
    for seconds in (0.05, 3.99, 4.0, 9.87, 300.0):  # 300 s = 75 windows: two encoder batches of 64
        mel = log_mel(synthetic_speechlike(seconds))
        states = tiny_engine.model.encode_audio(mel)
        n = -(-mel.shape[-1] // 8)
        assert states.last_hidden.shape == (n, 16)
        assert [tap.shape for tap in states.taps] == [(n, 16), (n, 16)]


def test_full_windows_are_encoded_independently(tiny_engine):
    """Positions restart in every 4 s window and no attention crosses windows."""
    mel = log_mel(synthetic_speechlike(8.0, seed=1))
    assert mel.shape[-1] == 800
    whole = tiny_engine.model.encode_audio(mel).last_hidden
    first = tiny_engine.model.encode_audio(mel[:, :400]).last_hidden
    second = tiny_engine.model.encode_audio(mel[:, 400:]).last_hidden
    assert torch.allclose(whole, torch.cat([first, second]), atol=1e-5)
    swapped = tiny_engine.model.encode_audio(torch.cat([mel[:, 400:], mel[:, :400]], dim=1)).last_hidden
    assert torch.allclose(swapped[:50], second, atol=1e-5)


def prefill_logits(engine, seconds=5.0):
    clip = engine.encode(synthetic_speechlike(seconds))
    prompt = engine.prompts.audio_question("Describe the audio.", clip.n_tokens)
    ids, mask = prompt.tensors(engine.model.device)
    return engine.model.prefill(ids, mask, clip.states, engine.model.new_cache())


def test_deepstack_changes_the_prefill(tmp_path, tiny_engine):
    baseline = prefill_logits(tiny_engine)
    # Merger 0 is added after LLM layer 0; layer 1's attention carries it to the last position.
    merger = tiny_engine.model.deepstack_audio_merger_list[0]
    saved = merger.down_proj.weight.detach().clone()
    try:
        with torch.no_grad():
            merger.down_proj.weight.zero_()
        assert not torch.allclose(prefill_logits(tiny_engine), baseline)
    finally:
        with torch.no_grad():
            merger.down_proj.weight.copy_(saved)
    assert torch.allclose(prefill_logits(tiny_engine), baseline, atol=1e-6)


def test_two_of_three_taps_injected(tmp_path):
    folder = write_checkpoint(tmp_path / "ds", TinySpec(taps=[0, 1, 2], inject=2))
    engine = MossAudio.load(str(folder), device="cpu")
    assert len(engine.model.deepstack_audio_merger_list) == 2
    answer = engine.ask(synthetic_speechlike(2.5), "Describe the audio.", DecodingOptions(max_new_tokens=12))
    assert answer.finish_reason in {"stop", "length"}


def test_sharded_checkpoint_loads_identically(tmp_path, tiny_engine, tiny_checkpoint):
    sharded = write_checkpoint(tmp_path / "sharded", TinySpec(), shards=3)
    assert len(list(sharded.glob("model-*.safetensors"))) == 3
    engine = MossAudio.load(str(sharded), device="cpu")
    assert torch.allclose(prefill_logits(engine), prefill_logits(tiny_engine), atol=1e-6)


def test_kv_cache_decode_matches_full_recompute(tiny_engine):
    """A decode step after prefill equals running the longer prompt from scratch."""
    engine = tiny_engine
    clip = engine.encode(synthetic_speechlike(3.0))
    prompt = engine.prompts.audio_question("Transcribe the audio.", clip.n_tokens)
    cache = engine.model.new_cache()
    ids, mask = prompt.tensors(engine.model.device)
    engine.model.prefill(ids, mask, clip.states, cache)
    stepped = engine.model.decode_step(torch.tensor([[1234]]), cache)
    longer = Prompt(prompt.input_ids + [1234])
    ids2, mask2 = longer.tensors(engine.model.device)
    direct = engine.model.prefill(ids2, mask2, clip.states, engine.model.new_cache())
    assert torch.allclose(stepped, direct, atol=1e-4)


def test_encode_once_ask_many(tiny_engine):
    samples = synthetic_speechlike(4.5, seed=7)
    clip = tiny_engine.encode(samples)
    for question in ("Describe the audio.", "Transcribe the audio."):
        short = DecodingOptions(max_new_tokens=12)
        assert tiny_engine.ask(clip, question, short).token_ids == tiny_engine.ask(samples, question, short).token_ids


def test_encoder_sdpa_matches_eager(tiny_engine):
    mel = log_mel(synthetic_speechlike(9.3, seed=2))
    eager = tiny_engine.model.encode_audio(mel)
    tiny_engine.model.audio_encoder.use_attention("sdpa")
    try:
        fused = tiny_engine.model.encode_audio(mel)
    finally:
        tiny_engine.model.audio_encoder.use_attention("eager")
    assert torch.allclose(fused.last_hidden, eager.last_hidden, atol=1e-5)
    assert tiny_engine.model.audio_encoder.attention == "eager"


def test_int8_quantization_swaps_the_llm_and_head_layers(tiny_checkpoint):
    from moss_cli.errors import MossError
    from moss_cli.model.quantize import Int8Linear

    engine = MossAudio.load(str(tiny_checkpoint), device="cpu", quantize="int8")
    model = engine.model
    assert isinstance(model.lm_head, Int8Linear) and isinstance(model.language_model.layers[0].mlp.gate_up_proj, Int8Linear)
    assert isinstance(model.audio_encoder.stem_proj, torch.nn.Linear)  # the encoder stays float32
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    clip = synthetic_speechlike(3.0)
    answer = engine.ask(clip, "Describe the audio.", DecodingOptions(max_new_tokens=6))
    assert len(answer.token_ids) == 6
    engine.batch_size = 2
    batched = engine.ask_many([__import__("moss_cli").Request(c, "Describe.", DecodingOptions(max_new_tokens=4))
                               for c in (clip, synthetic_speechlike(5.0, seed=1))])
    assert all(len(a.token_ids) == 4 for a in batched)
    with pytest.raises(MossError, match="float32"):
        MossAudio.load(str(tiny_checkpoint), device="cpu", dtype="bfloat16", quantize="int8")
    with pytest.raises(MossError, match="only 'int8'"):
        MossAudio.load(str(tiny_checkpoint), device="cpu", quantize="int4")
