"""Plain ViT backbone with click tokens, granularity and phrase embeddings, and windowed attention."""
from typing import List, Optional, Tuple

import torch
from timm.layers import Mlp, PatchEmbed, resample_abs_pos_embed
from torch import nn

from . import fused
from .attention import Attention
from .granularity import NUM_GRANULARITY_LEVELS, granularity_index

WINDOW_PIXELS = 224  # attention windows cover the 224-px pretraining size
RANDOM_SPLIT_TOKENS = 224 * 224  # published chunk of the random split (tokens, so one chunk below 3584 px square)


def global_attention_blocks(depth: int) -> List[bool]:
    """Which blocks attend globally (True) rather than within windows.

    Blocks are taken in groups of ``depth // 4`` (6 for depth 12); the last block of each group is global.
    """
    if depth % 4:
        raise ValueError(f"ViT depth must be a multiple of 4, got {depth}")
    group = 6 if depth == 12 else depth // 4
    return [(i + 1) % group == 0 for i in range(depth)]


def window_grid(grid: Tuple[int, int], patch_size: Tuple[int, int]) -> Tuple[int, int]:
    """Number of attention windows along each axis for a token grid."""
    counts = []
    for size, patch in zip(grid, patch_size):
        count = max(size // (WINDOW_PIXELS // patch), 1)
        if size % count:
            raise ValueError(
                f"a {grid[0]}x{grid[1]} token grid cannot be split into equal attention windows of about "
                f"{WINDOW_PIXELS} px; use an input size such as 448 or 672")
        counts.append(count)
    return counts[0], counts[1]


def to_windows(x: torch.Tensor, grid: Tuple[int, int], windows: Tuple[int, int]) -> torch.Tensor:
    """B x (H*W) x C tokens -> (B*wh*ww) x (H/wh * W/ww) x C windows, each window row-major."""
    batch, _, dim = x.shape
    (height, width), (wh, ww) = grid, windows
    x = x.view(batch, wh, height // wh, ww, width // ww, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch * wh * ww, (height // wh) * (width // ww), dim)


def from_windows(x: torch.Tensor, grid: Tuple[int, int], windows: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_windows`."""
    (height, width), (wh, ww) = grid, windows
    dim = x.shape[-1]
    batch = x.shape[0] // (wh * ww)
    x = x.view(batch, wh, ww, height // wh, width // ww, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, height * width, dim)


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, GELU MLP)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.fused_cpu(x):
            return self._forward_fused(x)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """bfloat16 CPU inference (see :mod:`.fused`): the residual adds and GELU fused into the products."""
        x = self.attn(self.norm1(x), residual=x)
        hidden = fused.linear(self.norm2(x), self.mlp.fc1.weight, self.mlp.fc1.bias, gelu=True)
        return fused.linear(hidden, self.mlp.fc2.weight, self.mlp.fc2.bias, residual=x)


class VisionTransformer(nn.Module):
    """MAE-style ViT over image patches, with extra per-token inputs added before the position embedding.

    The position embedding keeps the (unused) class-token slot of the pretrained checkpoints and is resampled
    bicubically for token grids other than the training one.
    """

    def __init__(self, img_size: Tuple[int, int] = (448, 448), patch_size: Tuple[int, int] = (16, 16),
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, granularity: bool = False, random_split: bool = False):
        super().__init__()
        self.random_split = random_split
        self.patch_size = tuple(patch_size)
        self.patch_embed = PatchEmbed(img_size=tuple(img_size), patch_size=self.patch_size, in_chans=3,
                                      embed_dim=embed_dim, strict_img_size=False)
        self.grid_size = tuple(self.patch_embed.grid_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth))
        self.global_blocks = global_attention_blocks(depth)
        self.gra_embed = nn.Embedding(NUM_GRANULARITY_LEVELS, embed_dim) if granularity else None
        self._pos_cache = None

    def position_embedding(self, grid: Tuple[int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """1 x (H*W) x C position embedding for a token grid (class slot dropped), in ``dtype``.

        Without gradients the resampled (or converted) embedding is kept until the grid, the dtype or the
        parameter changes, so that the clicks of a session do not resample it again.
        """
        if torch.is_grad_enabled():
            pos = self.pos_embed[:, 1:] if grid == self.grid_size else self._resample_pos_embed(grid)
            return pos.to(dtype)
        if grid == self.grid_size and dtype == self.pos_embed.dtype:
            return self.pos_embed[:, 1:]
        key = (grid, dtype, self.pos_embed._version, self.pos_embed.data_ptr())
        if self._pos_cache is None or self._pos_cache[0] != key or self._pos_cache[1] is not self.pos_embed:
            pos = self.pos_embed[:, 1:] if grid == self.grid_size else self._resample_pos_embed(grid)
            self._pos_cache = (key, self.pos_embed, pos.to(dtype))
        return self._pos_cache[2]

    def _resample_pos_embed(self, grid: Tuple[int, int]) -> torch.Tensor:
        return resample_abs_pos_embed(self.pos_embed[:, 1:], new_size=list(grid), old_size=list(self.grid_size),
                                      num_prefix_tokens=0, interpolation="bicubic", antialias=False)

    def forward(self, image: torch.Tensor, extra_tokens: torch.Tensor, gra: Optional[torch.Tensor] = None,
                phrase_tokens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Encode an image.

        Args:
            image: B x 3 x H x W normalised image, H and W multiples of the patch size.
            extra_tokens: B x N x C click tokens added to the patch tokens.
            gra: B granularities in [0, 1], or None.
            phrase_tokens: B x C phrase embeddings, or None.
        Returns:
            B x N x C tokens and the token grid (H/16, W/16).
        """
        x = self.patch_embed(image)
        grid = (image.shape[-2] // self.patch_size[0], image.shape[-1] // self.patch_size[1])
        x = x + extra_tokens
        if gra is not None:
            if self.gra_embed is None:
                raise ValueError("this model has no granularity input (it is not a GraCo model)")
            x = x + self.gra_embed(granularity_index(gra.reshape(-1))).unsqueeze(1)
        if phrase_tokens is not None:
            x = x + phrase_tokens.unsqueeze(1).to(x.dtype)
        x = x + self.position_embedding(grid, x.dtype)  # the tokens' dtype: float32, or bfloat16 (precision)

        if self.random_split:
            return self._random_split_blocks(x), grid
        windows = window_grid(grid, self.patch_size)
        in_windows = False
        for block, is_global in zip(self.blocks, self.global_blocks):
            if is_global == in_windows:
                x = from_windows(x, grid, windows) if in_windows else to_windows(x, grid, windows)
                in_windows = not in_windows
            x = block(x)
        if in_windows:
            x = from_windows(x, grid, windows)
        return x, grid

    def _random_split_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """The published ``--random-split``: before every block the tokens of each image are shuffled (a fresh
        ``torch.rand`` permutation), cut into chunks of ``RANDOM_SPLIT_TOKENS`` tokens (the last chunk takes the
        rest) that attend separately, and put back in place. B x N x C -> B x N x C."""
        batch, count, channels = x.shape
        chunks = max(1, count // RANDOM_SPLIT_TOKENS)
        for block in self.blocks:
            order = torch.argsort(torch.rand(batch, count, device=x.device), dim=1)
            restore = torch.argsort(order, dim=1)
            x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, channels))
            bounds = [i * RANDOM_SPLIT_TOKENS for i in range(chunks)] + [count]
            x = torch.cat([block(x[:, start:end]) for start, end in zip(bounds[:-1], bounds[1:])], dim=1)
            x = torch.gather(x, 1, restore.unsqueeze(-1).expand(-1, -1, channels))
        return x
