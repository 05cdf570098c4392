import pytest
import torch

from isegm.model.vit import from_windows, global_attention_blocks, to_windows, window_grid


@pytest.mark.parametrize("depth, expected", [
    (12, [5, 11]), (24, [5, 11, 17, 23]), (32, [7, 15, 23, 31]), (4, [0, 1, 2, 3]),
])
def test_global_attention_schedule(depth, expected):
    schedule = global_attention_blocks(depth)
    assert len(schedule) == depth
    assert [i for i, is_global in enumerate(schedule) if is_global] == expected


def test_depth_must_be_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        global_attention_blocks(10)


@pytest.mark.parametrize("grid, windows", [((28, 28), (2, 2)), ((42, 42), (3, 3)), ((28, 42), (2, 3)),
                                           ((14, 14), (1, 1)), ((7, 7), (1, 1))])
def test_window_grid(grid, windows):
    assert window_grid(grid, (16, 16)) == windows


def test_window_grid_rejects_uneven_split():
    with pytest.raises(ValueError, match="cannot be split into equal attention windows"):
        window_grid((31, 28), (16, 16))


def test_windows_are_224px_tiles_in_row_major_order():
    grid, windows = (28, 42), (2, 3)
    tokens = torch.arange(28 * 42, dtype=torch.float32).view(1, -1, 1)
    tiles = to_windows(tokens, grid, windows)
    assert tiles.shape == (6, 14 * 14, 1)
    index = torch.arange(28 * 42).view(28, 42)
    # window (row 1, column 2) holds rows 14..27 and columns 28..41, row-major
    assert torch.equal(tiles[1 * 3 + 2, :, 0].long(), index[14:28, 28:42].reshape(-1))
    assert torch.equal(from_windows(tiles, grid, windows), tokens)
