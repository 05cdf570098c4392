"""The GraCo model: SimpleClick (ViT + SimpleFPN + head) with granularity and phrase control signals."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import nn

from .click_maps import click_disk_maps
from .config import ModelConfig
from ..signals import PHRASE, SLIDER
from .head import SegmentationHead
from .lora import add_lora_branches, select_branch
from .neck import SimpleFPN
from .phrase_encoder import PhraseEncoder
from .vit import VisionTransformer


def signal_of_parameter(name: str) -> Optional[str]:
    """The control signal a parameter serves, by its name: ``slider`` (the slider LoRA branch and the granularity
    embedding), ``phrase`` (the phrase LoRA branch and the phrase projection), or None (the SimpleClick base)."""
    if f".lora_A.{SLIDER}." in name or f".lora_B.{SLIDER}." in name or "gra_embed" in name:
        return SLIDER
    if f".lora_A.{PHRASE}." in name or f".lora_B.{PHRASE}." in name or "phrase2gra_proj" in name:
        return PHRASE
    return None


class GraCoModel(nn.Module):
    """Click-based segmentation with an optional granularity (slider) or phrase signal.

    Inputs follow the published interface: ``forward(image, points, gra=None, text=None)`` with

    * image: B x 4 x H x W, RGB in [0, 1] plus the previous probability map (B x 3 x H x W without it);
    * points: B x 2N x 3 clicks (y, x, order), first N positive, last N negative, (-1, -1, -1) padding;
    * gra: B granularities in [0, 1] (any shape with B elements, or one for the batch), or None; the values are
      not checked here (no host sync): callers go through the predictor, which checks them;
    * text: B x 77 CLIP tokens, or None.

    It returns ``{'instances': B x 1 x H x W logits, 'instances_aux': None}``. With a granularity or with no signal
    the slider LoRA branch is active, with a phrase the phrase branch; the branches never share weights.
    With ``cfg.granularity`` and ``cfg.phrase`` both False this is a plain SimpleClick model.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.with_prev_mask = cfg.with_prev_mask
        self.register_buffer("norm_mean", torch.tensor(cfg.norm_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("norm_std", torch.tensor(cfg.norm_std).view(1, 3, 1, 1), persistent=False)
        self.patch_embed_coords = PatchEmbed(img_size=cfg.img_size, patch_size=cfg.patch_size,
                                             in_chans=3 if cfg.with_prev_mask else 2, embed_dim=cfg.embed_dim,
                                             strict_img_size=False)
        self.backbone = VisionTransformer(img_size=cfg.img_size, patch_size=cfg.patch_size,
                                          embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                                          mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                                          granularity=cfg.granularity, random_split=cfg.random_split)
        self.phrase_encoder = PhraseEncoder(cfg.embed_dim, cfg.clip_dim) if cfg.phrase else None
        self.neck = SimpleFPN(cfg.embed_dim, cfg.neck_out_dims)
        self.head = SegmentationHead(cfg.neck_out_dims, cfg.head_channels, dropout=cfg.head_dropout,
                                     upsample=cfg.upsample)
        self.lora_trainable = False
        self._branch = None
        if cfg.has_lora:
            add_lora_branches(self.backbone, cfg.lora_rank, cfg.lora_alpha)
            self._branch = SLIDER

    def set_branch(self, branch: str) -> None:
        """Activate the slider or the phrase LoRA branch (trainable only when ``lora_trainable`` is set)."""
        if branch != self._branch:
            select_branch(self.backbone, branch, trainable=self.lora_trainable)
            self._branch = branch

    def set_lora_trainable(self, trainable: bool) -> None:
        """Let the active LoRA branch (chosen by each forward's signal) receive gradients, or freeze it."""
        self.lora_trainable = trainable
        if self._branch is not None:
            select_branch(self.backbone, self._branch, trainable=trainable)

    def trainable_parameters(self) -> Dict[str, nn.Parameter]:
        """The parameters GraCo learns: both LoRA branches, the granularity embedding, the phrase projection."""
        return {name: p for name, p in self.named_parameters() if signal_of_parameter(name) is not None}

    def forward(self, image: torch.Tensor, points: torch.Tensor, gra: Optional[torch.Tensor] = None,
                text: Optional[torch.Tensor] = None) -> Dict[str, Optional[torch.Tensor]]:
        if gra is not None and text is not None:
            raise ValueError("give a granularity or a phrase, not both")
        expected_channels = 4 if self.with_prev_mask else 3
        if image.ndim != 4 or image.shape[1] != expected_channels:
            raise ValueError(f"expected a B x {expected_channels} x H x W input, got {tuple(image.shape)}")
        if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] % 2:
            raise ValueError(f"expected B x 2N x 3 clicks, got {tuple(points.shape)}")
        rgb = (image[:, :3] - self.norm_mean) / self.norm_std
        clicks = click_disk_maps(points, image.shape[2], image.shape[3], self.cfg.norm_radius).to(image.dtype)
        coord_features = torch.cat((image[:, 3:], clicks), dim=1) if self.with_prev_mask else clicks
        click_tokens = self.patch_embed_coords(coord_features)

        phrase_tokens = None
        if text is not None:
            if self.phrase_encoder is None:
                raise ValueError("this model has no phrase input")
            phrase_tokens = self.phrase_encoder(text)
            if phrase_tokens.shape[0] != image.shape[0]:
                phrase_tokens = phrase_tokens.expand(image.shape[0], -1)
            self.set_branch(PHRASE)
        elif self.cfg.has_lora:
            self.set_branch(SLIDER)
        if gra is not None:
            gra = torch.as_tensor(gra, dtype=torch.float32, device=image.device).reshape(-1)
            if gra.numel() == 1:
                gra = gra.expand(image.shape[0])
            elif gra.numel() != image.shape[0]:
                raise ValueError(f"{gra.numel()} granularities for a batch of {image.shape[0]} images")

        tokens, grid = self.backbone(rgb, click_tokens, gra=gra, phrase_tokens=phrase_tokens)
        features = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
        logits = self.head(self.neck(features)).float()  # resized in float32 whatever the products ran in
        logits = F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=True)
        return {"instances": logits, "instances_aux": None}
