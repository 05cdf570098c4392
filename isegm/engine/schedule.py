"""The granularity-controllable learning (GCL) schedule: which signal each epoch trains, and its learning rate."""
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Sequence, Tuple

from ..signals import NO_SIGNAL, PHRASE, SLIDER


@dataclass(frozen=True)
class GCLSchedule:
    """Two-signal schedule.

    With LoRA training and a dataset that serves phrases, epochs before ``switch_epoch`` train the phrase branch and
    the rest the slider branch; with slider-only data every epoch trains the slider; without LoRA (base training)
    every epoch trains plain click segmentation. Each phase runs its own step schedule: the learning rate is
    ``lr * gamma ** (milestones passed since the phase began)``. This is what the published run's
    ``SequentialLR`` of two ``MultiStepLR([50, 55])`` does: 5e-4 for epochs 0-49, 5e-5 for 50-54, back to 5e-4 for
    the slider from 55, 5e-5 from 105.
    """

    epochs: int = 110
    lr: float = 5e-4
    milestones: Tuple[int, ...] = (50, 55)
    gamma: float = 0.1
    switch_epoch: int = 55
    enable_lora: bool = True
    signals: Sequence[str] = (SLIDER,)

    @classmethod
    def from_config(cls, train: Mapping[str, Any], enable_lora: bool, signals: Sequence[str],
                    epochs: Optional[int] = None, switch_epoch: Optional[int] = None) -> "GCLSchedule":
        """The schedule of a training config's TRAIN entry (keys in :data:`CONFIG_KEYS`, values checked by the
        caller); ``epochs`` and ``switch_epoch`` override the config's, the published values fill what is missing."""
        values = {field: train[key] for key, field in CONFIG_KEYS.items() if key in train}
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        if epochs:
            values["epochs"] = epochs
        if switch_epoch is not None:
            values["switch_epoch"] = switch_epoch
        return cls(**values, enable_lora=enable_lora, signals=tuple(signals))

    @property
    def two_phase(self) -> bool:
        return self.enable_lora and PHRASE in self.signals and SLIDER in self.signals

    def signal(self, epoch: int) -> str:
        if not self.enable_lora:
            return NO_SIGNAL
        if self.two_phase:
            return PHRASE if epoch < self.switch_epoch else SLIDER
        return SLIDER if SLIDER in self.signals else PHRASE

    def phase_start(self, epoch: int) -> int:
        return self.switch_epoch if self.two_phase and epoch >= self.switch_epoch else 0

    def learning_rate(self, epoch: int) -> float:
        since = epoch - self.phase_start(epoch)
        return self.lr * self.gamma ** sum(since >= m for m in self.milestones)


# TRAIN key of a training config -> GCLSchedule field
CONFIG_KEYS = {"epochs": "epochs", "lr": "lr", "lr_milestones": "milestones", "lr_gamma": "gamma",
               "lora_switch_epoch": "switch_epoch"}
# their types, for checking a config file
CONFIG_TYPES = {key: {f.name: f.type for f in fields(GCLSchedule)}[field] for key, field in CONFIG_KEYS.items()}
