"""How far apart two training runs are that should agree (one process against several), measured against how far
training moved the weights: a float tolerance that means the same on every machine.

Two runs that average the same gradients differ only by the order of their float sums: about 1e-7 of each gradient,
so their weights differ by about 1e-7 of the update. A gradient-averaging error (one rank's gradients dropped, a sum
where a mean belongs, a wrong world size) changes the update itself: a difference of the order of the update.
``UPDATE_TOLERANCE`` (1e-3 of the update) lies three orders of magnitude from each.

Adam with its default ``eps`` (1e-8) divides every gradient element by its own running magnitude: it is blind to a
gradient scaled by a wrong world size, and it turns rounding in elements whose gradient is near zero into steps of up
to the learning rate. Runs compared this way therefore use ``PROPORTIONAL_ADAM``: an ``eps`` far above the gradients,
where Adam's step is proportional to the gradient (momentum SGD).
"""
from typing import Dict, Mapping

import torch

UPDATE_TOLERANCE = 1e-3
PROPORTIONAL_ADAM = {"lr": 0.05, "eps": 1.0}  # TRAIN entries of a run whose weights are compared across ranks
RESOLUTION_STEPS = 8  # float32 steps of a tensor's largest weight that rounding of the stored weights may add


def update_relative_differences(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                                initial: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """Per tensor of ``a``: max |a - b| divided by the size of the update, max |a - initial|, plus
    ``RESOLUTION_STEPS`` float32 steps of the tensor's largest weight over ``UPDATE_TOLERANCE`` (an update near a
    weight's resolution rounds up in one run and down in the other). 0 where both runs are exactly equal; a tensor
    agrees when its value is at most ``UPDATE_TOLERANCE``."""
    ratios = {}
    for key, value in a.items():
        diff = float((value - b[key]).abs().max())
        if diff == 0:
            ratios[key] = 0.0
            continue
        update = float((value - initial[key]).abs().max())
        resolution = RESOLUTION_STEPS * torch.finfo(torch.float32).eps * float(value.abs().max())
        ratios[key] = diff / (update + resolution / UPDATE_TOLERANCE)
    return ratios
