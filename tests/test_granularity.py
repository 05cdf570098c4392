import math

import pytest
import torch

from isegm.model.granularity import granularity_index
from isegm.signals import check_granularity


@pytest.mark.parametrize("value, index", [
    (0.0, 0), (0.05, 0), (0.1, 0), (0.15, 0), (0.2, 1), (0.3, 2), (0.5, 4), (0.7, 6), (0.95, 8), (1.0, 9),
    # float32 rounding: these land in the bin above the one float64 arithmetic would give
    (0.299999999, 2), (0.699999999, 6), (0.999999999, 9),
    # just below a bin edge in float32
    (0.29999998, 1), (0.19999998, 0),
])
def test_granularity_index_uses_float32_truncation(value, index):
    assert granularity_index(torch.tensor([value], dtype=torch.float64)).item() == index


@pytest.mark.parametrize("value, float64_index", [(0.299999999, 1), (0.699999999, 5), (0.999999999, 8)])
def test_float64_input_is_binned_in_float32(value, float64_index):
    # the same granularity as a float64 or a float32 tensor lands in the same (float32) bin, not in the bin that
    # float64 arithmetic gives
    as_float64 = granularity_index(torch.tensor([value], dtype=torch.float64)).item()
    assert as_float64 == granularity_index(torch.tensor([value], dtype=torch.float32)).item()
    assert as_float64 != float64_index == math.trunc(value * 10 - 1)


def test_granularity_index_shape_and_dtype():
    out = granularity_index(torch.tensor([[0.1], [1.0]]))
    assert out.shape == (2, 1) and out.dtype == torch.int64
    assert out.flatten().tolist() == [0, 9]


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf"), "abc", None])
def test_check_granularity_rejects(bad):
    with pytest.raises(ValueError, match="granularity must be a number in \\[0, 1\\]"):
        check_granularity(bad)


def test_check_granularity_accepts_numbers():
    assert check_granularity("0.5") == 0.5
    assert check_granularity(1) == 1.0
