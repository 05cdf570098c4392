"""Training: the GCL schedule, the data sampler, distributed helpers and the trainer."""
from .schedule import GCLSchedule
from .sampler import GCLSampler
from .trainer import GCLTrainer, TrainingDiverged

__all__ = ["GCLSampler", "GCLSchedule", "GCLTrainer", "TrainingDiverged"]
