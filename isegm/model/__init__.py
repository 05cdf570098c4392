"""GraCo model parts."""
from .config import ModelConfig, load_model_config
from .graco import GraCoModel

__all__ = ["GraCoModel", "ModelConfig", "load_model_config"]
