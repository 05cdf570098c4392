"""bfloat16 inference on the CPU: weights converted to bfloat16 once, linear layers through oneDNN with the bias
and the following GELU or residual add fused into the product.

These paths run only for bfloat16 activations on a CPU whose oneDNN multiplies bfloat16, without gradients (the
``bf16`` precision of :mod:`isegm.inference.precision`); float32 runs, training and other devices take the plain
``F.linear`` path, unchanged.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

BF16 = torch.bfloat16
_BF16_WEIGHTS = WeakIdKeyDictionary()  # float32 tensor -> (version, bfloat16 copy)
_PACKED = WeakIdKeyDictionary()  # float32 weight -> (version, oneDNN-packed bfloat16 weight)


def _version(weight: torch.Tensor) -> Optional[int]:
    return None if weight.is_inference() else weight._version  # inference tensors are derived (fused qkv)


def _cached(table: WeakIdKeyDictionary, weight: torch.Tensor, convert) -> torch.Tensor:
    version = _version(weight)
    entry = table.get(weight)
    if entry is None or entry[0] != version:
        with torch.inference_mode():
            entry = (version, convert(weight.detach()))
        table[weight] = entry
    return entry[1]


def bf16_weight(weight: torch.Tensor) -> torch.Tensor:
    """bfloat16 copy of a float32 weight, made once per version of it (kept while the weight lives)."""
    return _cached(_BF16_WEIGHTS, weight, lambda w: w.to(BF16).contiguous())


def cached_nbytes() -> int:
    """Bytes held by the bfloat16 and packed weights of all live models."""
    return sum(t.numel() * 2 for table in (_BF16_WEIGHTS, _PACKED) for _, t in table.values())


def fused_cpu(x: torch.Tensor) -> bool:
    """Whether ``x`` takes the fused bfloat16 CPU path."""
    return (x.dtype == BF16 and x.device.type == "cpu" and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, gelu: bool = False,
           residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``residual + gelu?(x @ weight.T + bias)``: one oneDNN call on the fused bfloat16 CPU path (float32
    accumulation, one rounding to bfloat16), else the plain calls."""
    if not fused_cpu(x) or weight.dtype != torch.float32 or (residual is not None and residual.dtype != BF16):
        out = F.linear(x, weight, bias)
        if gelu:
            out = F.gelu(out)
        return out if residual is None else residual + out
    packed = _cached(_PACKED, weight, lambda w: torch.ops.mkldnn._reorder_linear_weight(w.to(BF16)))
    bias = None if bias is None else bf16_weight(bias)
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed, bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "gelu" if gelu else "none", [],
                                              "none" if gelu else "")
