import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import randomize_lora, tiny_config
from isegm.model import GraCoModel

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
