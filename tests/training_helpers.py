"""Small in-memory training data for trainer tests: coloured shapes with two named parts."""
import numpy as np

from isegm.data.targets import TargetDataset, TrainTarget
from isegm.signals import NO_SIGNAL, PHRASE, SLIDER


class ShapesTargets(TargetDataset):
    """``n`` images of one rectangle object split into a left part ('head', 0.3 of it) and a right part ('torso')."""

    signals = (PHRASE, SLIDER, NO_SIGNAL)

    def __init__(self, n: int = 8, size: int = 64):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def target(self, index: int, rng: np.random.Generator, signal: str) -> TrainTarget:
        s = self.size
        scene = np.random.default_rng(index)
        image = scene.integers(0, 60, (s, s, 3)).astype(np.uint8)
        y0, x0 = scene.integers(4, s // 4, 2)
        h, w = scene.integers(s // 3, s // 2, 2)
        split = x0 + int(w * 0.3)
        image[y0:y0 + h, x0:split] = (220, 40, 40)
        image[y0:y0 + h, split:x0 + w] = (40, 40, 220)
        whole = np.zeros((s, s), np.uint8)
        whole[y0:y0 + h, x0:x0 + w] = 1
        head = np.zeros_like(whole)
        head[y0:y0 + h, x0:split] = 1
        if signal == NO_SIGNAL:
            return TrainTarget(image, whole, sample_id=str(index))
        pick_head = rng.random() < 0.5
        mask = head if pick_head else whole
        gra = round(float(mask.sum()) / whole.sum(), 1)
        return TrainTarget(image, mask, gra=gra if signal == SLIDER else None,
                           phrase=("head" if pick_head else "dog") if signal == PHRASE else None,
                           sample_id=str(index))
