"""A CPU decoding step's projections joined: query, key and value as one product, gate and up as
one (float32 here; int8 at the end of this file).

A decoding step reads every weight once, so its time is the weights' bytes plus a fixed cost per
operation; on a small model the operations weigh (the random `small` checkpoint's 8 layers: about
3.4 ms of an 8.8 ms step outside the products). Joined, a layer makes 4 products instead of 7, and
its query and key heads are normed and rotated as one block (model/decoder.py).

Each joined weight is one tensor holding the projections' rows one after the other; the projections
keep their weights as views of it, so nothing is stored twice and the prompt's path is unchanged.
Weights mapped from the checkpoint's file have their pages let go once copied (they stayed resident
and counted: a random `small` model held 75 MB more).
The joined products are used only where they give each projection's own product bit for bit, checked
once per layer on a probe (one row, through BLAS by blocks; several rows, through oneDNN): a kernel
whose sums depend on how many output rows it computes keeps the separate products. The joined weight
starts where the separate ones did relative to a 64-byte boundary, as BLAS's sums depend on that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from . import decoder
from .allocator import ALIGNMENT, aligned_like, drop_file_pages
from .config import INT8_SCALES
from .qwen3 import Qwen3Model

# Each layer's groups: where they sit, the int8 joined layer's name, the projections joined.
GROUPS = {"self_attn": ("qkv_proj", ("q_proj", "k_proj", "v_proj")), "mlp": ("gate_up_proj", ("gate_proj", "up_proj"))}


@dataclass(frozen=True)
class Joined:
    weight: torch.Tensor | None  # (sum of the projections' outputs, hidden); None: `module` multiplies
    several_rows: bool  # several rows' joined product is bit-equal to the separate ones, too
    query_heads: int = 0
    key_heads: int = 0
    norm_weight: torch.Tensor | None = None  # (query_heads + key_heads, head_dim): each head's norm weight
    module: nn.Module | None = None  # an int8 model's joined layer (qkv_proj, gate_up_proj)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x) if self.module is not None else decoder.plain_product(x, self.weight)


def join_projections(lm: Qwen3Model) -> int:
    """Join each layer's projections where the products stay bit-equal; how many groups were joined.
    Only plain float32 CPU layers without biases are joined."""
    joined = 0
    for layer in lm.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if attn.q_norm.variance_epsilon == attn.k_norm.variance_epsilon:
            group = _joined([getattr(attn, name) for name in GROUPS["self_attn"][1]])
            if group is not None:
                attn.joined = _with_heads(attn, group)
                joined += 1
        group = _joined([getattr(mlp, name) for name in GROUPS["mlp"][1]])
        if group is not None:
            mlp.joined = group
            joined += 1
    return joined


def _with_heads(attn, group: Joined) -> Joined:
    """`group` with what the step needs to norm and rotate the query and key heads as one block."""
    query_heads, key_heads = attn.config.num_attention_heads, attn.config.num_key_value_heads
    norm = torch.cat([attn.q_norm.weight.detach().expand(query_heads, -1),
                      attn.k_norm.weight.detach().expand(key_heads, -1)])
    return replace(group, query_heads=query_heads, key_heads=key_heads, norm_weight=norm)


def unjoin_projections(lm: Qwen3Model) -> None:
    """Decoding steps go back to each projection's own module (which keeps its weight, a view of the
    joined one): before the projections are swapped for others, int8 ones say, which the joined float32
    product would otherwise stand in for."""
    for layer in lm.layers:
        for module in (layer.self_attn, layer.mlp):
            module.__dict__.pop("joined", None)


def _joined(projections: list[nn.Linear]) -> Joined | None:
    """The projections' weights as one tensor, each projection's weight a view of it; None (and nothing
    changed) where they cannot be joined or the joined product is not bit-equal for one row."""
    weights = [p.weight for p in projections]
    plain = all(type(p) is nn.Linear and p.bias is None for p in projections)
    if not plain or any(w.dtype != torch.float32 or w.device.type != "cpu" for w in weights):
        return None
    if len({w.shape[1] for w in weights}) != 1 or len({w.data_ptr() % ALIGNMENT for w in weights}) != 1:
        return None
    weight = aligned_like(weights[0], sum(w.shape[0] for w in weights))
    torch.cat([w.detach() for w in weights], out=weight)
    one_row, several_rows = (_bit_equal(weight, weights, rows) for rows in (1, 3))
    if not one_row:
        return None
    start = 0
    for projection, replaced in zip(projections, weights):
        end = start + projection.out_features
        projection.weight = nn.Parameter(weight[start:end], requires_grad=False)
        start = end
        if replaced.is_contiguous():
            drop_file_pages(replaced)  # read from the weights file and copied: not counted twice
    return Joined(weight, several_rows)


def _bit_equal(weight: torch.Tensor, parts: list[torch.Tensor], rows: int) -> bool:
    probe = torch.randn(rows, 1, weight.shape[1], generator=torch.Generator().manual_seed(rows))
    separate = torch.cat([decoder.plain_product(probe, part) for part in parts], dim=-1)
    return torch.equal(decoder.plain_product(probe, weight), separate)


# int8: the projections are joined before they are quantized, as one layer (`qkv_proj`, `gate_up_proj`)
# that the prompt's path uses too; an int8 product takes its activations' grid from the input alone,
# so the joined layer's numbers are the separate layers' (tests/model/test_quantize.py).

class StackedRows(nn.Module):
    """Linear layers with one input, their outputs side by side: the rows of a joined layer before it is
    quantized. The parts' weights are not copied into one float tensor: int8 rounds each row on its
    own, so it writes the parts' rows into its one int8 weight directly. A float32 copy of them took
    memory and, from a bfloat16 checkpoint, a conversion (random `mid` in bfloat16, load to the output
    layer built: 0.93x the time, 110 MB less at the peak; from float32, the same time, 34 MB less)."""

    def __init__(self, parts: list[nn.Linear]):
        super().__init__()
        self.parts = tuple(parts)  # a plain attribute: they are no longer layers of the model
        self.in_features, self.out_features = parts[0].in_features, sum(p.out_features for p in parts)
        biases = [p.bias for p in parts]
        self.bias = None if biases[0] is None else torch.cat([b.detach().float() for b in biases])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=-1)


def weights_loaded(layer: nn.Module) -> bool:
    """Whether a layer being loaded has all its weights: none left on the meta device, and int8 rows
    (an int8 checkpoint's) with their scales."""
    if any(t.is_meta for t in layer.parameters()):
        return False
    weight = layer._parameters.get("weight")
    return weight is None or weight.dtype != torch.int8 or INT8_SCALES in layer._buffers


def join_before_quantizing(parent: nn.Module, kind: str) -> str | None:
    """Replace `parent`'s projections (a layer's self_attn or mlp, `kind`) by one StackedRows of them;
    its name, or None where they stay apart (a bias on some only, different inputs)."""
    joined_name, names = GROUPS[kind]
    members = [parent._modules.get(name) for name in names]
    if any(type(m) is not nn.Linear for m in members) or len({m.in_features for m in members}) != 1:
        return None
    if len({m.bias is None for m in members}) != 1:
        return None
    for name in names:
        delattr(parent, name)
    parent.add_module(joined_name, StackedRows(members))
    return joined_name


def mark_quantized_joins(lm: Qwen3Model) -> None:
    """Once the joined layers are quantized: the decoding step's joined path multiplies through them."""
    (query_key_value, _), (gate_up, _) = GROUPS["self_attn"], GROUPS["mlp"]
    for layer in lm.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if query_key_value in attn._modules:
            attn.joined = _with_heads(attn, Joined(None, True, module=attn._modules[query_key_value]))
        if gate_up in mlp._modules:
            mlp.joined = Joined(None, True, module=mlp._modules[gate_up])


class JoinsAsLoaded:
    """For a loader that quantizes each layer as soon as its weights are read: what to quantize once the
    module `name` has its weights. A language-model projection waits for the rest of its group, which
    is then joined; anything else goes at once."""

    def __init__(self, model: nn.Module):
        self.model = model

    def ready(self, name: str) -> list[str]:
        parent_name, _, leaf = name.rpartition(".")
        kind = parent_name.rpartition(".")[2]
        if not parent_name.startswith("language_model.layers.") or leaf not in GROUPS.get(kind, ("", ()))[1]:
            return [name]
        parent = self.model.get_submodule(parent_name)
        names = GROUPS[kind][1]
        if not all(n in parent._modules and weights_loaded(parent._modules[n]) for n in names):
            return []
        joined = join_before_quantizing(parent, kind)
        return [f"{parent_name}.{joined}"] if joined else [f"{parent_name}.{n}" for n in names]
