"""MMT, the Multi-grained Mask Trie: PASCAL-Part parts merged by name into coarser groups.

Each part name (an abbreviation such as ``lfleg``, possibly with a ``_<number>`` suffix) is spelled out as a
phrase (``left front leg``). A part whose phrase has more than one word joins the group of its last noun
(``leg``) and, for each directional word it contains (left/right/back/front), the group ``<direction> <noun>``
(``left leg``, ``front leg``). Groups with more than one member become new nodes whose mask is the union of the
members: single-noun groups get a plural name (``legs``) except ``head`` and ``coach``; for ``<x> <dir> side``
names the noun is ``x`` (``head left side`` joins ``head``). Each node's granularity is its area relative to the
object, rounded to 0.1 and at least 0.1.

These rules follow the published GraCo MMT. Compatibility facts worth knowing:

* single-word names never merge: ``wheel_1`` and ``wheel_2`` both become ``wheel`` and stay separate nodes;
  ``head``, ``torso`` and the like remain single parts;
* the directional rule checks words, so ``head left side`` also joins a ``left head`` group;
* the published candidate list is ``merged groups + [whole object] + parts``; pass ``object_name`` to
  :func:`build_mask_trie` to get the whole object node in that place.

Deliberate differences from the published code, where it plainly fails:

* a part with an empty mask is left out (the published granularity computation raises IndexError on it);
* a granularity above 1.0 (a part larger than its object) is clamped to 1.0 (the published sampling table has no
  entry for it and raises KeyError);
* an object with an empty mask raises ValueError (the published code divides by zero or raises IndexError).
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..signals import GRANULARITY_LEVELS, round_granularity

logger = logging.getLogger(__name__)

# PASCAL-Part abbreviation -> spelled-out part phrase (same entries as the published table; "haddle bar" is the
# published spelling of bicycle "handlebar", kept because it is the phrase the published model trained on).
ABBREVIATIONS: Dict[str, str] = {
    # bird / aeroplane / bicycle / motorbike
    "lwing": "left wing", "rwing": "right wing", "fwheel": "front wheel", "bwheel": "back wheel",
    "haddlebar": "haddle bar", "chainwheel": "chain wheel",
    # faces
    "leye": "left eye", "reye": "right eye", "lear": "left ear", "rear": "right ear",
    "lebrow": "left eyebrow", "rebrow": "right eyebrow", "lhorn": "left horn", "rhorn": "right horn",
    # bird legs and feet
    "lleg": "left leg", "rleg": "right leg", "lfoot": "left foot", "rfoot": "right foot",
    # vehicles
    "fliplate": "front license plate", "bliplate": "back license plate",
    "leftmirror": "left mirror", "rightmirror": "right mirror",
    "frontside": "front side", "backside": "back side", "leftside": "left side", "rightside": "right side",
    "roofside": "roof side",
    "hfrontside": "head front side", "hleftside": "head left side", "hrightside": "head right side",
    "hbackside": "head back side", "hroofside": "head roof side",
    "cfrontside": "coach front side", "cleftside": "coach left side", "crightside": "coach right side",
    "cbackside": "coach back side", "croofside": "coach roof side",
    # cat / dog / sheep legs and paws
    "lfleg": "left front leg", "rfleg": "right front leg", "lbleg": "left back leg", "rbleg": "right back leg",
    "lfpa": "left front paw", "rfpa": "right front paw", "lbpa": "left back paw", "rbpa": "right back paw",
    # cow / horse legs and hooves
    "lfuleg": "left front upper leg", "lflleg": "left front lower leg",
    "rfuleg": "right front upper leg", "rflleg": "right front lower leg",
    "lbuleg": "left back upper leg", "lblleg": "left back lower leg",
    "rbuleg": "right back upper leg", "rblleg": "right back lower leg",
    "lfho": "left front hoof", "rfho": "right front hoof", "lbho": "left back hoof", "rbho": "right back hoof",
    # person limbs
    "llarm": "left lower arm", "luarm": "left upper arm", "rlarm": "right lower arm", "ruarm": "right upper arm",
    "lhand": "left hand", "rhand": "right hand",
    "llleg": "left lower leg", "luleg": "left upper leg", "rlleg": "right lower leg", "ruleg": "right upper leg",
}
DIRECTIONAL_WORDS: Tuple[str, ...] = ("left", "right", "back", "front")  # published order (fixes group order)
UNPLURALISED_GROUPS = frozenset({"head", "coach"})
SIDE_WORD = "side"

# Published precomputed sampling weight of each MMT granularity over PASCAL-Part train (normalised
# log(total / count) of the granularities of all trie nodes): rare granularities weigh more.
MMT_GRANULARITY_WEIGHTS: Dict[float, float] = {
    0.1: 0.012166262603621974, 0.2: 0.06960800373840834, 0.3: 0.09004898499961728, 0.4: 0.10218302562007273,
    0.5: 0.11521376884572793, 0.6: 0.12601478544277883, 0.7: 0.1343502368084108, 0.8: 0.14308396135299856,
    0.9: 0.14037031069344932, 1.0: 0.06696065989491415,
}


@dataclass
class PartNode:
    """One node of the trie.

    * name: the phrase (``left front leg``, ``legs``, or the object class for the whole object);
    * mask: H x W bool;
    * members: for a merged group, the phrases of the parts it unites, in part order; empty for a single part
      or the whole object.
    """

    name: str
    mask: np.ndarray
    members: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_group(self) -> bool:
        return bool(self.members)

    def __repr__(self) -> str:
        extra = f" = {' | '.join(self.members)}" if self.members else ""
        return f"PartNode({self.name!r}{extra}, area={int(self.mask.sum())})"


def part_phrase(raw_name: str) -> str:
    """The phrase of a PASCAL-Part part name: the name before any ``_<suffix>``, spelled out when it is a known
    abbreviation (``lfleg_1`` -> ``left front leg``, ``wheel_2`` -> ``wheel``, ``head`` -> ``head``)."""
    base = raw_name.split("_")[0]
    return ABBREVIATIONS.get(base, base)


def group_keys(phrase: str) -> List[str]:
    """The groups a part phrase joins: none for a one-word phrase; otherwise its noun (the last word, or the
    first word of a three-word ``... side`` phrase) followed by ``<direction> <noun>`` for each directional word
    present, in the order left, right, back, front."""
    words = phrase.split()
    if len(words) <= 1:
        return []
    noun = words[-1]
    if noun == SIDE_WORD and len(words) == 3:
        noun = words[0]
    present = set(words)
    keys = [noun]
    keys.extend(f"{direction} {noun}" for direction in DIRECTIONAL_WORDS if direction in present and noun in present)
    return keys


def group_name(key: str) -> str:
    """Name of a merged group: a one-word key is made plural with 's' (except ``head`` and ``coach``); a
    directional key (``left leg``) is kept as is."""
    if len(key.split()) == 1 and key not in UNPLURALISED_GROUPS:
        return key + "s"
    return key


def build_mask_trie(object_mask: np.ndarray, parts: Sequence[Tuple[str, np.ndarray]],
                    object_name: Optional[str] = None) -> List[PartNode]:
    """The trie nodes of one object: merged groups (in the order their keys first appear), then the whole object
    (only when ``object_name`` is given, as the published candidate list has it), then the parts in input order.

    ``object_mask`` is H x W (any dtype, nonzero = object); ``parts`` are ``(raw PASCAL-Part name, H x W mask)``.
    Raises ValueError when a mask's shape differs from the object's or the object mask is empty.
    """
    object_bool = np.asarray(object_mask) != 0
    if not object_bool.any():
        raise ValueError("the object mask is empty")
    part_nodes: List[PartNode] = []
    for raw_name, mask in parts:
        mask_bool = np.asarray(mask) != 0
        if mask_bool.shape != object_bool.shape:
            raise ValueError(f"part {raw_name!r} mask is {mask_bool.shape}, object mask is {object_bool.shape}")
        if not mask_bool.any():
            logger.debug("MMT: part %r has an empty mask; left out", raw_name)
            continue
        part_nodes.append(PartNode(part_phrase(str(raw_name)), mask_bool))

    groups: Dict[str, List[PartNode]] = {}
    for node in part_nodes:
        for key in group_keys(node.name):
            groups.setdefault(key, []).append(node)
    merged = [PartNode(group_name(key), np.logical_or.reduce([m.mask for m in members]),
                       tuple(m.name for m in members))
              for key, members in groups.items() if len(members) > 1]
    whole = [PartNode(object_name, object_bool)] if object_name is not None else []
    return merged + whole + part_nodes


def node_granularity(mask: np.ndarray, object_mask: np.ndarray) -> float:
    """Scale granularity of a node: ``area(mask) / area(object)`` rounded to 0.1 as published
    (:func:`isegm.signals.round_granularity`), within [0.1, 1.0]."""
    object_area = int(np.count_nonzero(object_mask))
    if object_area == 0:
        raise ValueError("the object mask is empty")
    ratio = round_granularity(np.float64(np.count_nonzero(mask)) / np.float64(object_area))
    return float(min(max(ratio, GRANULARITY_LEVELS[0]), GRANULARITY_LEVELS[-1]))


def trie_granularities(nodes: Sequence[PartNode], object_mask: np.ndarray) -> List[float]:
    """:func:`node_granularity` of each node."""
    return [node_granularity(node.mask, object_mask) for node in nodes]
