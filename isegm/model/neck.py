"""SimpleFPN: one ViT feature map (stride 16) to four maps at strides 4, 8, 16 and 32."""
from typing import List, Sequence

import torch
from torch import nn


class SimpleFPN(nn.Module):
    """Transposed convolutions up, strided convolution down, each followed by GroupNorm(1) and GELU.

    Module indices inside each ``nn.Sequential`` follow the published checkpoints.
    """

    def __init__(self, in_dim: int = 768, out_dims: Sequence[int] = (128, 256, 512, 1024)):
        super().__init__()
        c4 = max(out_dims[0] * 2, in_dim // 2)
        self.down_4 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c4, 2, stride=2), nn.GroupNorm(1, c4), nn.GELU(),
            nn.ConvTranspose2d(c4, c4 // 2, 2, stride=2), nn.GroupNorm(1, c4 // 2),
            nn.Conv2d(c4 // 2, out_dims[0], 1), nn.GroupNorm(1, out_dims[0]), nn.GELU())
        c8 = max(out_dims[1], in_dim // 2)
        self.down_8 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c8, 2, stride=2), nn.GroupNorm(1, c8),
            nn.Conv2d(c8, out_dims[1], 1), nn.GroupNorm(1, out_dims[1]), nn.GELU())
        self.down_16 = nn.Sequential(
            nn.Conv2d(in_dim, out_dims[2], 1), nn.GroupNorm(1, out_dims[2]), nn.GELU())
        c32 = max(out_dims[3], in_dim * 2)
        self.down_32 = nn.Sequential(
            nn.Conv2d(in_dim, c32, 2, stride=2), nn.GroupNorm(1, c32),
            nn.Conv2d(c32, out_dims[3], 1), nn.GroupNorm(1, out_dims[3]), nn.GELU())

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """B x C x H x W -> [B x c0 x 4H x 4W, B x c1 x 2H x 2W, B x c2 x H x W, B x c3 x H/2 x W/2]."""
        return [self.down_4(x), self.down_8(x), self.down_16(x), self.down_32(x)]
