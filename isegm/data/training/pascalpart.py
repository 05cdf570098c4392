"""PASCAL-Part training targets: MMT part groups with phrases and granularities, plus FMG proposals."""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..mmt import MMT_GRANULARITY_WEIGHTS, PartNode, build_mask_trie, trie_granularities
from ..io import DatasetError, PathLike, SampleError, read_list_file, read_pascalpart_anno, read_rgb_image, require_dir
from ...signals import NO_SIGNAL, PHRASE, SLIDER
from ..targets import TargetDataset, TrainTarget, table_weights
from .common import ProposalSource, check_target, require_list_file, unknown_signal
from .proposals import BUGGY_MASK_THRESH

logger = logging.getLogger(__name__)


@dataclass
class PascalPartObject:
    """One annotated object: its class name, H x W bool mask and ``(raw part name, H x W mask)`` parts."""

    class_name: str
    mask: np.ndarray
    parts: List[Tuple[str, np.ndarray]]


def read_pascalpart_objects(path: Path) -> List[PascalPartObject]:
    """The objects of a PASCAL-Part annotation file (``anno.objects[k].{class, mask, parts[j].{part_name,
    mask}}``); SampleError when the file is unreadable or not in that structure."""
    objects = read_pascalpart_anno(path)
    result = []
    try:
        for k in range(objects.shape[1]):
            parts_struct = objects["parts"][0, k]
            parts = []
            if parts_struct.size > 0:
                for j in range(parts_struct.shape[1]):
                    parts.append((str(parts_struct["part_name"][0, j][0]), np.asarray(parts_struct["mask"][0, j])))
            result.append(PascalPartObject(str(objects["class"][0, k][0]), np.asarray(objects["mask"][0, k]) != 0,
                                           parts))
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise SampleError(f"PascalPart: {path} does not have the PASCAL-Part object structure ({error})") from error
    return result


