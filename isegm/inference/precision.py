"""Inference precision: float32, bfloat16 products, split-bfloat16 products (bf16x3), and the automatic choice.

The model is never modified. While a predictor runs the model, :func:`reduced_precision` intercepts the linear and
convolution calls of the ViT, the neck and the head (a ``TorchFunctionMode``) and computes them from weights
converted once per model and kept beside it (a weak cache: it goes away with the model, and a weight changed in
place is converted again). What is not a product stays float32: the residual stream, LayerNorm and GroupNorm
statistics, the click maps, the final logits, sigmoid and zoom-in threshold. The phrase encoder (CLIP text tower and
its projection) always runs in float32.

* ``bf16``: inputs and weights in bfloat16 (float32 accumulation inside the product), outputs in bfloat16; GELU and
  attention then run in bfloat16 as well.
* ``bf16x3``: each product a @ b as a_hi b_hi + a_hi b_lo + a_lo b_hi with x = x_hi + x_lo split into two bfloat16
  parts and float32 accumulation, close to float32 (about 1e-5 relative). PyTorch has no CPU bfloat16 product with a
  float32 result, so the float32 accumulator is carried across products as a rounded head y = bf16(a_hi b_hi) plus a
  small bfloat16 correction accumulated on top of -y (``addmm`` adds its input before rounding): four bfloat16
  products per float32 product. Attention, norms and GELU stay float32. Slower than ``fp32`` on the CPUs measured
  (README), so the command-line tools do not offer it; it stays here to be measured (scripts/benchmark_inference.py).
* ``auto``: ``bf16`` where the device has bfloat16 matrix support (CPU: AVX-512-BF16 or AMX-BF16) and, on a CPU, a
  short start-up measurement shows bfloat16 products to be faster; ``fp32`` otherwise.
"""
import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import Callable, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "bf16x3", "auto")  # what a predictor accepts
# what the command-line tools offer: bf16x3 was slower than fp32 on every CPU it was measured on (README), so it
# stays a predictor option for measurements (scripts/benchmark_inference.py), not a tool option
TOOL_PRECISIONS = ("fp32", "bf16", "auto")
BF16 = torch.bfloat16
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512-BF16 / AMX; Arm BF16 (Features line)
AUTO_MIN_SPEEDUP = 1.3  # bfloat16 products must beat float32 by this factor for `auto` to take them


# ----- the automatic choice ----------------------------------------------------------------------------------------
def cpu_flags() -> frozenset:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bf16_matmul_support(device: torch.device) -> Tuple[bool, str]:
    """Whether ``device`` multiplies bfloat16 matrices natively, and what that was decided from."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return supported, f"{torch.cuda.get_device_name(device)} {'supports' if supported else 'lacks'} bfloat16"
    if device.type != "cpu":
        return False, f"no bfloat16 products on {device.type}"
    if not torch.backends.mkldnn.is_available():
        return False, "this PyTorch build has no oneDNN"
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    if flags:
        found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
        if not found:
            return False, f"the CPU lacks bfloat16 matrix instructions ({'/'.join(CPU_BF16_FLAGS)}; {capability})"
        return True, f"the CPU has {', '.join(found)} ({capability})"
    supported = capability.startswith("AVX512") or capability.startswith("SVE")
    return supported, f"CPU capability {capability} (no /proc/cpuinfo)"


def measure_bf16_speedup(device: torch.device, repeats: int = 8, budget_s: float = 0.4) -> float:
    """float32 time / bfloat16 time of a ViT-B-sized linear layer on ``device``: the best of up to ``repeats``
    alternating rounds, stopping after about ``budget_s`` seconds (well under a second in all)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 768, generator=generator).to(device)
    w = torch.randn(768, 768, generator=generator).to(device)
    pairs = ((x, w), (x.to(BF16), w.to(BF16)))
    best = [float("inf"), float("inf")]
    deadline = time.perf_counter() + budget_s
    with torch.inference_mode():
        for k in range(repeats + 1):
            for i, (a, b) in enumerate(pairs):
                start = time.perf_counter()
                F.linear(a, b)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if k:  # the first round warms up
                    best[i] = min(best[i], time.perf_counter() - start)
            if k and time.perf_counter() > deadline:
                break
    return best[0] / best[1]


