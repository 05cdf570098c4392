"""The model options every interactive tool takes (demo.py, serve.py, the web app ...) and the model preparation
they share: the one module of the package that knows argparse, imported by the top-level scripts only."""
import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

from .inference.precision import TOOL_PRECISIONS

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
logger = logging.getLogger(__name__)


class UsageError(ValueError):
    """A command-line problem, reported in one line."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the interactive tools (this annotation tool and the Label Studio backend, serve.py): model,
    checkpoints, CLIP weights, device, precision, image size, flip, paths file, logging."""
    parser.add_argument("--checkpoint", required=True,
                        help="base checkpoint (published SimpleClick .pth or project .safetensors): a path, or a name "
                             "under INTERACTIVE_MODELS_PATH of the paths file (extension optional)")
    parser.add_argument("--lora_checkpoint", default=None, help="GraCo LoRA checkpoint")
    parser.add_argument("--clip-weights", default=None,
                        help="CLIP ViT-B/32 weights for part names (default: $GRACO_CLIP_WEIGHTS or "
                             "weights/clip/ViT-B-32.pt; without them only the granularity is available)")
    device = parser.add_mutually_exclusive_group()
    device.add_argument("--gpu", type=int, default=0, help="id of the GPU to use")
    device.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--precision", default="auto", choices=TOOL_PRECISIONS,
                        help="products in float32 or bfloat16; auto (default): bf16 where the device multiplies "
                             "bfloat16 natively and faster, else fp32")
    parser.add_argument("--limit-longest-size", type=int, default=800,
                        help="images whose longer side exceeds this are resized to it for the model")
    parser.add_argument("--no-flip", action="store_true", help="skip the test-time flip (twice as fast on a CPU)")
    parser.add_argument("--paths-config", "--config-path", "--cfg", dest="paths_config", default="config.yml",
                        help="paths file (YAML) with INTERACTIVE_MODELS_PATH")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = ("GRACO_BASIC_AUTH_USER", "GRACO_BASIC_AUTH_PASS")


def add_auth_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--basic-auth USER:PASS`` (default: the two variables of :data:`AUTH_ENV`); ``what`` ends its help."""
    parser.add_argument("--basic-auth", default=None, metavar="USER:PASS",
                        help=f"the user name and password every request must carry (default: ${AUTH_ENV[0]} and "
                             f"${AUTH_ENV[1]}); {what}")


def resolve_basic_auth(value: Optional[str]) -> Optional[Tuple[str, str]]:
    """(user, password) from ``--basic-auth`` or, without it, from the environment; None for neither."""
    if value is None:
        user, password = (os.environ.get(name) for name in AUTH_ENV)
        if not user and not password:
            return None
        if not user or not password:  # never the literal password "None"
            missing = AUTH_ENV[1] if user else AUTH_ENV[0]
            raise UsageError(f"basic auth from the environment needs both variables: {missing} is not set")
        return user, password
    user, _, password = value.partition(":")
    if not user or not password:
        raise UsageError("--basic-auth must be USER:PASS, both non-empty")
    return user, password


def warn_if_exposed(host: Optional[str], auth: Optional[Tuple[str, str]], what: str, shared: bool = False) -> None:
    """Log a warning when ``host`` (None: loopback) is reachable from other machines, or a public link is made,
    without ``--basic-auth``."""
    if auth is not None:
        return
    if shared:
        logger.warning("a public share link without --basic-auth: anyone with the link can use the %s", what)
    elif host is not None and host not in LOOPBACK_HOSTS:
        logger.warning("listening on %s without --basic-auth: anyone who reaches the port can use the %s", host,
                       what)


def check_model_arguments(args: argparse.Namespace) -> None:
    if args.limit_longest_size < 16:
        raise UsageError("--limit-longest-size must be at least 16")
    if args.gpu < 0:
        raise UsageError("--gpu must be a GPU id (0, 1, ...)")


def prepare_model(args: argparse.Namespace):
    """What the interactive tools need before loading the model, from their shared options: the device, the base
    and LoRA checkpoint paths (looked up under the paths file's INTERACTIVE_MODELS_PATH) and the predictor settings
    (precision ``auto`` resolved on that device). Problems are :class:`UsageError`."""
    import torch

    from .inference.precision import resolve_precision
    from .interactive.settings import PredictorSettings
    from .utils.config_file import ConfigError, read_paths_config
    try:
        paths = read_paths_config(args.paths_config, required=False)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if args.cpu:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        raise UsageError("no CUDA device is available: pass --cpu")
    elif args.gpu >= torch.cuda.device_count():
        raise UsageError(f"--gpu {args.gpu}: only {torch.cuda.device_count()} GPU(s) are available")
    else:
        device = torch.device(f"cuda:{args.gpu}")
    models_path = paths.get("INTERACTIVE_MODELS_PATH", "./weights")
    checkpoint = resolve_checkpoint(args.checkpoint, models_path)
    lora = resolve_checkpoint(args.lora_checkpoint, models_path) if args.lora_checkpoint else None
    precision = resolve_precision(args.precision, device)
    logger.info("precision: %s%s", precision, " (auto)" if args.precision == "auto" else "")
    settings = PredictorSettings(target_size=min(448, args.limit_longest_size), max_size=args.limit_longest_size,
                                 with_flip=not args.no_flip, precision=precision)
    return device, checkpoint, lora, settings


def resolve_checkpoint(name: str, models_path: str) -> Path:
    """``name`` by evaluate.py's rule (:func:`find_checkpoint`); as given when nothing matches (reported later)."""
    from .inference.checkpoint_lookup import find_checkpoint
    return find_checkpoint(name, models_path) or Path(name)
