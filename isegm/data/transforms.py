"""Training augmentation (albumentations 2.x), as published for RITM/SimpleClick/GraCo training."""
import os
from typing import Tuple

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import
import albumentations as A  # noqa: E402
import cv2  # noqa: E402


def random_flip() -> A.BasicTransform:
    """Horizontal, vertical or both flips, each with probability 1/6 (the published albumentations 0.x ``Flip``)."""
    both = A.Compose([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)])
    return A.OneOf([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), both], p=0.5)


def train_augmentation(crop_size: Tuple[int, int]) -> A.Compose:
    """Random scale 0.75-1.25, flips, 90-degree rotations, a small shift and rotation (p 0.75), zero padding to
    the crop, a random crop, brightness/contrast and RGB shifts (p 0.75 each). The mask is resampled with nearest
    neighbours and padded with 0 (background)."""
    height, width = crop_size
    return A.Compose([
        A.RandomScale(scale_limit=(-0.25, 0.25), interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                      p=1.0),
        random_flip(),
        A.RandomRotate90(p=0.5),
        A.Affine(translate_percent=(-0.03, 0.03), rotate=(-3, 3), border_mode=cv2.BORDER_CONSTANT, fill=0,
                 fill_mask=0, p=0.75),
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
        A.RandomCrop(height=height, width=width),
        A.RandomBrightnessContrast(brightness_limit=(-0.25, 0.25), contrast_limit=(-0.15, 0.4), p=0.75),
        A.RGBShift(r_shift_limit=10, g_shift_limit=10, b_shift_limit=10, p=0.75),
    ], p=1.0)


def val_augmentation(crop_size: Tuple[int, int]) -> A.Compose:
    """Random scale 0.75-1.25, zero padding to the crop and a random crop."""
    height, width = crop_size
    return A.Compose([
        A.RandomScale(scale_limit=(-0.25, 0.25), interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                      p=1.0),
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
        A.RandomCrop(height=height, width=width),
    ], p=1.0)
