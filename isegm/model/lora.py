"""The two LoRA branches (slider and phrase) on the q and v projections, built with peft.

Each attention layer has separate ``q``, ``k`` and ``v`` linears; peft wraps ``q`` and ``v`` with two named
adapters, so that the k projection is never adapted. The published checkpoints store each branch as one pair of
matrices on the fused qkv linear; the functions here convert between that layout and the peft parameters.
"""
import warnings
from typing import Dict

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import set_adapter
from torch import nn

from ..signals import PHRASE, SLIDER

BRANCHES = (SLIDER, PHRASE)
# published per-branch parameter names on the fused qkv linear
PUBLISHED_BRANCH_KEYS = {SLIDER: ("lora_A", "lora_B"), PHRASE: ("lora_A2", "lora_B2")}


def add_lora_branches(module: nn.Module, rank: int, alpha: float) -> None:
    """Wrap every ``q`` and ``v`` linear under ``module`` with the slider and phrase adapters (A random, B zero)."""
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["q", "v"], bias="none")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*peft_config.*")
        for branch in BRANCHES:
            inject_adapter_in_model(config, module, adapter_name=branch)
    select_branch(module, SLIDER, trainable=False)


def select_branch(module: nn.Module, branch: str, trainable: bool) -> None:
    """Make ``branch`` the active adapter of every LoRA layer under ``module``; only it may train."""
    set_adapter(module, branch, inference_mode=not trainable)


def published_to_peft(state: Dict[str, torch.Tensor], embed_dim: int, rank: int) -> Dict[str, torch.Tensor]:
    """Convert published fused-qkv LoRA entries to peft parameter names; other entries pass through.

    Published layout per block and branch: ``lora_A`` (2r x C; rows 0..r-1 for q, r..2r-1 for v) and ``lora_B``
    (2C x r; rows 0..C-1 for q, C..2C-1 for v).
    """
    out = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".qkv.")
        branch = next((b for b, names in PUBLISHED_BRANCH_KEYS.items() if name in names), None)
        if not _ or branch is None:
            out[key] = value
            continue
        is_a = name == PUBLISHED_BRANCH_KEYS[branch][0]
        split = rank if is_a else embed_dim
        expected = (2 * rank, embed_dim) if is_a else (2 * embed_dim, rank)
        if tuple(value.shape) != expected:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, expected {expected}")
        letter = "A" if is_a else "B"
        out[f"{prefix}.q.lora_{letter}.{branch}.weight"] = value[:split].clone()
        out[f"{prefix}.v.lora_{letter}.{branch}.weight"] = value[split:].clone()
    return out


def peft_to_published(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`published_to_peft` for the LoRA entries; other entries pass through."""
    out = {}
    for key, value in state.items():
        for branch, (name_a, name_b) in PUBLISHED_BRANCH_KEYS.items():
            for letter, name in (("A", name_a), ("B", name_b)):
                if key.endswith(f".q.lora_{letter}.{branch}.weight"):
                    prefix = key[: -len(f".q.lora_{letter}.{branch}.weight")]
                    v_value = state[f"{prefix}.v.lora_{letter}.{branch}.weight"]
                    out[f"{prefix}.qkv.{name}"] = torch.cat([value, v_value], dim=0)
        if ".lora_" not in key:
            out[key] = value
    return out