class PascalPartTrainingDataset(TargetDataset):
    """PASCAL-Part for the two-signal training, one item per image.

    Layout: ``<root>/ImageSets/Main/<split>.txt`` (or ``part_<split>.txt``) lists image ids;
    ``<root>/JPEGImages/<id>.jpg`` and ``<root>/Annotations_Part/<id>.mat``. ``part_path`` is an optional
    proposal pickle keyed by the same image ids (see :mod:`.proposals`).

    Signals (one object drawn uniformly among the non-empty objects of the image, unless a proposal is used):

    * ``phrase``: a node of the object's MMT trie (merged groups, the whole object, parts) drawn with the
      published granularity table ``MMT_GRANULARITY_WEIGHTS``; ``phrase`` is the node name (the class name for
      the whole object, which is the only node of an object without parts) and ``gra`` its granularity (the
      trainer uses only the phrase for this signal);
    * ``slider``: a proposal of the image drawn with the published inverse-frequency table over the scale column
      (buggy and 0.0-scale proposals excluded); without a usable proposal, an MMT node as for ``phrase`` with its
      granularity as ``gra`` and no phrase (the published slider epochs do the same);
    * ``none``: the whole object.
    """

    name = "PascalPart"
    signals = (PHRASE, SLIDER, NO_SIGNAL)
    use_trie = True          # extend the parts by the MMT groups
    takes_proposals = True   # slider targets from ``part_path``
    layout = ("<root>/ImageSets/Main/<split>.txt or part_<split>.txt (image ids), <root>/JPEGImages/<id>.jpg, "
              "<root>/Annotations_Part/<id>.mat (PASCAL-Part anno struct)")

    def __init__(self, dataset_path: PathLike, split: str = "train", part_path: Optional[PathLike] = None,
                 buggy_mask_thresh: float = BUGGY_MASK_THRESH) -> None:
        if part_path is not None and not self.takes_proposals:
            raise DatasetError(f"{self.name}: this training set takes no proposals (--part_path)")
        root = Path(dataset_path)
        self._images_dir = root / "JPEGImages"
        self._anno_dir = root / "Annotations_Part"
        for folder in (root, self._images_dir, self._anno_dir):
            require_dir(folder, self.name, self.layout)
        lists = root / "ImageSets" / "Main"
        split_file = require_list_file([lists / f"{split}.txt", lists / f"part_{split}.txt"], self.name)
        self.image_ids: List[str] = read_list_file(split_file, self.name)
        self._proposals = ProposalSource(part_path)
        self._buggy_mask_thresh = buggy_mask_thresh
        logger.info("%s training: %d images from %s%s", self.name, len(self.image_ids), split_file,
                    f", proposals of {len(self._proposals.proposals)} images" if part_path is not None else "")

    def __len__(self) -> int:
        return len(self.image_ids)

    def objects(self, index: int) -> List[PascalPartObject]:
        """The annotated objects of image ``index`` (SampleError when its annotation cannot be read)."""
        return read_pascalpart_objects(self._anno_dir / f"{self.image_ids[index]}.mat")

    def mask_trie(self, obj: PascalPartObject) -> Tuple[List[PartNode], List[float]]:
        """The candidate nodes of ``obj`` and their granularities: the MMT nodes (published order: merged
        groups, whole object, parts), or without the trie the whole object and its parts."""
        nodes = build_mask_trie(obj.mask, obj.parts, object_name=obj.class_name)
        if not self.use_trie:
            nodes = [node for node in nodes if not node.is_group]
        return nodes, trie_granularities(nodes, obj.mask)

    def target(self, index: int, rng: np.random.Generator, signal: str) -> TrainTarget:
        if signal not in self.signals:
            raise unknown_signal(self.name, signal, self.signals)
        image_id = self.image_ids[index]
        image = read_rgb_image(self._images_dir / f"{image_id}.jpg", self.name)

        if signal == SLIDER:
            proposal = self._proposals.target(image_id, image, rng, self._buggy_mask_thresh, self.name)
            if proposal is not None:
                return proposal

        objects = self._usable_objects(index, image.shape[:2])
        object_index, obj = objects[int(rng.integers(len(objects)))]
        if signal == NO_SIGNAL:
            return check_target(TrainTarget(image, obj.mask.astype(np.uint8),
                                            sample_id=f"{image_id}:{object_index}"), self.name)

        try:
            nodes, gras = self.mask_trie(obj)
        except ValueError as error:
            raise SampleError(f"{self.name}: {image_id} object {object_index}: {error}") from error
        node_index = int(rng.choice(len(nodes), p=table_weights(gras, MMT_GRANULARITY_WEIGHTS)))
        node, gra = nodes[node_index], gras[node_index]
        phrase = node.name if signal == PHRASE else None
        return check_target(TrainTarget(image, node.mask.astype(np.uint8), gra=gra, phrase=phrase,
                                        sample_id=f"{image_id}:{object_index}:{node.name}"), self.name)

    def _usable_objects(self, index: int, image_size: Tuple[int, int]) -> List[Tuple[int, PascalPartObject]]:
        image_id = self.image_ids[index]
        objects = self.objects(index)
        for k, obj in enumerate(objects):
            if obj.mask.shape != tuple(image_size):
                raise SampleError(f"{self.name}: {image_id} object {k} mask is {obj.mask.shape[0]}x"
                                  f"{obj.mask.shape[1]} but the image is {image_size[0]}x{image_size[1]}")
        usable = [(k, obj) for k, obj in enumerate(objects) if obj.mask.any()]
        if not usable:
            raise SampleError(f"{self.name}: {image_id} has no annotated object")
        return usable


class PascalPartPartsDataset(PascalPartTrainingDataset):
    """The published ``PascalPartDataset`` ablation: the whole object and its annotated parts as targets (no
    MMT groups, no proposals); the slider epochs train on the same targets with their granularities."""

    name = "PascalPart (parts)"
    use_trie = False
    takes_proposals = False


class PascalPartFMGDataset(PascalPartTrainingDataset):
    """The published ``PascalPartFMGDataset`` ablation: the whole object and its parts for the phrase signal
    (no MMT groups), the FMG proposals of ``part_path`` for the slider signal."""

    name = "PascalPart (FMG)"
    use_trie = False
