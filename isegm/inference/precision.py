"""Inference precision: float32, bfloat16, and the automatic choice between them.

The model is never modified. While a predictor runs the model in ``bf16``, :func:`reduced_precision` intercepts the
linear, convolution, embedding and normalisation calls of the ViT, the neck and the head (a ``TorchFunctionMode``)
and computes them from bfloat16 weights converted once and kept beside the model (a weak cache,
:mod:`isegm.model.fused`: it goes away with the model, and a weight changed in place is converted again). The activations then stay bfloat16 from the
patch embeddings to the head: products accumulate in float32 inside the kernels, LayerNorm and GroupNorm compute
their statistics in float32 (with the float32 affine weights) and return bfloat16, GELU and fused attention run on
bfloat16, and the residual stream is bfloat16. On a CPU the ViT blocks take oneDNN linear layers on packed
bfloat16 weights with the bias, GELU and residual adds fused into the products (:mod:`isegm.model.fused`). The click maps, the final logits (resized in float32), sigmoid and
zoom-in threshold stay float32, and the phrase encoder (CLIP text tower and its projection) always runs in float32.

* ``auto``: ``bf16`` where the device multiplies bfloat16 natively, ``fp32`` otherwise. On a CUDA device that is
  compute capability 8.0 or newer (Ampere on; ``torch.cuda.is_bf16_supported`` also counts emulation, which is
  slow on a V100 or T4); on a CPU, AVX-512-BF16 or AMX-BF16 and a short start-up measurement showing bfloat16
  products to be faster. The choice and its reason are logged once per process and device.

A split-bfloat16 mode (``bf16x3``: three bfloat16 products per float32 product) was measured slower than ``fp32``
on every CPU tried and was removed (README, "Precision modes").
"""
import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..model.fused import bf16_weight

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")  # what a predictor and the command-line tools accept
TOOL_PRECISIONS = PRECISIONS
BF16 = torch.bfloat16
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512-BF16 / AMX; Arm BF16 (Features line)
AUTO_MIN_SPEEDUP = 1.3  # bfloat16 products must beat float32 by this factor for `auto` to take them on a CPU
CUDA_NATIVE_BF16 = (8, 0)  # compute capability from which CUDA devices multiply bfloat16 in hardware


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


def cuda_device(device: torch.device) -> torch.device:
    """``device`` with its index filled in (``cuda`` means the current device)."""
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def bf16_matmul_support(device: torch.device) -> Tuple[bool, str]:
    """Whether ``device`` multiplies bfloat16 matrices natively, and what that was decided from."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        native = (major, minor) >= CUDA_NATIVE_BF16
        need = ".".join(map(str, CUDA_NATIVE_BF16))
        return native, (f"{name} (compute capability {major}.{minor}) "
                        f"{'multiplies bfloat16 natively' if native else f'would emulate bfloat16 (native from {need})'}")
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
                if k:  # the first round warms up
                    best[i] = min(best[i], time.perf_counter() - start)
            if k and time.perf_counter() > deadline:
                break
    return best[0] / best[1]


@functools.lru_cache(maxsize=None)
def choose_precision(device: torch.device) -> str:
    """What ``auto`` means on ``device`` (decided once per process and device; CUDA devices by index)."""
    supported, reason = bf16_matmul_support(device)
    if not supported:
        logger.info("precision auto -> fp32 on %s: %s", device, reason)
        return "fp32"
    if device.type != "cpu":
        logger.info("precision auto -> bf16 on %s: %s", device, reason)
        return "bf16"
    speedup = measure_bf16_speedup(device)
    choice = "bf16" if speedup >= AUTO_MIN_SPEEDUP else "fp32"
    logger.info("precision auto -> %s on cpu: %s, bfloat16 products %.1fx as fast as float32 (bf16 from %.1fx)",
                choice, reason, speedup, AUTO_MIN_SPEEDUP)
    return choice


def resolve_precision(precision: str, device: Union[str, torch.device]) -> str:
    """``precision`` checked, with ``auto`` replaced by the choice for ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    return choose_precision(cuda_device(device) if device.type == "cuda" else device)


# ----- the interception ---------------------------------------------------------------------------------------------
class BFloat16Compute(TorchFunctionMode):
    """Run a model's products, embeddings and norms on bfloat16 activations (see the module docstring).

    Weights of ``fp32_modules`` (and views of them) are left alone: those calls run as called, in float32.
    """

    def __init__(self, fp32_modules=()):
        super().__init__()
        self.fp32_modules = [m for m in fp32_modules if m is not None]
        self._fp32_ids = None

    def _converts(self, weight: torch.Tensor) -> bool:
        if weight.dtype != torch.float32:
            return False
        if self._fp32_ids is None:  # computed on first use: the CLIP tower may be loaded during the forward
            self._fp32_ids = {id(t) for m in self.fp32_modules for t in (*m.parameters(), *m.buffers())}
        return id(weight) not in self._fp32_ids and id(weight._base) not in self._fp32_ids

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _PRODUCTS:  # F.linear / conv2d / conv_transpose2d(input, weight, bias, *settings)
            x, weight, *rest = args
            if not self._converts(weight) or isinstance(kwargs.get("padding"), str):
                return func(*args, **kwargs)
            bias = rest.pop(0) if rest else kwargs.pop("bias", None)
            bias = None if bias is None else bf16_weight(bias)
            return func(x.to(BF16), bf16_weight(weight), bias, *rest, **kwargs)
        if func is F.embedding and self._converts(args[1]):
            return func(args[0], bf16_weight(args[1]), *args[2:], **kwargs)
        # everything else runs as called: LayerNorm and GroupNorm take the bfloat16 activations with their float32
        # weights (float32 statistics, bfloat16 result), GELU, adds and attention stay in bfloat16
        return func(*args, **kwargs)


_PRODUCTS = (F.linear, F.conv2d, F.conv_transpose2d)


def reduced_precision(model: nn.Module, precision: str) -> contextlib.AbstractContextManager:
    """Context in which ``model`` runs in ``precision`` (``fp32``: unchanged)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"reduced_precision takes fp32 or bf16, got {precision!r} (resolve 'auto' first)")
    return BFloat16Compute(fp32_modules=[getattr(model, "phrase_encoder", None)])
