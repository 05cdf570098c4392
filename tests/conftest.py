import os
from pathlib import Path

import numpy as np
import pytest
import torch

from isegm.model import GraCoModel, ModelConfig

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
FIXTURES = Path(__file__).parent / "fixtures"


def _asset_dir(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("GRACO_REQUIRE_TEST_ASSETS"):
            pytest.fail(f"{variable} is not set but GRACO_REQUIRE_TEST_ASSETS is")
        pytest.skip(f"{variable} is not set: point it at the shared folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{variable}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def test_weights() -> Path:
    """Folder with GraCo_base_lora.pth (from $GRACO_TEST_WEIGHTS)."""
    return _asset_dir("GRACO_TEST_WEIGHTS")


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Folder with GrabCut, Berkeley and PascalPart (from $GRACO_TEST_DATA)."""
    return _asset_dir("GRACO_TEST_DATA")


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


@pytest.fixture
def tiny_model() -> GraCoModel:
    torch.manual_seed(0)
    model = GraCoModel(tiny_config())
    randomize_lora(model)
    return model.eval()


@pytest.fixture
def rgb_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.zeros((120, 160, 3), np.uint8)
    image[30:90, 40:120] = (200, 60, 40)
    return np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in __import__("sys").path:
    __import__("sys").path.insert(0, str(ROOT))
