"""Seeded random weights keyed by tensor name, for tests and benchmarks that need a reproducible model without
the real weights. A tensor's values depend only on its name, shape and the seed, not on the order of creation,
so two implementations with the same parameter names get the same weights."""
import re
import zlib
from typing import Dict, Optional, Sequence

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
    from ..model.checkpoint import to_published_state

    base_cfg = ModelConfig.from_dict({**cfg.to_dict(), "granularity": False, "phrase": False})
    shapes = {k: v.shape for k, v in to_published_state(GraCoModel(base_cfg).state_dict()).items()}
    return seeded_state_dict(shapes, seed)


# CLIP entries that OpenAI's release stores in float16 (matrices and biases of the linear layers)
_CLIP_FP16_ENTRY = re.compile(r"^text_projection$|\.(attn\.in_proj_|attn\.out_proj\.|mlp\.c_fc\.|mlp\.c_proj\.)")


def seeded_clip_text_state(seed: int = 0, fp16_like_release: bool = False) -> Dict[str, torch.Tensor]:
    """CLIP ViT-B/32 text-tower tensors (OpenAI names), seeded by name; with ``fp16_like_release`` the entries
    that the official release stores in float16 are rounded to float16 values, as any model built from that
    release sees them."""
    import open_clip
    from open_clip.model import _build_text_tower

    from ..model.phrase_encoder import CLIP_MODEL

    config = open_clip.get_model_config(CLIP_MODEL)
    text = _build_text_tower(config["embed_dim"], config["text_cfg"], quick_gelu=True)
    state = seeded_state_dict({k: v.shape for k, v in text.state_dict().items()}, seed)
    if fp16_like_release:
        state = {k: v.half().float() if _CLIP_FP16_ENTRY.search(k) else v for k, v in state.items()}
    return state


def build_seeded_model(cfg, lora_checkpoint=None, clip_text: bool = False, seed: int = 0,
                       overrides: Optional[Dict[str, float]] = None):
    """A GraCo model (eval mode) with a seeded base, the LoRA weights of ``lora_checkpoint`` (a published or
    project file; seeded when None) and, with ``clip_text``, a seeded CLIP text tower (float16-rounded like the
    release). ``overrides`` adds constants to base entries (published names), e.g. ``{"head.conv_seg.bias": -5}``
    to move the seeded model's logits away from saturation."""
    from ..model import GraCoModel
    from ..model.checkpoint import assign_weights, convert_published_state, read_checkpoint, to_published_state

    model = GraCoModel(cfg)
    keys = model.state_dict().keys()
    base = seeded_published_base(cfg, seed)
    for name, offset in (overrides or {}).items():
        base[name] = base[name] + offset
    sources = [("seeded base", convert_published_state(base, keys, cfg))]
    if lora_checkpoint is not None:
        state, _ = read_checkpoint(lora_checkpoint)
        state = convert_published_state(state, keys, cfg)
        sources.append((lora_checkpoint, state))
    else:
        trainable = to_published_state({k: v for k, v in model.state_dict().items()
                                        if k in model.trainable_parameters()})
        seeded = seeded_state_dict({k: v.shape for k, v in trainable.items()}, seed)
        sources.append(("seeded LoRA", convert_published_state(seeded, keys, cfg)))
    assign_weights(model, sources)
    if clip_text and model.phrase_encoder is not None:
        model.phrase_encoder.load_clip_state(seeded_clip_text_state(seed, fp16_like_release=True),
                                             source="seeded CLIP")
    model.requires_grad_(False)
    return model.eval()
