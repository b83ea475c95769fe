"""Greedy decoding's next token without reading the whole float32 output layer at every step (CPU).

Greedy decoding needs only the largest of each row's 151,936 logits. The float32 product with the
output layer reads 4 bytes per weight at every step; an int8 copy reads 1. So each step:

1. x (B, H) is split: the few dimensions far above the row's typical size (activation outliers)
   are multiplied exactly in float32; the rest are rounded onto an integer grid.
2. Those integers times the int8 copy of the layer (one scale per vocabulary row) are exact
   integer dot products, scaled back: an approximate logit for every token.
3. How far each approximate logit can be from the float32 product's is bounded from the rounding
   alone, with no assumption about the data (Cauchy-Schwarz): |x| |w - w_int8| for the weights'
   rounding, |x - x_int| |w_int8| for the activations', plus float32's own summation error. A token
   can be the float32 argmax only if its approximate logit plus its bound reaches the best
   approximate logit minus that one's bound.
4. Those few candidates are rescored in float32; the largest wins (the lowest id on a tie, as
   argmax picks).

The answer is the float32 argmax of the product the step would otherwise compute: for one row, the
candidates are rescored as the one-row product of the whole layer scores them, to the bit (so a near
tie within float32 rounding goes the way the official code's greedy step sends it); several rows'
candidates are rescored as the batched product, which rounds as the batched full product does. A row
whose bound leaves too many candidates (a very flat distribution) gets its full float32 product
instead.

The integer product runs on FBGEMM's int8 kernel where it reproduces the exact integer products
(checked once on a probe when the head is built), else on `torch._int_mm`, exact by definition
and about half as fast on this project's CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch.nn import functional as F

from .allocator import aligned_like
from .packing import PackingStopped, blocks_product, fbgemm_packed, packed_in_blocks

OUTLIER_RATIO = 6.0  # a dimension above this many times its row's RMS is multiplied exactly
MAX_OUTLIERS = 64  # at most this many dimensions (a column of the layer kept for each)
_BLOCK = 8192  # vocabulary rows quantized at a time (bounds the temporary memory)
_EPS = 2.0**-24  # float32's unit roundoff


BuildStopped = PackingStopped  # the build's stop event was set


class ScreenedHead:
    """An int8 screen over a float32 output layer `weight` (V, H), stored either way (the model keeps it
    row-major: rescoring reads a few rows, outliers a few columns)."""

    def __init__(self, weight: torch.Tensor, full_product: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 stop: threading.Event | None = None):
        """`full_product(x)`: x @ weight.T as its owner computes it, for rows the screen leaves flat;
        `stop`: set, the build gives up at the next block of rows (BuildStopped)."""
        if weight.dtype != torch.float32 or weight.device.type != "cpu":
            raise ValueError("the int8 screen works on a float32 output layer on the CPU")
        self.weight = weight
        self.full_product = full_product or (lambda x: x @ weight.t())
        rows, self.hidden = weight.shape
        quantized = torch.empty((rows, self.hidden), dtype=torch.int8)
        self.scales = torch.empty(rows, dtype=torch.float32)
        self.rounding = torch.empty(rows, dtype=torch.float32)  # |w - w_int8| per row, rounded up
        self.norms = torch.empty(rows, dtype=torch.float32)  # |w_int8| per row, rounded up
        for start in range(0, rows, _BLOCK):
            if stop is not None and stop.is_set():
                raise BuildStopped("the int8 screen's build was stopped")
            self._quantize(quantized, start, weight[start : start + _BLOCK])
        self.product = _fbgemm_product(quantized, self.scales, stop) or _IntMmProduct(quantized, self.scales)
        self.max_scale, self.max_rounding, self.max_norm = (float(t.max()) for t in (self.scales, self.rounding, self.norms))
        # Rescoring reads a candidate's H weights; the full product reads all V * H of them.
        self.max_candidates = max(64, rows // 128)
        self._stacked: tuple[list[int], torch.Tensor] | None = None  # the last step's, usually the next one's

    def _quantize(self, quantized: torch.Tensor, start: int, block: torch.Tensor) -> None:
        block = block.contiguous()  # a column-major layer's rows are strided: one copy, then fast passes
        scales = block.abs().amax(dim=1) / 127
        scales[scales == 0] = 1.0  # an all-zero row: any scale, its integers are 0
        integers = torch.div(block, scales[:, None]).round_().clamp_(-127, 127)
        end = start + block.shape[0]
        quantized[start:end] = integers.to(torch.int8)
        self.scales[start:end] = scales
        self.norms[start:end] = _rounded_up(integers.norm(dim=1) * scales, self.hidden)
        # The residual w - q * scale is computed in float32: each element within 256 eps * scale of the
        # exact one (|w| and |q * scale| are at most 127.5 scales), so its norm within sqrt(H) times that.
        residual = torch.sub(block, integers.mul_(scales[:, None])).norm(dim=1)
        self.rounding[start:end] = _rounded_up(residual + self.hidden**0.5 * 256 * _EPS * scales, self.hidden)

    def argmax(self, x: torch.Tensor) -> list[int]:
        """The float32 argmax of `x @ weight.T` for each row of x (B, H)."""
        x = x.float()
        broken = ~torch.isfinite(x).all(dim=1)  # a NaN or infinite state (a diverged model): no bound holds
        approx, terms = self._approximate(x.masked_fill(broken[:, None], 0) if bool(broken.any()) else x)
        # Coarse: one bound per row, with the largest per-token quantities; its best token stays in.
        coarse = terms[0] * self.max_rounding + terms[1] * self.max_norm + terms[2] * self.max_scale
        threshold = approx.amax(dim=1, keepdim=True) - 2 * coarse
        rows, tokens = self._refined(approx, terms, *_at_least(approx, threshold))
        counts = torch.bincount(rows, minlength=x.shape[0])
        # Rows the screen cannot narrow down (a flat distribution leaves too many candidates) and broken
        # rows get the full product.
        flat = (counts > self.max_candidates) | broken
        picks = torch.empty(x.shape[0], dtype=torch.long)
        if bool(flat.any()):
            picks[flat] = first_argmax(self.full_product(x[flat]))  # one product for all: the layer read once
            screened = ~flat[rows]
            rows, tokens = rows[screened], tokens[screened]
        if tokens.numel():
            # The candidates' float32 logits, all rows' candidates read in one pass over their weights.
            if x.shape[0] == 1:
                scores = self._one_row_scores(x, tokens)
            else:
                scores = (self.weight.index_select(0, tokens) @ x.t()).gather(1, rows[:, None]).squeeze(1)
            best = torch.full_like(x[:, 0], float("-inf")).scatter_reduce(0, rows, scores, "amax")
            tops = scores == best[rows]  # argmax takes the first maximum: the lowest id
            lowest = torch.full_like(picks, self.weight.shape[0]).scatter_reduce(0, rows[tops], tokens[tops], "amin")
            picks[~flat] = lowest[~flat]
        return picks.tolist()

    def _one_row_scores(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The candidates' logits for one row x (1, H) as the one-row product of the whole layer computes
        them, bit for bit (the official code's greedy step): their rows gathered into a block laid at the
        layer's offset from a 64-byte boundary and padded to a multiple of 16 rows, as BLAS's sums
        depend on where a row starts and it sums the last few rows of a product its own way."""
        count = tokens.numel()
        padded = torch.cat([tokens, tokens[-1:].expand(-count % 16)]) if count % 16 else tokens
        block = aligned_like(self.weight, padded.numel())
        torch.index_select(self.weight, 0, padded, out=block)
        return F.linear(x, block)[0, :count]

    def bound(self, terms: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Each approximate logit's largest possible distance from float32's, (B, V)."""
        bound = terms[0] * self.rounding
        bound.addcmul_(terms[1], self.norms).addcmul_(terms[2], self.scales)
        return bound

    def _refined(self, approx, terms, rows, tokens):
        """The coarse candidates that stay candidates with each token's own bound."""
        bound = (terms[0][rows, 0] * self.rounding[tokens] + terms[1][rows, 0] * self.norms[tokens]
                 + terms[2][rows, 0] * self.scales[tokens])
        values = approx[rows, tokens]
        lower = torch.full((approx.shape[0],), float("-inf")).scatter_reduce(0, rows, values - bound, "amax")
        keep = values + bound >= lower[rows]
        return rows[keep], tokens[keep]

    def _approximate(self, x: torch.Tensor):
        """Approximate logits (B, V), and per row (B, 1) the factors of their bound: times each token's
        rounding, times its int8 norm, times its scale (see `bound`)."""
        magnitude = x.abs()
        rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()
        outliers = torch.nonzero((magnitude > OUTLIER_RATIO * rms).any(dim=0)).flatten()
        if outliers.numel() > MAX_OUTLIERS:
            outliers = magnitude.amax(dim=0).topk(MAX_OUTLIERS).indices
        main = x
        if outliers.numel():
            main = x.clone()
            main[:, outliers] = 0
        approx, activation_error = self.product(main)
        if outliers.numel():
            approx.addmm_(x[:, outliers], self._outlier_columns(outliers.tolist()))
        # Float32: this sum and the float32 reference's are each within H + 8 roundings (eps) of
        # sum |x_i w_i| <= |x|_1 * 127.5 * scale (the largest weight of a row is 127.5 scales at most).
        summation = (2 * self.hidden + 16) * _EPS * 128 * magnitude.sum(dim=1, keepdim=True)
        return approx, (_rounded_up(main.norm(dim=1, keepdim=True), self.hidden), activation_error, summation)

    def _outlier_columns(self, dims: list[int]) -> torch.Tensor:
        """weight[:, dims].T as one (len(dims), V) block. A model's large activations sit in the same
        few dimensions step after step, so the block is kept while they stay the same."""
        if self._stacked is None or self._stacked[0] != dims:
            self._stacked = (dims, torch.stack([self.weight[:, dim] for dim in dims]))
        return self._stacked[1]


class _IntMmProduct:
    """Integer products by `torch._int_mm`: each row of x on its own int8 grid (127 steps each way)."""

    def __init__(self, quantized: torch.Tensor, scales: torch.Tensor):
        self.quantized, self.scales = quantized, scales

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Approximate x @ dequantized.T (B, V), and each row's |x - x_int| (B, 1), rounded up."""
        step = x.abs().amax(dim=1, keepdim=True) / 127
        step[step == 0] = 1.0
        integers = torch.round(x / step).clamp_(-127, 127)
        approx = torch.mul(torch._int_mm(integers.to(torch.int8), self.quantized.t()), self.scales)
        return approx.mul_(step), _activation_error(x, integers * step)


class _FbgemmProduct:
    """Integer products by FBGEMM's dynamic int8 linear, fed numbers already on the grid it will choose.

    FBGEMM quantizes its input with one scale and zero point, from the input's minimum and maximum,
    to 0..127 (`reduce_range`: no int16 overflow in its AVX2 kernels). Two extra input columns, with
    zero weights, pin that minimum and maximum at -64 and 63 steps, and every other input is a whole
    number of steps: it recovers those integers exactly. Rows are first scaled by powers of two (exact)
    to about the same size, as they share one grid.

    The layer is packed in blocks of rows on every thread (model/packing.py).
    """

    def __init__(self, quantized: torch.Tensor, scales: torch.Tensor, stop: threading.Event | None = None):
        self.packed = packed_in_blocks(quantized.shape[0], lambda rows: _packed(quantized[rows], scales[rows]), stop)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Approximate x @ dequantized.T (B, V), and each row's |x - x_int| (B, 1), rounded up."""
        scaled, row_scale, step, integers = self.grid(x)
        pinned = torch.empty((x.shape[0], x.shape[1] + 2))
        pinned[:, :-2] = integers * step
        pinned[:, -2], pinned[:, -1] = -64 * step, 63 * step
        approx = blocks_product(pinned, self.packed).div_(row_scale)
        return approx, _activation_error(scaled, pinned[:, :-2]) / row_scale

    @staticmethod
    def grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
        """x scaled by a power of two per row, those factors (B, 1), the shared step, and the scaled x
        in whole steps from -64 to 63."""
        peak = x.abs().amax(dim=1, keepdim=True)
        peak[peak == 0] = 1.0
        row_scale = torch.exp2(torch.floor(torch.log2(peak.max() / peak)).clamp_(max=60))  # powers of two: exact
        scaled = x * row_scale
        step = float(scaled.abs().max()) / 63 or 1.0
        return scaled, row_scale, step, torch.round(scaled / step).clamp_(-64, 63)


def _packed(quantized: torch.Tensor, scales: torch.Tensor):
    """FBGEMM's packed form of int8 rows with per-row scales, two zero columns added (the pinned inputs)."""
    rows, hidden = quantized.shape
    padded = torch.zeros((rows, hidden + 2), dtype=torch.int8)
    padded[:, :hidden] = quantized
    return fbgemm_packed(padded, scales)


def _fbgemm_product(quantized: torch.Tensor, scales: torch.Tensor,
                    stop: threading.Event | None = None) -> _FbgemmProduct | None:
    """FBGEMM's product where it gives the exact integer products (times the scales) on a probe."""
    try:
        probe_rows = slice(0, min(4096, quantized.shape[0]))
        product = _FbgemmProduct(quantized[probe_rows], scales[probe_rows])
        x = torch.randn(3, quantized.shape[1], generator=torch.Generator().manual_seed(0))
        x[1] *= 1e-3  # rows of different sizes share the grid
        approx, _ = product(x)
        _, row_scale, step, integers = product.grid(x)
        weights = quantized[probe_rows].double() * scales[probe_rows].double()[:, None]
        exact = integers.double() @ weights.t() * step / row_scale.double()
        size = integers.double().abs() @ weights.abs().t() * step / row_scale.double()
        if not ((approx.double() - exact).abs() <= 4 * _EPS * size + 1e-30).all():
            return None
        return _FbgemmProduct(quantized, scales, stop)
    except (RuntimeError, AttributeError):  # a torch without FBGEMM's quantized ops
        return None


def _at_least(values: torch.Tensor, threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of the entries of values (B, V) at or above their row's threshold (B, 1), in
    row-major order. Blocks of _SCAN columns whose maximum is below are skipped: the few entries
    wanted are found without a comparison and a nonzero pass over every one."""
    batch, width = values.shape
    whole = width - width % _SCAN
    blocks = values[:, :whole].view(batch, -1, _SCAN)
    block_rows, block_ids = torch.nonzero(blocks.amax(dim=2) >= threshold, as_tuple=True)
    hit_blocks, offsets = torch.nonzero(blocks[block_rows, block_ids] >= threshold[block_rows], as_tuple=True)
    rows, columns = block_rows[hit_blocks], block_ids[hit_blocks] * _SCAN + offsets
    if whole < width:  # the last, partial block
        tail_rows, tail_columns = torch.nonzero(values[:, whole:] >= threshold, as_tuple=True)
        rows, columns = torch.cat([rows, tail_rows]), torch.cat([columns, tail_columns + whole])
        order = torch.argsort(rows * width + columns)
        rows, columns = rows[order], columns[order]
    return rows, columns


_SCAN = 64  # columns per block in _at_least


def first_argmax(values: torch.Tensor) -> torch.Tensor:
    """values.argmax(dim=1) for (B, V) values: the first maximum of each row, NaN counting as the largest.

    On CPU torch's argmax over 151,936 logits took 0.9 ms for 5 rows; the row maxima and where they
    are (`_at_least`, through block maxima) take about a third of that. Elsewhere (GPUs) torch's own."""
    if values.device.type != "cpu":
        return values.argmax(dim=1)
    tops = values.amax(dim=1, keepdim=True)
    if bool(tops.isnan().any()):  # argmax gives the first NaN
        return values.argmax(dim=1)
    rows, columns = _at_least(values.contiguous(), tops)
    return torch.full((values.shape[0],), values.shape[1], dtype=torch.long).scatter_reduce(0, rows, columns, "amin")


def _activation_error(x: torch.Tensor, on_grid: torch.Tensor) -> torch.Tensor:
    return _rounded_up((x.double() - on_grid.double()).norm(dim=1, keepdim=True))


def _rounded_up(values: torch.Tensor, terms: int = 1) -> torch.Tensor:
    """float32 values no smaller than the exact `values`: float32 norms of `terms` elements (each term's
    rounding, the sum's and the square root's: well within terms * 4 eps, relative) or float64 ones."""
    margin = 1 + 4 * (terms + 2) * _EPS + 1e-6
    return torch.nextafter((values.double() * margin).float(), torch.tensor(float("inf")))
