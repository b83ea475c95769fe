"""--quantize int8: the int8 layer against float32 and against PyTorch's own dynamic quantization, the model swap."""

import math
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from support.tiny_checkpoint import TinySpec, official_shapes, write_checkpoint
from torch import nn

from moss_cli import MossAudio
from moss_cli.model.quantize import Int8Linear, int8_rows, quantize_int8

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines,
                                reason="int8 kernels need an x86 CPU (FBGEMM)")


def _linear(inputs: int, outputs: int, seed: int = 0, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(inputs, outputs, bias=bias)


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


@pytest.mark.parametrize("rows", [1, 5, 63, 64, 300])
def test_int8_layer_is_close_to_float32_for_few_and_many_rows(rows):
    linear = _linear(256, 384)
    layer = Int8Linear(linear)
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
    with torch.no_grad():
        assert _relative_error(layer(x), linear(x)) < 0.03
        assert layer(x[None]).shape == (1, rows, 384)  # batch dimensions pass through


def test_each_output_channel_keeps_its_own_scale():
    # One row 1000x larger than the rest: with one scale for the whole matrix the small rows would
    # round to a few levels; per channel they keep int8's full precision.
    linear = _linear(128, 64, bias=False)
    with torch.no_grad():
        linear.weight[0] *= 1000
        linear.weight[1] = 0  # an all-zero row quantizes to zeros, not NaN
        x = torch.randn(5, 128, generator=torch.Generator().manual_seed(1))
        got, want = Int8Linear(linear)(x), linear(x)
    assert torch.isfinite(got).all() and torch.equal(got[:, 1], torch.zeros(5))
    assert _relative_error(got[:, 2:], want[:, 2:]) < 0.03


def test_stacked_weights_round_as_their_concatenation_does():
    # A joined layer's parts are rounded where they lie (joining.StackedRows), never copied into one
    # float tensor first: each row's scale and integers must be those of the concatenated weight,
    # parts that end inside a block of rows and a bfloat16 part included.
    generator = torch.Generator().manual_seed(3)
    parts = [torch.randn(rows, 48, generator=generator) * scale for rows, scale in [(70, 1.0), (33, 0.01), (5, 50.0)]]
    parts[2] = parts[2].bfloat16()
    want = int8_rows(torch.cat([part.float() for part in parts]), block=32)
    for block in (16, 32, 1024):
        got = int8_rows(*parts, block=block)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("rows", [1, 5, 900])
def test_every_row_count_is_pytorchs_dynamically_quantized_product_to_the_bit(rows):
    # A decoding step's rows and a prompt's go through the one kernel: what torch.ao's dynamic int8
    # linear computes from the same per-channel weights, whatever the rows.
    linear = _linear(512, 768, seed=2)
    layer = Int8Linear(linear)
    x = 3 * torch.randn(rows, 512, generator=torch.Generator().manual_seed(3)) + 0.5
    reference = torch.ao.nn.quantized.dynamic.Linear(512, 768, dtype=torch.qint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight = torch._make_per_channel_quantized_tensor(
            int8_rows(linear.weight.detach())[1], layer.scales.double(), torch.zeros(768, dtype=torch.long), 0)
    reference.set_weight_bias(weight, layer.bias)
    with torch.no_grad():
        assert torch.equal(layer(x), reference(x))


def test_int8_swaps_the_llm_adapters_and_head_and_the_encoder_stays_float32(tiny_checkpoint):
    engine = MossAudio.load(str(tiny_checkpoint), device="cpu")
    model = engine.model
    float_linears = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    quantize_int8(model)
    swapped = {name for name, m in model.named_modules() if isinstance(m, Int8Linear)}
    kept = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    # A layer's query/key/value and gate/up projections became one int8 layer each (model/joining.py).
    joined = {".q_proj": ".qkv_proj", ".k_proj": ".qkv_proj", ".v_proj": ".qkv_proj", ".gate_proj": ".gate_up_proj",
              ".up_proj": ".gate_up_proj"}

    def as_quantized(name: str) -> str:
        suffix = "." + name.rpartition(".")[2]
        return name.removesuffix(suffix) + joined[suffix] if name.startswith("language_model.") and suffix in joined else name

    assert swapped | kept == {as_quantized(name) for name in float_linears} and swapped and kept
    assert all(name.startswith("audio_encoder.") for name in kept)
    assert all(not name.startswith("audio_encoder.") for name in swapped)
    assert model.greedy_screen is None


@pytest.mark.parametrize("spec", [TinySpec(), TinySpec(tied=True), TinySpec(dtype="bfloat16")], ids=["plain", "tied", "bf16"])
def test_loading_quantized_layer_by_layer_equals_quantizing_the_loaded_model(tmp_path, spec):
    folder = write_checkpoint(tmp_path / "ckpt", spec, shards=2)
    streamed = MossAudio.load(str(folder), device="cpu", quantize="int8").model
    whole = quantize_int8(MossAudio.load(str(folder), device="cpu").model)
    layers = {name: m for name, m in streamed.named_modules() if isinstance(m, Int8Linear)}
    assert layers.keys() == {name for name, m in whole.named_modules() if isinstance(m, Int8Linear)}
    for name, layer in layers.items():
        twin = whole.get_submodule(name)
        assert torch.equal(layer.scales, twin.scales), name
        assert (layer.bias is None) == (twin.bias is None) and (layer.bias is None or torch.equal(layer.bias, twin.bias))
    # Decoding steps too: the float32 model's joined projections (model/joining.py) must not stand in
    # for the int8 layers that replaced them.
    assert_same_prompt_and_steps(streamed, whole, rows=1, steps=[[[7]]] * 3)
    assert streamed.language_model.embed_tokens.weight.dtype == torch.float32
    if spec.tied:
        assert torch.equal(streamed.language_model.embed_tokens.weight, whole.language_model.embed_tokens.weight)



def test_an_int8_load_returns_while_the_output_layer_builds_and_its_first_product_waits(tiny_checkpoint, monkeypatch):
    from moss_cli.model import quantize
    from moss_cli.model.loading import load_model

    vocabulary, packing_may_go = 151936, threading.Event()
    pack = Int8Linear._packed

    def held_for_the_head(layer, integers, rows):
        if layer.out_features == vocabulary:
            assert packing_may_go.wait(60)
        return pack(layer, integers, rows)

    monkeypatch.setattr(quantize.Int8Linear, "_packed", held_for_the_head)
    model = load_model(tiny_checkpoint, torch.device("cpu"), torch.float32, quantize="int8")  # the head's packing held
    assert model.lm_head.out_features == vocabulary
    x = torch.randn(1, model.config.language.hidden_size, generator=torch.Generator().manual_seed(0))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(model.logits, x)
        time.sleep(0.3)
        assert not first.done()  # waiting for the head
        packing_may_go.set()
        logits = first.result(timeout=60)
    monkeypatch.undo()
    whole = quantize_int8(load_model(tiny_checkpoint, torch.device("cpu"), torch.float32))
    assert torch.equal(logits, whole.logits(x))


def test_an_output_layer_that_fails_to_build_in_the_background_fails_each_product(monkeypatch):
    from moss_cli.errors import MossError

    def no_kernels(*args, **kwargs):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(torch.ops.quantized, "linear_prepack", no_kernels)
    layer = Int8Linear(_linear(64, 40000, bias=False), in_background=True)
    for _ in range(2):
        with pytest.raises(MossError, match="--quantize int8 is not available here: Didn't find engine"):
            layer(torch.randn(1, 64))

MEMORY_PROBE = """
import sys, torch
from pathlib import Path
from moss_cli.model.allocator import keep_freed_memory
from moss_cli.model.loading import load_model
from moss_cli.model.quantize import quantize_int8
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
keep_freed_memory()
import transformers.models.qwen3.modeling_qwen3
before = resident()
if sys.argv[2] == "while-loading":
    model = load_model(Path(sys.argv[1]), torch.device("cpu"), torch.float32, quantize="int8")
else:
    model = quantize_int8(load_model(Path(sys.argv[1]), torch.device("cpu"), torch.float32))
model.logits(torch.zeros(1, model.config.language.hidden_size))  # the output layer, built in the background, waited for
print(resident() - before)
"""


def test_an_int8_load_holds_no_float32_copy_of_the_layers_it_quantized(tmp_path):
    # Layers large enough that what a load leaves behind shows: loading float32 and then quantizing
    # keeps the file's pages of every quantized layer resident (the file stays mapped for the
    # embeddings); quantizing while loading must not.
    spec = TinySpec(hidden=256, intermediate=4096, llm_layers=8, heads=4, kv_heads=2, head_dim=64, adapter_hidden=1024)
    folder = write_checkpoint(tmp_path / "ckpt", spec)
    grown = {}
    for how in ("while-loading", "after-loading"):
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(folder), how], capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        grown[how] = int(out.stdout)
    quantized_float32 = 4 * sum(math.prod(shape) for name, shape in official_shapes(spec).items()
                                if name == "lm_head.weight" or (name.endswith("proj.weight") and "encoder" not in name))
    assert grown["while-loading"] + quantized_float32 / 2 < grown["after-loading"], (grown, quantized_float32)


def test_layers_are_quantized_in_threads_with_few_in_flight(monkeypatch):
    from moss_cli.model import quantize

    model = nn.Sequential(*(nn.Linear(64, 64) for _ in range(12)), nn.ReLU())
    names = [str(index) for index in range(12)]
    monkeypatch.setattr(quantize, "QUANTIZED_PARTS", tuple(names))
    in_flight = []
    with quantize.LayerQuantizer(model, threads=2) as quantizer:
        assert not quantizer.offer("12")  # not a linear layer
        for name in names:
            assert quantizer.offer(name)
            in_flight.append(len(quantizer._pending))
    assert max(in_flight) <= 4 and in_flight[:4] == [1, 2, 3, 4]
    assert all(isinstance(layer, Int8Linear) for layer in model[:12])


def test_a_layer_that_cannot_be_quantized_fails_the_load_with_a_clear_error(tiny_checkpoint, monkeypatch):
    from moss_cli.errors import MossError

    def no_kernels(*args, **kwargs):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine\nmore")

    monkeypatch.setattr(torch.ops.quantized, "linear_prepack", no_kernels)
    with pytest.raises(MossError, match=r"--quantize int8 is not available here: Didn't find engine .*NoQEngine$"):
        MossAudio.load(str(tiny_checkpoint), device="cpu", quantize="int8")


def assert_same_prompt_and_steps(first, second, rows: int, steps: list) -> None:
    """Both models' hidden states are bit-equal over a random prompt of 90 positions (`rows` of them),
    then over decoding steps feeding `steps` tokens."""
    ids = torch.randint(0, 1000, (rows, 90), generator=torch.Generator().manual_seed(rows))
    no_audio = torch.zeros_like(ids, dtype=torch.bool)
    caches = [first.new_cache(), second.new_cache()]
    with torch.inference_mode():
        assert torch.equal(first.prefill_hidden(ids, no_audio, None, caches[0]),
                           second.prefill_hidden(ids, no_audio, None, caches[1]))
        decoding = [model.decoding_cache(cache, 4) for model, cache in zip((first, second), caches)]
        for tokens in steps:
            token = torch.tensor(tokens)
            assert torch.equal(first.step_hidden(token, decoding[0]), second.step_hidden(token, decoding[1]))


def test_joined_int8_projections_give_the_separate_int8_layers_numbers(tmp_path):
    """A layer's query/key/value (and gate/up) quantized as one int8 layer: each row keeps its own scale
    and the activations' grid comes from the input alone, so prompt and steps are the separate layers'."""
    from moss_cli.model.joining import unjoin_projections
    from moss_cli.model.quantize import LayerQuantizer

    folder = write_checkpoint(tmp_path / "ckpt", TinySpec())
    joined = MossAudio.load(str(folder), device="cpu", quantize="int8").model
    separate = MossAudio.load(str(folder), device="cpu").model
    unjoin_projections(separate.language_model)
    with LayerQuantizer(separate) as quantizer:  # every linear layer on its own
        for name, module in list(separate.named_modules()):
            if isinstance(module, nn.Linear):
                quantizer.offer(name)
    attn = joined.language_model.layers[0].self_attn
    assert isinstance(attn.qkv_proj, Int8Linear) and "q_proj" not in attn._modules and attn.joined.module is attn.qkv_proj
    assert isinstance(separate.language_model.layers[0].self_attn.q_proj, Int8Linear)
    # A prompt of 90 positions goes through oneDNN's layout, steps of 2 rows and of 1 through FBGEMM's.
    assert_same_prompt_and_steps(joined, separate, rows=2, steps=[[[7], [9]], [[3], [5]]])
    assert_same_prompt_and_steps(joined, separate, rows=1, steps=[[[4]]])
