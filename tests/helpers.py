"""Shared test helpers: paths and a tiny GraCo-shaped model. Fixtures live in conftest.py."""
from pathlib import Path

import torch

from isegm.model import GraCoModel, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def tiny_config(**overrides) -> ModelConfig:
    """A small GraCo-shaped model (same structure, few channels) for fast tests."""
    values = dict(img_size=(224, 224), embed_dim=64, depth=4, num_heads=2, neck_out_dims=(16, 32, 64, 128),
                  head_channels=32)
    values.update(overrides)
    return ModelConfig(**values)


def randomize_lora(model: GraCoModel, seed: int = 0) -> None:
    """Give both LoRA branches non-zero, distinct weights (peft starts B at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_" in name or "gra_embed" in name or "phrase2gra_proj" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
