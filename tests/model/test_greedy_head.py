"""The int8 greedy screen (model/greedy_head.py): the float32 argmax, from a quarter of the reading."""

from __future__ import annotations

import pytest
import torch

from moss_cli.model import greedy_head
from moss_cli.model.greedy_head import ScreenedHead


def layer(rows: int, hidden: int, seed: int, column_major: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, hidden, generator=generator) * 0.02
    weight[:50] *= 3  # rows of different sizes: per-row scales differ
    return weight.t().contiguous().t() if column_major else weight


def activations(kind: str, batch: int, hidden: int, weight: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, hidden, generator=generator)
    if kind == "outliers":  # a few huge dimensions, as trained models have
        x[:, [3, hidden // 2]] *= 60
    elif kind == "peaked":  # one clear winner per row
        x += 4 * weight[torch.randint(0, weight.shape[0], (batch,), generator=generator)] / 0.02
    elif kind == "large":
        x *= 1e4
    elif kind == "zero_row":
        x[0] = 0
    return x


KINDS = ["gauss", "outliers", "peaked", "large", "zero_row"]


@pytest.mark.parametrize("column_major", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_the_screen_picks_the_float32_argmax(kind, column_major, product):
    weight = layer(20_000, 96, seed=1, column_major=column_major)
    head = ScreenedHead(weight)
    for seed in range(8):
        x = activations(kind, 5, 96, weight, seed)
        expected = (x @ weight.t()).argmax(dim=-1).tolist()
        if kind == "zero_row":
            expected[0] = 0  # all logits 0: the first id, as argmax picks
        assert head.argmax(x) == expected


@pytest.fixture(params=["fbgemm", "int_mm"])
def product(request, monkeypatch):
    """Both integer products: FBGEMM's (where it passes its check, as on this project's machine) and torch._int_mm."""
    if request.param == "int_mm":
        monkeypatch.setattr(greedy_head, "_fbgemm_product", lambda *args: None)
    elif "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no FBGEMM (not an x86 build)")
    return request.param


@pytest.mark.parametrize("kind", KINDS)
def test_every_approximate_logit_lies_within_its_bound(kind, product):
    weight = layer(20_000, 96, seed=2)
    head = ScreenedHead(weight)
    assert type(head.product).__name__ == {"fbgemm": "_FbgemmProduct", "int_mm": "_IntMmProduct"}[product]
    for seed in range(4):
        x = activations(kind, 5, 96, weight, seed)
        approx, terms = head._approximate(x)
        bound = head.bound(terms)
        exact = (x.double() @ weight.double().t()).float()
        assert ((approx - exact).abs() <= bound).all()
        lower = (approx - bound).amax(dim=1, keepdim=True)
        candidates = (approx + bound >= lower).sum(dim=1)[1 if kind == "zero_row" else 0 :]  # a zero row ties all
        assert (candidates < weight.shape[0] // 100).all()  # and useful: few tokens left to rescore


def test_outlier_dimensions_are_multiplied_exactly_and_keep_the_screen_tight(monkeypatch):
    weight = layer(20_000, 96, seed=3)
    head = ScreenedHead(weight)
    x = activations("outliers", 3, 96, weight, seed=0)
    _, (_, with_split, _) = head._approximate(x)
    assert sorted(head._stacked[0]) == [3, 48]
    monkeypatch.setattr(greedy_head, "OUTLIER_RATIO", float("inf"))  # no split: the huge dimensions set the step
    _, (_, without_split, _) = head._approximate(x)
    assert (with_split * 10 < without_split).all()  # the activations' rounding bound, 10x tighter


def test_ties_go_to_the_lowest_id_as_argmax_does():
    weight = layer(5_000, 256, seed=4)
    weight[4000] = weight[77] = weight[2500]  # three tokens with identical logits
    head = ScreenedHead(weight)
    x = weight[2500].expand(2, -1) / 0.02  # makes them the best
    assert (x @ weight.t()).argmax(dim=-1).tolist() == [77, 77]
    assert head.argmax(x) == [77, 77]


def test_flat_rows_get_one_full_product_and_the_others_stay_screened(monkeypatch):
    weight = layer(10_000, 16, seed=5)
    head = ScreenedHead(weight)
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    x[1] = 0  # all logits 0: every token a candidate
    x[2] = 0
    full_products = []
    original = head.full_product
    monkeypatch.setattr(head, "full_product", lambda rows: full_products.append(rows.shape[0]) or original(rows))
    assert head.argmax(x) == (x @ weight.t()).argmax(dim=-1).tolist()
    assert full_products == [2]  # both flat rows in one product; the other row rescored


def test_the_model_decodes_the_same_tokens_with_and_without_the_screen(tiny_engine):
    from support.recordings import synthetic_speechlike

    from moss_cli.engine.base import DecodingOptions
    from moss_cli.engine.local.engine import Request

    model = tiny_engine.model
    assert model.greedy_screen is not None  # float32 on CPU: built at load
    used = []
    original = model.greedy_screen.argmax
    model.greedy_screen.argmax = lambda x: used.append(1) or original(x)
    requests = [Request(synthetic_speechlike(3.0, seed=s), "Describe the audio.", DecodingOptions(max_new_tokens=12))
                for s in range(3)]
    tiny_engine.batch_size = 3
    try:
        screened = [a.token_ids for a in tiny_engine.ask_many(requests)]
        assert used
        screen, model.greedy_screen = model.greedy_screen, None
        full = [a.token_ids for a in tiny_engine.ask_many(requests)]
    finally:
        tiny_engine.batch_size = 1
        model.greedy_screen = screen
    assert screened == full and all(screened)


def test_a_screen_that_cannot_be_built_leaves_the_full_product(tiny_checkpoint, monkeypatch):
    from support.recordings import synthetic_speechlike

    from moss_cli import MossAudio
    from moss_cli.engine.base import DecodingOptions
    from moss_cli.model import modeling

    audio = synthetic_speechlike(2.0, seed=1)
    options = DecodingOptions(max_new_tokens=8)
    expected = MossAudio.load(str(tiny_checkpoint), device="cpu").ask(audio, "Describe the audio.", options).token_ids

    def no_memory(weight, full_product):
        raise MemoryError("no room for the int8 copy")

    monkeypatch.setattr(modeling, "ScreenedHead", no_memory)
    engine = MossAudio.load(str(tiny_checkpoint), device="cpu")  # built in a thread: fails there
    assert engine.ask(audio, "Describe the audio.", options).token_ids == expected
    assert engine.model.greedy_screen is None


def test_fbgemm_is_used_only_where_it_gives_the_exact_integer_products(monkeypatch):
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no FBGEMM (not an x86 build)")
    weight = layer(5_000, 64, seed=6)
    assert isinstance(ScreenedHead(weight).product, greedy_head._FbgemmProduct)  # as on this project's machine
    exact = greedy_head._FbgemmProduct.__call__

    def a_little_off(self, x):  # a kernel that rounds its inputs its own way
        approx, error = exact(self, x)
        return approx * (1 + 1e-4), error

    monkeypatch.setattr(greedy_head._FbgemmProduct, "__call__", a_little_off)
    assert isinstance(ScreenedHead(weight).product, greedy_head._IntMmProduct)


def test_a_row_without_candidates_gets_the_full_products_pick():
    weight = layer(5_000, 32, seed=7)
    head = ScreenedHead(weight)
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    x[1, 5] = float("nan")  # every logit NaN: no approximate logit reaches any threshold
    assert head.argmax(x) == (x @ weight.t()).argmax(dim=-1).tolist()


def test_first_argmax_is_torchs_argmax_with_ties_and_nan():
    generator = torch.Generator().manual_seed(3)
    values = torch.randn(6, 50_000, generator=generator)
    values[1, [7, 400, 49_999]] = 10.0  # a three-way tie: the first
    values[2] = 0.0  # all equal: 0
    values[3, 123] = float("inf")
    values[4, [9, 30]] = float("nan")  # NaN counts as the largest: the first NaN
    values[5, -1] = 99.0  # the last column
    assert greedy_head.first_argmax(values).tolist() == values.argmax(dim=1).tolist() == [
        int(values[0].argmax()), 7, 0, 123, 9, 49_999]
    half = values[[0, 1, 2, 3, 5]].bfloat16()
    assert greedy_head.first_argmax(half).tolist() == half.argmax(dim=1).tolist()


@pytest.mark.parametrize("width", [64 * 40, 64 * 40 + 17, 50])
def test_first_argmax_in_blocks_and_in_a_partial_last_block(width):
    generator = torch.Generator().manual_seed(width)
    values = torch.randn(4, width, generator=generator)
    values[1, -1] = 50.0  # the maximum in the last column (the partial block, where there is one)
    values[2, [5, width - 2]] = 50.0  # tied: the first
    values[3] = values[3].round()  # many ties
    columns = values.t().contiguous().t()  # a product's transposed result: not contiguous
    assert greedy_head.first_argmax(values).tolist() == values.argmax(dim=1).tolist()
    assert greedy_head.first_argmax(columns).tolist() == values.argmax(dim=1).tolist()


def test_a_stopped_build_gives_up_before_its_next_block():
    import threading

    stop = threading.Event()
    stop.set()
    with pytest.raises(greedy_head.BuildStopped):
        ScreenedHead(torch.randn(3 * greedy_head._BLOCK, 8), stop=stop)


EXIT_DURING_BUILD = """
import threading, torch
from moss_cli.interrupts import started
from moss_cli.model.greedy_head import ScreenedHead
torch.set_num_threads(2)
stop = threading.Event()
started(ScreenedHead, torch.randn(151936, 512), None, stop, name="screen", stop=stop)
"""


def test_exiting_while_the_screen_is_built_exits_cleanly():
    # Torch work left running in a daemon thread at shutdown aborted the process (status 134, "terminate
    # called without an active exception"): a run that found no speech ended before the build did.
    import subprocess
    import sys
    from pathlib import Path

    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", EXIT_DURING_BUILD], capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0 and "terminate" not in done.stderr, (done.returncode, done.stderr)


def test_the_models_screen_build_is_stopped_at_exit(tiny_checkpoint):
    from moss_cli import MossAudio, interrupts

    model = MossAudio.load(str(tiny_checkpoint), device="cpu").model
    building = model._screen_building  # started by the load, not yet taken by a decoding step
    assert building is not None and building in interrupts._stoppable
    assert model.greedy_screen is not None


@pytest.mark.parametrize("offset", [0, 2, 14])
def test_one_rows_candidates_are_scored_as_the_whole_one_row_product_scores_them_to_the_bit(offset):
    """Rescored through a block of their rows laid as the layer lies (its offset from a 64-byte boundary,
    rows padded to 16), each candidate's logit is the one-row product's, bit for bit, whatever the
    number of candidates: near ties go the way the official code's greedy step sends them."""
    generator = torch.Generator().manual_seed(offset)
    dense = torch.randn(4096, 96, generator=generator) * 0.05
    buffer = torch.empty(dense.numel() + 16)
    start = (16 - buffer.data_ptr() % 64 // 4 + offset) % 16
    weight = buffer[start : start + dense.numel()].view(4096, 96)
    weight.copy_(dense)
    head = ScreenedHead(weight)
    for count in (1, 3, 5, 16, 17, 63, 200):
        x = torch.randn(1, 96, generator=generator)
        tokens = torch.randperm(4096, generator=generator)[:count].sort().values
        full = torch.nn.functional.linear(x, weight)
        assert torch.equal(head._one_row_scores(x, tokens), full[0, tokens])
