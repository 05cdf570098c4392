"""Multi-head self-attention with separate q, k and v projections (so peft can adapt q and v only)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import fused


def _linear_parts(layer: nn.Module) -> Tuple[nn.Linear, Optional[torch.Tensor]]:
    """The frozen linear under ``layer`` and the LoRA update of its active adapter (None when not adapted)."""
    base = getattr(layer, "base_layer", None)
    if base is None:
        return layer, None
    if layer.merged or layer.disable_adapters:  # the update is already in the weight, or switched off
        return base, None
    delta = None
    for name in layer.active_adapters:
        if name in layer.lora_A:
            part = layer.get_delta_weight(name)
            delta = part if delta is None else delta + part
    return base, delta


class Attention(nn.Module):
    """Self-attention over B x N x C tokens, computed with ``scaled_dot_product_attention``.

    Without gradients the active LoRA update is merged into one fused qkv matrix, kept until a weight or the active
    branch changes (tracked by tensor identity, version counter and storage); the base weights themselves are never
    modified, so switching branches is exact in both directions. Writes through ``tensor.data`` bypass the version
    counter: call :meth:`clear_cache` after them. A model shared by several threads must not switch signals
    concurrently (the active branch is model state).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self._fused_key = None
        self._fused = None

    def clear_cache(self) -> None:
        self._fused_key = self._fused = None

    def _fused_qkv(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        tensors = list(self.parameters())
        state = (tuple(getattr(self.q, "active_adapters", ())), getattr(self.q, "merged", False),
                 tuple((t._version, t.data_ptr()) for t in tensors))
        cached = self._fused_key
        if (cached is None or cached[0] != state or len(cached[1]) != len(tensors)
                or any(a is not b for a, b in zip(tensors, cached[1]))):
            weights, biases = [], []
            for layer in (self.q, self.k, self.v):
                base, delta = _linear_parts(layer)
                weights.append(base.weight if delta is None else base.weight + delta)
                biases.append(base.bias)
            bias = None if biases[0] is None else torch.cat(biases)
            self._fused = (torch.cat(weights), bias)
            self._fused_key = (state, tensors)  # the tensors themselves, so that a reused id cannot match
        return self._fused

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """B x N x C -> B x N x C (plus ``residual``, added inside the output projection where it can be fused)."""
        batch, tokens, dim = x.shape
        if torch.is_grad_enabled():
            self.clear_cache()
            q, k, v = self.q(x), self.k(x), self.v(x)
        else:
            weight, bias = self._fused_qkv()
            q, k, v = fused.linear(x, weight, bias).split(dim, dim=-1)
        shape = (batch, tokens, self.num_heads, dim // self.num_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        if residual is None:
            return self.proj(out)
        return fused.linear(out, self.proj.weight, self.proj.bias, residual=residual)
