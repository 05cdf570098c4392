"""The finished objects of one image: ids 1..n, masks, names, the instance map and the objects' colours."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

Colour = Tuple[int, int, int]


def palette(n: int) -> np.ndarray:
    """``n + 1`` distinct RGB colours (uint8); entry 0 (background) is black. Same bit-interleaving scheme as VOC."""
    colours = np.zeros((n + 1, 3), np.uint8)
    for i in range(1, n + 1):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def object_colour(object_id: int) -> Colour:
    """The palette colour of ``object_id`` (RGB)."""
    return tuple(int(v) for v in palette(object_id)[object_id])


@dataclass
class AnnotatedObject:
    """A finished object: its id (1..n), its H x W bool mask and a name."""
    object_id: int
    mask: np.ndarray
    name: str


@dataclass
class Annotation:
    """The finished objects of an image of ``shape`` (H, W); later objects lie on top of earlier ones."""
    shape: Tuple[int, int]
    objects: List[AnnotatedObject] = field(default_factory=list)

    @classmethod
    def from_instances(cls, instances: np.ndarray, names: Optional[Dict[int, str]] = None) -> "Annotation":
        """The objects of an H x W instance map (each value > 0 one object, renumbered 1..n in value order);
        ``names``: value -> name (default ``object k``)."""
        names = names or {}
        values = [int(v) for v in np.unique(instances) if v > 0]
        return cls(tuple(instances.shape[:2]), [AnnotatedObject(k, instances == v, names.get(v) or f"object {k}")
                                                for k, v in enumerate(values, 1)])

    @property
    def next_id(self) -> int:
        """The id the next finished object gets."""
        return len(self.objects) + 1

    def default_name(self, phrase: Optional[str] = None) -> str:
        """The name of the next object: its part name when it has one, else ``object <id>``."""
        return phrase or f"object {self.next_id}"

    def finish_object(self, mask: np.ndarray, name: Optional[str] = None) -> AnnotatedObject:
        """Add the H x W ``mask`` (bool, or probabilities already thresholded) as the next object; ValueError when it
        is empty or of another size."""
        mask = np.asarray(mask, bool)
        if tuple(mask.shape) != tuple(self.shape):
            raise ValueError(f"the mask is {mask.shape[1]} x {mask.shape[0]}, the image {self.shape[1]} x {self.shape[0]}")
        if not mask.any():
            raise ValueError("the current object is empty: nothing to finish")
        obj = AnnotatedObject(self.next_id, mask, name or self.default_name())
        self.objects.append(obj)
        return obj

    def instance_mask(self, current: Optional[np.ndarray] = None) -> np.ndarray:
        """H x W int32: the objects by id, then ``current`` (an H x W bool mask of the object being annotated, if
        any) as id n+1 on top."""
        out = np.zeros(self.shape, np.int32)
        for obj in self.objects:
            out[obj.mask] = obj.object_id
        if current is not None:
            out[current] = self.next_id
        return out

    def names(self, current_name: Optional[str] = None) -> Dict[int, str]:
        """Object id -> name, with ``current_name`` for id n+1 when given."""
        names = {obj.object_id: obj.name for obj in self.objects}
        if current_name is not None:
            names[self.next_id] = current_name
        return names

    def colours(self) -> Dict[int, Colour]:
        """Object id -> RGB colour (as in the previews)."""
        colours = palette(len(self.objects))
        return {obj.object_id: tuple(int(v) for v in colours[obj.object_id]) for obj in self.objects}


__all__ = ["AnnotatedObject", "Annotation", "Colour", "object_colour", "palette"]
