"""Run by tests/test_training_published.py under torchrun: two gloo ranks, rank 1's slider samples have no
granularity. Both ranks must stop at once with the same message (written to $RANK_FAILURE_OUT/rank<r>.txt)."""
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
from isegm.engine.trainer import RankFailed, TrainOptions
from isegm.model import GraCoModel
from isegm.signals import SLIDER


class NoGranularityOnRankOne(ShapesTargets):
    def target(self, index, rng, signal):
        target = super().target(index, rng, signal)
        if os.environ.get("RANK") == "1":
            target.gra = None
        return target


def main() -> int:
    dist = init_distributed(True)
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64), phrase=False))
    train_set = ClickTrainingSet(NoGranularityOnRankOne(8), None, MultiPointSampler(4), min_object_area=10)
    schedule = GCLSchedule(epochs=1, lr=1e-3, switch_epoch=0, signals=(SLIDER,))
    options = TrainOptions(batch_size=4, workers=0, seed=1, max_num_next_clicks=0, image_dump_interval=0)
    trainer = GCLTrainer(model, train_set, schedule, Path(tempfile.mkdtemp()), dist, options, enable_lora=True)
    try:
        trainer.fit()
    except RankFailed as error:
        Path(os.environ["RANK_FAILURE_OUT"], f"rank{dist.rank}.txt").write_text(str(error))
        return 2
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
