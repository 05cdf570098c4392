"""Model configuration as data: one dataclass, read from YAML presets or from a published checkpoint config."""
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from ..utils.config_file import read_yaml
from .head import UPSAMPLE_FACTORS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "models"


@dataclass
class ModelConfig:
    """Everything needed to build a GraCo (or plain SimpleClick) model."""

    img_size: Tuple[int, int] = (448, 448)
    patch_size: Tuple[int, int] = (16, 16)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    neck_out_dims: Tuple[int, ...] = (128, 256, 512, 1024)
    head_channels: int = 256
    head_dropout: float = 0.1
    upsample: str = "x1"
    norm_radius: float = 5.0
    with_prev_mask: bool = True
    norm_mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    norm_std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    granularity: bool = True
    phrase: bool = True
    lora_rank: int = 8
    lora_alpha: float = 1.0
    clip_dim: int = 512
    random_split: bool = False

    def __post_init__(self):
        for name in ("img_size", "patch_size", "neck_out_dims", "norm_mean", "norm_std"):
            setattr(self, name, tuple(getattr(self, name)))
        limits = {"embed_dim": 4096, "depth": 64, "num_heads": 64, "head_channels": 4096, "lora_rank": 256}
        for name, limit in limits.items():  # a config read from a file must not make the model absurdly large
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
                raise ValueError(f"model config {name}={value!r} is not an integer in 1..{limit}")
        if any(not isinstance(v, int) or not 1 <= v <= 4096 for v in (*self.img_size, *self.patch_size,
                                                                        *self.neck_out_dims)):
            raise ValueError("model config sizes (img_size, patch_size, neck_out_dims) must be integers in 1..4096")

    @property
    def has_lora(self) -> bool:
        return self.granularity or self.phrase

    def to_dict(self) -> Dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)


def load_model_config(name_or_path: Union[str, Path]) -> ModelConfig:
    """Read a YAML model config: a path, or the name of a preset in ``configs/models`` (e.g. ``graco_vit_base448``)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        presets = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no model config {name_or_path!r}: give a YAML path or one of {presets}")
    data = read_yaml(path)
    return ModelConfig.from_dict(dict(data.get("MODEL", data)))


# published model classes this project reads, by what they contain
PUBLISHED_CLASSES = {
    "isegm.model.is_plainvit_model.PlainVitModel": dict(granularity=False, phrase=False),
    "isegm.model.is_plainvit_graco_model_lora.PlainVitModel_lora": dict(granularity=True, phrase=False),
    "isegm.model.is_plainvit_graco_two_signal_model_lora.PhraseCLIPGraCoModel_lora": dict(granularity=True,
                                                                                          phrase=True),
}


def config_from_published(config: Dict[str, Any]) -> ModelConfig:
    """Translate a published checkpoint's ``{'class', 'params'}`` config into a :class:`ModelConfig`."""
    class_name = config.get("class") if isinstance(config, dict) else None
    if class_name not in PUBLISHED_CLASSES:
        raise ValueError(f"unsupported model class {class_name!r}; supported: {', '.join(PUBLISHED_CLASSES)}")
    params = {name: entry.get("value") if isinstance(entry, dict) else entry
              for name, entry in config.get("params", {}).items()}
    backbone = params.get("backbone_params") or {}
    neck = params.get("neck_params") or {}
    head = params.get("head_params") or {}
    upsample = head.get("upsample", "x1")
    factor = UPSAMPLE_FACTORS.get(upsample, 1)
    mean_std = params.get("norm_mean_std") or ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if not params.get("use_disks", False):
        raise ValueError("only disk click maps (use_disks=True) are supported, as in SimpleClick and GraCo")
    return ModelConfig(
        img_size=tuple(backbone.get("img_size", (448, 448))),
        patch_size=tuple(backbone.get("patch_size", (16, 16))),
        embed_dim=backbone.get("embed_dim", 768),
        depth=backbone.get("depth", 12),
        num_heads=backbone.get("num_heads", 12),
        mlp_ratio=float(backbone.get("mlp_ratio", 4.0)),
        qkv_bias=backbone.get("qkv_bias", True),
        neck_out_dims=tuple(neck.get("out_dims", (128, 256, 512, 1024))),
        head_channels=head.get("channels", 256) * factor,
        head_dropout=head.get("dropout_ratio", 0.1),
        upsample=upsample,
        norm_radius=params.get("norm_radius", 5),
        with_prev_mask=params.get("with_prev_mask", False),
        norm_mean=tuple(mean_std[0]),
        norm_std=tuple(mean_std[1]),
        random_split=params.get("random_split", False),
        **PUBLISHED_CLASSES[class_name],
    )


def config_to_published(cfg: ModelConfig) -> Dict[str, Any]:
    """A published-layout ``{'class', 'params'}`` config (plain values only) describing ``cfg``."""
    class_name = next((name for name, flags in PUBLISHED_CLASSES.items()
                       if flags == dict(granularity=cfg.granularity, phrase=cfg.phrase)), None)
    if class_name is None:
        raise ValueError("the published layout has no model with a phrase input but no granularity input")
    factor = UPSAMPLE_FACTORS[cfg.upsample]
    params = dict(
        backbone_params=dict(img_size=tuple(cfg.img_size), patch_size=tuple(cfg.patch_size), in_chans=3,
                             embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                             mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, enable_gra=cfg.granularity),
        neck_params=dict(in_dim=cfg.embed_dim, out_dims=list(cfg.neck_out_dims)),
        head_params=dict(in_channels=list(cfg.neck_out_dims), in_index=list(range(len(cfg.neck_out_dims))),
                         dropout_ratio=cfg.head_dropout, num_classes=1, align_corners=False,
                         upsample=cfg.upsample, channels=cfg.head_channels // factor),
        random_split=cfg.random_split, use_disks=True, norm_radius=cfg.norm_radius,
        with_prev_mask=cfg.with_prev_mask, norm_mean_std=(list(cfg.norm_mean), list(cfg.norm_std)),
    )
    if cfg.phrase:
        params["phrase_encoder_params"] = dict(enocder_name="ViT-B/32", embedding_dim=cfg.clip_dim,
                                               out_dim=cfg.embed_dim)
    return {"class": class_name,
            "params": {k: {"type": "builtin", "value": v, "specified": True} for k, v in params.items()}}
