"""Building an inference model from checkpoints (published or project layout)."""
import logging
from pathlib import Path
from typing import Optional, Union

import torch

from ..model import GraCoModel, ModelConfig
from ..model.phrase_encoder import resolve_clip_weights
from ..model.checkpoint import CheckpointError, assign_weights, convert_published_state, read_checkpoint

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]


def load_is_model(checkpoint: PathLike, device: Union[str, torch.device], eval_ritm: bool = False,
                  lora_checkpoint: Optional[PathLike] = None, clip_weights: Optional[PathLike] = None,
                  config: Optional[ModelConfig] = None) -> GraCoModel:
    """Build a model in eval mode, all parameters frozen.

    The architecture comes from the LoRA checkpoint's config when one is given (as in published evaluation),
    else from the base checkpoint's, unless ``config`` is given. The base checkpoint (a SimpleClick ``.pth``,
    or a full project checkpoint) supplies the frozen weights, the LoRA checkpoint the LoRA branches, the
    granularity embedding and the phrase projection. CLIP text weights are loaded from ``clip_weights`` now, or else
    from ``$GRACO_CLIP_WEIGHTS`` or ``weights/clip/ViT-B-32.pt`` on the first phrase; without them only the phrase
    signal is unavailable, with a message naming the missing file.

    Raises:
        CheckpointError: a file is missing, unsafe, of another architecture, or lacks weights the model needs.
    """
    if eval_ritm:
        raise CheckpointError(f"{checkpoint}: RITM (HRNet) models are not supported, only plain-ViT models")
    base_state, base_cfg = read_checkpoint(checkpoint)
    sources = [(checkpoint, base_state)]
    cfg = base_cfg
    if lora_checkpoint is not None:
        lora_state, lora_cfg = read_checkpoint(lora_checkpoint)
        sources.append((lora_checkpoint, lora_state))
        cfg = lora_cfg or cfg
    cfg = config or cfg
    if cfg is None:
        raise CheckpointError(f"{lora_checkpoint or checkpoint}: has no model config; pass config=")

    config_source = lora_checkpoint or checkpoint
    try:
        model = GraCoModel(cfg)
        model_keys = model.state_dict().keys()
        converted = [(path, convert_published_state(state, model_keys, cfg)) for path, state in sources]
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{config_source}: {error}") from None
    assign_weights(model, converted)

    if model.phrase_encoder is not None:
        if clip_weights is not None:  # asked for explicitly: load now, so that a bad file is reported here
            try:
                model.phrase_encoder.load_clip_weights(clip_weights)
            except (FileNotFoundError, ValueError) as error:
                raise CheckpointError(str(error)) from None
        else:  # $GRACO_CLIP_WEIGHTS or weights/clip/ViT-B-32.pt, loaded on the first phrase
            model.phrase_encoder.clip_source = resolve_clip_weights()

    model.requires_grad_(False)
    model.to(device)
    model.eval()
    return model
