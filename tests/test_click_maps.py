import torch

from isegm.model.click_maps import click_disk_maps

PAD = (-1.0, -1.0, -1.0)


def test_disk_of_radius_5_has_81_pixels():
    points = torch.tensor([[[20.0, 30.0, 0.0], PAD]])  # one positive, no negative
    maps = click_disk_maps(points, 50, 60, radius=5)
    assert maps.shape == (1, 2, 50, 60)
    assert maps[0, 0].sum().item() == 81  # lattice points with dy^2 + dx^2 <= 25
    assert maps[0, 1].sum().item() == 0
    assert maps[0, 0, 20, 35] == 1 and maps[0, 0, 20, 36] == 0 and maps[0, 0, 24, 33] == 1


def test_negative_clicks_go_to_second_channel_and_fractional_centres():
    points = torch.tensor([[PAD, PAD, [10.5, 10.5, 0.0], [40.0, 40.0, 1.0]]])  # N=2: two negatives
    maps = click_disk_maps(points, 50, 60, radius=5)
    assert maps[0, 0].sum() == 0
    rows, cols = torch.meshgrid(torch.arange(50.0), torch.arange(60.0), indexing="ij")
    disk_a = (rows - 10.5) ** 2 + (cols - 10.5) ** 2 <= 25
    disk_b = (rows - 40) ** 2 + (cols - 40) ** 2 <= 25
    assert torch.equal(maps[0, 1].bool(), disk_a | disk_b)


def test_disks_are_clipped_at_the_border_and_padding_ignored():
    points = torch.tensor([[[0.0, 0.0, 0.0], PAD], [PAD, PAD]])
    maps = click_disk_maps(points, 20, 20, radius=5)
    assert maps[0, 0].sum().item() == 26  # the quarter disk (dy, dx >= 0) of radius 5
    assert maps[1].sum() == 0
