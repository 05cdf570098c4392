"""Run by tests/test_training.py under torchrun: two gloo ranks train a tiny two-signal model for three iterations
(two with the phrase branch, one with the slider branch) and write the class of the module that trains and the
digest of the weights to $DDP_WORKER_OUT/rank<r>.txt."""
import os
import sys
import tempfile
from pathlib import Path

import torch

from helpers import tiny_config  # the script's folder (tests/) is on sys.path
from training_helpers import ShapesTargets
from isegm.data.click_training_set import ClickTrainingSet
from isegm.data.points_sampler import MultiPointSampler
from isegm.engine import GCLSchedule, GCLTrainer
from isegm.engine.distributed import init_distributed, shutdown
from isegm.engine.trainer import TrainOptions
from isegm.model import GraCoModel
from isegm.signals import PHRASE, SLIDER
from isegm.toy.seeded import seeded_clip_text_state


def main() -> int:
    dist = init_distributed(True)
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64)))
    model.phrase_encoder.load_clip_state(seeded_clip_text_state(0), source="seeded CLIP")
    targets = ShapesTargets(8)
    targets.signals = (PHRASE, SLIDER)
    train_set = ClickTrainingSet(targets, None, MultiPointSampler(4), min_object_area=10)
    schedule = GCLSchedule(epochs=2, lr=1e-3, milestones=(100,), switch_epoch=1, signals=(PHRASE, SLIDER))
    options = TrainOptions(batch_size=4, workers=0, seed=1, max_num_next_clicks=1, image_dump_interval=0,
                           max_iterations=3)
    trainer = GCLTrainer(model, train_set, schedule, Path(tempfile.mkdtemp()), dist, options, enable_lora=True)
    try:
        trainer.fit()
        Path(os.environ["DDP_WORKER_OUT"], f"rank{dist.rank}.txt").write_text(
            f"{type(getattr(trainer, 'train_module', trainer.model)).__name__} {trainer.weights_digest()}")
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
