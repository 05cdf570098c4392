"""Seeded random weights keyed by tensor name, for tests and benchmarks that need a reproducible model without
the real weights. A tensor's values depend only on its name, shape and the seed, not on the order of creation,
so two implementations with the same parameter names get the same weights."""
import zlib
from typing import Dict, Sequence

import torch


def seeded_tensor(name: str, shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Matrices: normal / sqrt(fan_in); 1-D weights (norms): 1 + 0.1 normal; everything else: 0.02 normal."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    shape = tuple(shape)
    values = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) >= 2:
        fan_in = 1
        for size in (shape[1:] if shape[0] > 1 else shape[-1:]):
            fan_in *= size
        return values * fan_in ** -0.5
    if name.endswith("weight"):
        return 1.0 + 0.1 * values
    return 0.02 * values


def seeded_state_dict(shapes: Dict[str, Sequence[int]], seed: int = 0) -> Dict[str, torch.Tensor]:
    return {name: seeded_tensor(name, shape, seed) for name, shape in shapes.items()}


def seeded_published_base(cfg, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A SimpleClick base state (published parameter names) for the architecture of ``cfg``, seeded by name."""
    from ..model import GraCoModel
    from ..model.config import ModelConfig
    from .checkpoint import to_published_state

    base_cfg = ModelConfig.from_dict({**cfg.to_dict(), "granularity": False, "phrase": False})
    shapes = {k: v.shape for k, v in to_published_state(GraCoModel(base_cfg).state_dict()).items()}
    return seeded_state_dict(shapes, seed)


def seeded_clip_text_state(seed: int = 0) -> Dict[str, torch.Tensor]:
    """CLIP ViT-B/32 text-tower tensors (OpenAI names), seeded by name."""
    import open_clip
    from open_clip.model import _build_text_tower

    from ..model.phrase_encoder import CLIP_MODEL

    config = open_clip.get_model_config(CLIP_MODEL)
    text = _build_text_tower(config["embed_dim"], config["text_cfg"], quick_gelu=True)
    return seeded_state_dict({k: v.shape for k, v in text.state_dict().items()}, seed)
