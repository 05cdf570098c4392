"""Click encoding: disks of a fixed radius around the positive and the negative clicks."""
import math

import torch


def click_disk_maps(points: torch.Tensor, height: int, width: int, radius: float) -> torch.Tensor:
    """Draw the clicks as binary disks.

    A pixel (i, j) belongs to the disk of click (y, x) when ``(i - y)^2 + (j - x)^2 <= radius^2`` in float32,
    which is the published model's rule (coordinates may be fractional after zoom-in).

    Args:
        points: B x 2N x 3 tensor of (y, x, click order); the first N rows are positive clicks, the last N
            negative; a row whose y and x are both negative is padding.
        height, width: size of the maps.
        radius: disk radius in pixels.
    Returns:
        B x 2 x H x W float32 tensor: channel 0 positive clicks, channel 1 negative clicks.
    """
    batch, num_rows, _ = points.shape
    num_per_polarity = num_rows // 2
    maps = torch.zeros(batch, 2, height, width, dtype=torch.bool, device=points.device)
    coords = points[..., :2].to(torch.float32)
    valid = coords.max(dim=-1).values >= 0
    radius_sq = torch.tensor(float(radius) ** 2, dtype=torch.float32)
    for b, row in valid.nonzero().tolist():
        y, x = coords[b, row]
        y_val, x_val = float(y), float(x)
        r0, r1 = max(math.floor(y_val - radius) - 1, 0), min(math.ceil(y_val + radius) + 2, height)
        c0, c1 = max(math.floor(x_val - radius) - 1, 0), min(math.ceil(x_val + radius) + 2, width)
        if r0 >= r1 or c0 >= c1:
            continue
        rows = torch.arange(r0, r1, dtype=torch.float32, device=points.device)[:, None]
        cols = torch.arange(c0, c1, dtype=torch.float32, device=points.device)[None, :]
        dist_sq = (rows - y) ** 2 + (cols - x) ** 2
        channel = 0 if row < num_per_polarity else 1
        maps[b, channel, r0:r1, c0:c1] |= dist_sq <= radius_sq
    return maps.to(torch.float32)
