"""Segmentation head: fuse the four FPN maps at stride 4 and predict one logit per pixel."""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLE_FACTORS = {"x1": 1, "x2": 2, "x4": 4}


class ConvReLU(nn.Module):
    """1x1 convolution with bias, then ReLU (parameter names ``conv.weight``/``conv.bias``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def _up_block(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), nn.GroupNorm(1, channels // 2),
        nn.Conv2d(channels // 2, channels // 2, 1), nn.GroupNorm(1, channels // 2), nn.GELU())


class SegmentationHead(nn.Module):
    """Per-scale 1x1 conv + ReLU, bilinear resize to the finest map, concat, 1x1 fusion conv + ReLU,
    optional x2/x4 learned upsampling, dropout, 1x1 conv to ``num_classes`` logits.
    """

    def __init__(self, in_channels: Sequence[int] = (128, 256, 512, 1024), fused_channels: int = 256,
                 num_classes: int = 1, dropout: float = 0.1, upsample: str = "x1"):
        super().__init__()
        if upsample not in UPSAMPLE_FACTORS:
            raise ValueError(f"upsample must be one of {sorted(UPSAMPLE_FACTORS)}, got {upsample!r}")
        self.upsample = upsample
        self.convs = nn.ModuleList(ConvReLU(c, fused_channels) for c in in_channels)
        self.fusion_conv = ConvReLU(fused_channels * len(in_channels), fused_channels)
        channels = fused_channels
        if UPSAMPLE_FACTORS[upsample] >= 2:
            self.up_conv1 = _up_block(channels)
            channels //= 2
        if UPSAMPLE_FACTORS[upsample] >= 4:
            self.up_conv2 = _up_block(channels)
            channels //= 2
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Four maps, finest first -> B x num_classes x H0 x W0 logits (H0 x W0: finest size times upsample).

        The fusion conv acts on the concatenation of the resized maps; being linear per pixel, it is applied to
        each coarse map before its (linear) bilinear resize, which gives the same result with far less work than
        convolving the full-resolution concatenation.
        """
        size = features[0].shape[-2:]
        fusion = self.fusion_conv.conv
        weights = fusion.weight.split(fusion.weight.shape[1] // len(self.convs), dim=1)
        out = None
        for conv, weight, x in zip(self.convs, weights, features):
            y = F.conv2d(conv(x), weight)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        out = F.relu(out + fusion.bias.to(out.dtype).view(1, -1, 1, 1))  # in the maps' dtype (bf16 precision)
        if self.upsample != "x1":
            out = self.up_conv1(out)
        if self.upsample == "x4":
            out = self.up_conv2(out)
        return self.conv_seg(self.dropout(out))
