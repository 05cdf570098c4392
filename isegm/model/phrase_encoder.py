"""Phrase signal: a frozen CLIP ViT-B/32 text tower (open_clip) and a trainable projection to the ViT width."""
import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Dict, Optional, Union

import open_clip
import torch
from open_clip.model import _build_text_tower
from torch import nn

logger = logging.getLogger(__name__)

CLIP_MODEL = "ViT-B-32-quickgelu"  # OpenAI's ViT-B/32 uses QuickGELU
CLIP_WEIGHTS_ENV = "GRACO_CLIP_WEIGHTS"
DEFAULT_CLIP_WEIGHTS = Path("weights/clip/ViT-B-32.pt")
CLIP_URL = ("https://openaipublic.azureedge.net/clip/models/"
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
OPENAI_SHA256 = CLIP_URL.split("/")[-2]  # OpenAI names the folder after the file's SHA-256
TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


class PhraseEncoderUnavailable(RuntimeError):
    """The phrase signal was asked for but no CLIP weights were loaded."""


def resolve_clip_weights() -> Optional[Path]:
    """The default CLIP weights: ``$GRACO_CLIP_WEIGHTS``, else ``weights/clip/ViT-B-32.pt`` if present."""
    if os.environ.get(CLIP_WEIGHTS_ENV):
        return Path(os.environ[CLIP_WEIGHTS_ENV])
    return DEFAULT_CLIP_WEIGHTS if DEFAULT_CLIP_WEIGHTS.is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def read_clip_text_weights(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read the text-tower tensors (float32) of a CLIP ViT-B/32 file.

    Accepts OpenAI's TorchScript release ``ViT-B-32.pt`` (loading TorchScript runs the archive's TorchScript code, so
    only that exact file is accepted, recognised by its published SHA-256), a plain state dict saved with
    ``torch.save`` (read with ``weights_only=True``) or a ``.safetensors`` file, with or without a ``state_dict``
    wrapper.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CLIP weights not found at {path}: download OpenAI's ViT-B-32.pt "
            f"({CLIP_URL}) and put it at {DEFAULT_CLIP_WEIGHTS} or pass --clip-weights / ${CLIP_WEIGHTS_ENV}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        elif _is_torchscript(path):
            digest = _sha256(path)
            if digest != OPENAI_SHA256:
                raise ValueError(f"a TorchScript archive that is not OpenAI's ViT-B-32.pt release (sha256 {digest[:12]}..., "
                                 f"expected {OPENAI_SHA256[:12]}...); save other weights as a plain state dict "
                                 f"or .safetensors")
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
    except Exception as error:  # any reader failure means the file is not usable CLIP weights
        raise ValueError(f"{path}: not a readable CLIP weights file ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a CLIP state dict")
    text = {k: v.float() for k, v in state.items() if k.startswith(TEXT_KEYS)}
    if not text:
        raise ValueError(f"{path}: no CLIP text-tower weights (token_embedding, transformer, ...) in this file")
    return text


FEATURE_CACHE_SIZE = 4096


class PhraseEncoder(nn.Module):
    """Phrase -> C-dim embedding added to every ViT token.

    ``phrase2gra_proj`` (512 -> C) is part of the GraCo checkpoints; the CLIP text tower is frozen and loaded
    separately: now with :meth:`load_clip_weights`, or from ``clip_source`` on the first phrase.
    """

    def __init__(self, out_dim: int = 768, clip_dim: int = 512):
        super().__init__()
        self.phrase2gra_proj = nn.Linear(clip_dim, out_dim)
        self.text: Optional[nn.Module] = None
        self.clip_weights: Optional[Union[str, Path]] = None  # what the loaded text tower came from
        self.clip_source: Optional[Path] = None  # where to load it from on the first phrase
        self._features: Dict[bytes, torch.Tensor] = {}  # CLIP text features by token row (the tower is frozen)

    def ensure_loaded(self) -> None:
        """Load the CLIP text tower from ``clip_source`` if needed; :class:`PhraseEncoderUnavailable` says why not."""
        if self.text is not None:
            return
        if self.clip_source is None:
            raise PhraseEncoderUnavailable(
                f"the phrase signal needs CLIP ViT-B/32 weights: put OpenAI's ViT-B-32.pt at {DEFAULT_CLIP_WEIGHTS}, "
                f"or pass --clip-weights / set {CLIP_WEIGHTS_ENV}")
        try:
            self.load_clip_weights(self.clip_source)
        except (FileNotFoundError, ValueError, RuntimeError) as error:
            raise PhraseEncoderUnavailable(str(error).splitlines()[0]) from None

    def load_clip_weights(self, path: Union[str, Path]) -> None:
        """Build the CLIP ViT-B/32 text tower from ``path`` (see :func:`read_clip_text_weights`)."""
        self.load_clip_state(read_clip_text_weights(path), source=Path(path))

    def load_clip_state(self, state: Dict[str, torch.Tensor], source: Union[str, Path] = "state dict") -> None:
        """Build the CLIP ViT-B/32 text tower from text-tower tensors with OpenAI's names."""
        config = open_clip.get_model_config(CLIP_MODEL)
        text = _build_text_tower(config["embed_dim"], config["text_cfg"], quick_gelu=config["quick_gelu"])
        try:
            missing, _ = text.load_state_dict(state, strict=False)
        except RuntimeError as error:  # wrong shapes: another CLIP model
            raise ValueError(f"{source}: not CLIP ViT-B/32 text weights ({str(error).splitlines()[-1].strip()})") from None
        if missing:
            raise ValueError(f"{source}: CLIP text weights lack {len(missing)} tensors, e.g. {missing[0]}")
        text.requires_grad_(False)
        text.eval()
        self.text = text.to(self.phrase2gra_proj.weight.device)
        self._features.clear()
        self.clip_weights = source
        logger.info("loaded CLIP text weights from %s", source)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.text is not None:
            self.text.eval()  # frozen
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """B x 77 tokens -> B x C embeddings. The frozen tower's features are computed once per distinct phrase."""
        self.ensure_loaded()
        device = self.phrase2gra_proj.weight.device
        keys = [row.tobytes() for row in tokens.detach().cpu().numpy()]
        found = {k: self._features[k] for k in keys if k in self._features}
        new = list(dict.fromkeys(k for k in keys if k not in found))
        if new:
            rows = torch.stack([tokens[keys.index(k)] for k in new]).to(device)
            with torch.no_grad(), torch.autocast(device.type, enabled=False):  # cached features are float32
                computed = dict(zip(new, self.text(rows).float()))
            found.update(computed)
            if len(self._features) + len(new) > FEATURE_CACHE_SIZE:
                self._features.clear()
            self._features.update(computed)
        features = torch.stack([found[k].to(device) for k in keys])
        return self.phrase2gra_proj(features)