@functools.lru_cache(maxsize=None)
def choose_precision(device: torch.device) -> str:
    """What ``auto`` means on ``device`` (decided once per process and device)."""
    supported, reason = bf16_matmul_support(device)
    if not supported:
        logger.info("precision auto -> fp32: %s", reason)
        return "fp32"
    if device.type == "cuda":
        logger.info("precision auto -> bf16: %s", reason)
        return "bf16"
    speedup = measure_bf16_speedup(device)
    choice = "bf16" if speedup >= AUTO_MIN_SPEEDUP else "fp32"
    logger.info("precision auto -> %s: %s, bfloat16 products %.1fx as fast as float32 (bf16 from %.1fx)",
                choice, reason, speedup, AUTO_MIN_SPEEDUP)
    return choice


def resolve_precision(precision: str, device: Union[str, torch.device]) -> str:
    """``precision`` checked, with ``auto`` replaced by the choice for ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return choose_precision(torch.device(device))


# ----- split-bfloat16 products -------------------------------------------------------------------------------------
def split_bf16(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """x = hi + lo + O(2^-16 |x|), hi and lo in bfloat16."""
    hi = x.to(BF16)
    return hi, (x - hi).to(BF16)


def matmul_bf16x3(a: Tuple[torch.Tensor, torch.Tensor], b: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """float32 (M x N) product of split (hi, lo) 2-D operands: a_hi b_hi + a_hi b_lo + a_lo b_hi.

    The rounded head y = bf16(a_hi b_hi) and a correction r = bf16(a_hi b_hi - y + a_hi b_lo + a_lo b_hi), summed in
    float32 accumulators by ``addmm`` before each rounding; |r| is about 2^-8 |y|, so its rounding costs little.
    """
    (a_hi, a_lo), (b_hi, b_lo) = a, b
    head = torch.mm(a_hi, b_hi)
    correction = torch.addmm(head, a_hi, b_hi, beta=-1)
    correction.addmm_(a_hi, b_lo)
    correction.addmm_(a_lo, b_hi)
    return head.float().add_(correction)


def _is_patchify(kernel, stride, padding, dilation, groups, output_padding=(0, 0)) -> bool:
    """A convolution whose kernel tiles its input (kernel == stride, no padding): a matrix product per tile."""
    return (tuple(kernel) == tuple(stride) and not any(padding) and not any(output_padding) and groups == 1
            and all(d == 1 for d in dilation))


def _pair(value) -> Tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


# ----- the interception ---------------------------------------------------------------------------------------------
class WeightCache:
    """Converted weights of one model for one precision, keyed weakly by the float32 tensor they come from."""

    def __init__(self, precision: str):
        self.precision = precision
        self._entries = WeakIdKeyDictionary()

    def get(self, weight: torch.Tensor, layout: Callable[[torch.Tensor], torch.Tensor] = lambda w: w):
        """bfloat16 copy (``bf16``) or (hi, lo) split (``bf16x3``) of ``layout(weight)``, made once per version."""
        version = None if weight.is_inference() else weight._version  # inference tensors are derived (fused qkv)
        entry = self._entries.get(weight)
        if entry is None or entry[0] != version:
            base = layout(weight.detach()).float()
            converted = base.to(BF16).contiguous() if self.precision == "bf16" else \
                tuple(t.contiguous() for t in split_bf16(base))
            entry = (version, converted)
            self._entries[weight] = entry
        return entry[1]

    def nbytes(self) -> int:
        total = 0
        for _, converted in self._entries.values():
            for tensor in (converted if isinstance(converted, tuple) else (converted,)):
                total += tensor.numel() * tensor.element_size()
        return total


class ReducedPrecisionProducts(TorchFunctionMode):
    """Run the linear and convolution calls of a model in ``bf16`` or ``bf16x3`` (see the module docstring).

    Tensors of ``fp32_modules`` (and views of them) are left alone, as are calls this mode cannot express as
    products of the precision (they then run as called).
    """

    def __init__(self, cache: WeightCache, fp32_modules=()):
        super().__init__()
        self.cache = cache
        self.fp32_modules = [m for m in fp32_modules if m is not None]
        self._fp32_ids = None

    def _converts(self, weight: torch.Tensor) -> bool:
        if not weight.is_floating_point() or weight.dtype != torch.float32:
            return False
        if self._fp32_ids is None:  # computed on first use: the CLIP tower may be loaded during the forward
            self._fp32_ids = {id(t) for m in self.fp32_modules for t in (*m.parameters(), *m.buffers())}
        return id(weight) not in self._fp32_ids and id(weight._base) not in self._fp32_ids

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return self._linear(*args, **kwargs)
        if func is F.conv2d:
            return self._conv2d(*args, **kwargs)
        if func is F.conv_transpose2d:
            return self._conv_transpose2d(*args, **kwargs)
        if func in (F.layer_norm, F.group_norm) and self.cache.precision == "bf16" and args[0].dtype == BF16:
            return func(args[0].float(), *args[1:], **kwargs)  # statistics and output in float32
        return func(*args, **kwargs)

    # bf16: the same call on bfloat16 operands
    def _bf16_call(self, func, x, weight, bias, *rest, **kwargs):
        bias = None if bias is None else self.cache.get(bias)
        return func(x.to(BF16), self.cache.get(weight), bias, *rest, **kwargs)

    def _linear(self, x, weight, bias=None):
        if not self._converts(weight):
            return F.linear(x, weight, bias)
        if self.cache.precision == "bf16":
            return self._bf16_call(F.linear, x, weight, bias)
        x = x.float()
        w_hi, w_lo = self.cache.get(weight)
        out = matmul_bf16x3(split_bf16(x.reshape(-1, x.shape[-1])), (w_hi.t(), w_lo.t()))
        if bias is not None:
            out.add_(bias)
        return out.view(*x.shape[:-1], weight.shape[0])

    def _conv2d(self, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if not self._converts(weight) or isinstance(padding, str):
            return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        if self.cache.precision == "bf16":
            return self._bf16_call(F.conv2d, x, weight, bias, stride, padding, dilation, groups)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        if x.ndim != 4 or not _is_patchify(weight.shape[2:], stride, padding, dilation, groups):
            return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        # tiles of k x k pixels: out[b] (O x H'W') = W (O x C k k) @ tiles[b] (C k k x H'W')
        (kh, kw), (batch, channels, height, width) = weight.shape[2:], x.shape
        rows, cols = height // kh, width // kw
        x = x.float()[:, :, :rows * kh, :cols * kw]
        if (kh, kw) != (1, 1):
            x = x.reshape(batch, channels, rows, kh, cols, kw).permute(0, 1, 3, 5, 2, 4)
        tiles = x.reshape(batch, channels * kh * kw, rows * cols)
        w = self.cache.get(weight, lambda t: t.reshape(t.shape[0], -1))
        out = torch.stack([matmul_bf16x3(w, split_bf16(tiles[b])) for b in range(batch)])
        if bias is not None:
            out.add_(bias.view(1, -1, 1))
        return out.view(batch, -1, rows, cols)

    def _conv_transpose2d(self, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        call = (x, weight, bias, stride, padding, output_padding, groups, dilation)
        if not self._converts(weight):
            return F.conv_transpose2d(*call)
        if self.cache.precision == "bf16":
            return self._bf16_call(F.conv_transpose2d, *call)
        stride, padding = _pair(stride), _pair(padding)
        output_padding, dilation = _pair(output_padding), _pair(dilation)
        if x.ndim != 4 or not _is_patchify(weight.shape[2:], stride, padding, dilation, groups, output_padding):
            return F.conv_transpose2d(*call)
        # each input pixel becomes a k x k tile: tiles[b] (O k k x HW) = W' (O k k x C) @ x[b] (C x HW)
        (kh, kw), (batch, channels, height, width) = weight.shape[2:], x.shape
        w = self.cache.get(weight, lambda t: t.permute(1, 2, 3, 0).reshape(-1, t.shape[0]))
        flat = x.float().reshape(batch, channels, height * width)
        tiles = torch.stack([matmul_bf16x3(w, split_bf16(flat[b])) for b in range(batch)])
        out_channels = weight.shape[1]
        out = tiles.view(batch, out_channels, kh, kw, height, width).permute(0, 1, 4, 2, 5, 3)
        out = out.reshape(batch, out_channels, height * kh, width * kw)
        if bias is not None:
            out.add_(bias.view(1, -1, 1, 1))
        return out


_CACHES = WeakIdKeyDictionary()  # model -> {precision: WeightCache}


def weight_cache(model: nn.Module, precision: str) -> WeightCache:
    """The converted weights of ``model`` for ``precision``, shared by all predictors of the model."""
    caches = _CACHES.get(model)
    if caches is None:
        caches = _CACHES[model] = {}
    if precision not in caches:
        caches[precision] = WeightCache(precision)
    return caches[precision]


def reduced_precision(model: nn.Module, precision: str) -> contextlib.AbstractContextManager:
    """Context in which ``model``'s products run in ``precision`` (``fp32``: unchanged)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "bf16x3"):
        raise ValueError(f"reduced_precision takes bf16 or bf16x3, got {precision!r} (resolve 'auto' first)")
    return ReducedPrecisionProducts(weight_cache(model, precision),
                                    fp32_modules=[getattr(model, "phrase_encoder", None)])
