"""Reading and writing checkpoints.

* Published layout (SimpleClick and GraCo ``.pth``): ``torch.save({'state_dict', 'config'})`` whose config may
  pickle objects of the published ``isegm`` package. It is read with ``torch.load(weights_only=True)``: classes of
  that package become inert placeholders, anything else a pickle asks for is refused before unpickling starts.
* Project layout: ``NAME.safetensors`` (tensors) next to ``NAME.json`` (``{"format", "model", "contents"}``).

Every problem is raised as :class:`CheckpointError` with one line naming the file.
"""
import json
import re
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

import torch
from safetensors.torch import load_file, save_file

from ..utils.files import atomic_write
from .config import ModelConfig, config_from_published, config_to_published
from .lora import peft_to_published, published_to_peft

PathLike = Union[str, Path]
PROJECT_FORMAT = "graco-checkpoint/1"
PUBLISHED_PACKAGE = "isegm."
# entries of published checkpoints that this model does not use
UNUSED_PUBLISHED_PREFIXES = ("backbone.cls_token", "backbone.fc_norm.", "backbone.head.", "backbone.pre_logits.",
                             "phrase_encoder.model.", "head.up_conv1.", "head.up_conv2.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the file."""


def _placeholder(qualified_name: str) -> type:
    """An inert class standing in for a published-package class (its pickled state is kept as attributes)."""
    module, _, name = qualified_name.rpartition(".")

    def setstate(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})

    return type(name, (), {"__module__": module, "__qualname__": name,
                           "__init__": lambda self, *args, **kwargs: None, "__setstate__": setstate})


def read_published_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Optional[dict]]:
    """Return ``(state_dict, config)`` of a published-layout file without running any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a torch.save zip archive)")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({error})") from None
    foreign = [name for name in needed if not name.startswith(PUBLISHED_PACKAGE)]
    if foreign:
        raise CheckpointError(f"{path}: refused, its pickle would call {', '.join(foreign)}, which no checkpoint needs")
    try:
        with torch.serialization.safe_globals([_placeholder(name) for name in needed]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: could not be read safely ({str(error).splitlines()[0]})") from None
    if isinstance(content, dict) and "state_dict" in content:
        state, config = content["state_dict"], content.get("config")
    elif isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        state, config = content, None
    else:
        raise CheckpointError(f"{path}: no 'state_dict' in this file, it is not a model checkpoint")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: its 'state_dict' is not a mapping of names to tensors")
    return dict(state), config


def read_project_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], ModelConfig, dict]:
    """Return ``(state_dict, model_config, metadata)`` of a ``.safetensors`` + ``.json`` checkpoint."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: its config {meta_path.name} is missing beside it")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = ModelConfig.from_dict(meta["model"])
        state = load_file(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None
    if meta.get("format") != PROJECT_FORMAT:
        raise CheckpointError(f"{meta_path}: unknown format {meta.get('format')!r}, expected {PROJECT_FORMAT}")
    return state, cfg, meta


def read_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Optional[ModelConfig]]:
    """Read either layout; the state uses this project's parameter names only for project files.

    Returns ``(state, config)`` where ``config`` is None for a published file without a usable config.
    For published files the state keeps the published names; see :func:`convert_published_state`.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state, cfg, _ = read_project_checkpoint(path)
        return state, cfg
    state, config = read_published_checkpoint(path)
    if config is None:
        return state, None
    try:
        return state, config_from_published(config)
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: {error}") from None


def convert_published_state(state: Dict[str, torch.Tensor], model_keys: Iterable[str], cfg: ModelConfig
                            ) -> Dict[str, torch.Tensor]:
    """Rename published entries to this project's parameters (fused qkv split into q, k, v; LoRA to peft names).

    Entries already in this project's layout pass through, named the way ``model_keys`` names them: peft wraps the
    adapted linears as ``<q|v>.base_layer``, so a model without LoRA and one with LoRA name their base differently.
    """
    model_keys = set(model_keys)
    out = {}
    for key, value in published_to_peft(state, cfg.embed_dim, cfg.lora_rank).items():
        prefix, _, kind = key.rpartition(".qkv.")
        if prefix and kind in ("weight", "bias"):
            for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                wrapped = f"{prefix}.{part}.base_layer.{kind}"
                out[wrapped if wrapped in model_keys else f"{prefix}.{part}.{kind}"] = chunk.clone()
        else:
            out[_model_name(key, model_keys)] = value
    return out


def _model_name(key: str, model_keys: Set[str]) -> str:
    """``key`` with or without peft's ``base_layer`` level, whichever the model has."""
    if key in model_keys:
        return key
    unwrapped = key.replace(".base_layer.", ".")
    if unwrapped in model_keys:
        return unwrapped
    wrapped = re.sub(r"\.([qkv])\.(weight|bias)$", r".\1.base_layer.\2", key)
    return wrapped if wrapped in model_keys else key


def to_published_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`convert_published_state` (q, k, v fused back; LoRA in the published layout)."""
    fused = {}
    for key, value in state.items():
        key = key.replace(".base_layer.", ".")
        for part in "qkv":
            marker = f".attn.{part}."
            if marker in key and ".lora_" not in key:
                prefix, _, kind = key.partition(marker)
                fused.setdefault(f"{prefix}.attn.qkv.{kind}", {})[part] = value
                break
        else:
            fused[key] = value
    out = {k: torch.cat([v[p] for p in "qkv"]) if isinstance(v, dict) else v for k, v in fused.items()}
    return peft_to_published(out)


def assign_weights(model: torch.nn.Module, sources: List[Tuple[PathLike, Dict[str, torch.Tensor]]],
                   required: Callable[[str], bool] = lambda name: True) -> None:
    """Copy the tensors of several files into ``model`` and check that they fit it exactly.

    Later sources override earlier ones. Every parameter for which ``required(name)`` holds must come from some
    source; an entry the model does not have, or of another shape, is an error naming its file.
    """
    own = model.state_dict()
    merged, origin = {}, {}
    for path, state in sources:
        for key, value in state.items():
            if key.startswith(UNUSED_PUBLISHED_PREFIXES) and key not in own:
                continue
            if key not in own:
                raise CheckpointError(f"{path}: has weights this model does not have, e.g. {key!r}; "
                                      f"is it a checkpoint of another architecture?")
            if tuple(value.shape) != tuple(own[key].shape):
                raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects "
                                      f"{tuple(own[key].shape)}")
            merged[key], origin[key] = value, path
    missing = [k for k in own if k not in merged and required(k)]
    if missing:
        names = ", ".join(str(p) for p, _ in sources)
        raise CheckpointError(f"{names}: {len(missing)} weights of the model are missing, e.g. {missing[0]!r}")
    with torch.no_grad():
        for key, value in merged.items():
            own[key].copy_(value)


def save_checkpoint(state: Dict[str, torch.Tensor], cfg: ModelConfig, path: PathLike, contents: str,
                    extra: Optional[dict] = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` config atomically; ``contents`` says what the state holds
    (``'full'`` or ``'lora'``)."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {"format": PROJECT_FORMAT, "model": cfg.to_dict(), "contents": contents, **(extra or {})}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return path


def save_published_checkpoint(state: Dict[str, torch.Tensor], cfg: ModelConfig, path: PathLike) -> Path:
    """Write ``state`` (this project's names) in the published ``{'state_dict', 'config'}`` layout, plain values
    only, so that the published GraCo tools can read it."""
    path = Path(path)
    content = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in to_published_state(state).items()},
               "config": config_to_published(cfg)}
    atomic_write(path, lambda tmp: torch.save(content, tmp))
    return path
