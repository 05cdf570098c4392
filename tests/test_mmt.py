"""MMT (multi-grained mask trie): naming rules on synthetic parts and the tries of the real PASCAL-Part objects."""
from pathlib import Path

import numpy as np
import pytest

from isegm.data.targets import table_weights
from isegm.data.training import read_pascalpart_objects
from isegm.data.mmt import (MMT_GRANULARITY_WEIGHTS, build_mask_trie, group_keys, group_name, node_granularity,
                            part_phrase, trie_granularities)

GRANULARITIES = {round(0.1 * i, 1) for i in range(1, 11)}


# --- naming rules ---

@pytest.mark.parametrize("raw, phrase", [
    ("lfleg", "left front leg"), ("lfleg_1", "left front leg"), ("rbho", "right back hoof"),
    ("llarm", "left lower arm"), ("lebrow", "left eyebrow"), ("hleftside", "head left side"),
    ("croofside_2", "coach roof side"), ("fliplate", "front license plate"), ("wheel_2", "wheel"),
    ("head", "head"), ("torso", "torso"), ("door_10", "door"),
])
def test_part_phrase(raw, phrase):
    assert part_phrase(raw) == phrase


@pytest.mark.parametrize("phrase, keys", [
    ("head", []), ("wheel", []),
    ("left ear", ["ear", "left ear"]),
    ("left front leg", ["leg", "left leg", "front leg"]),
    ("right back lower leg", ["leg", "right leg", "back leg"]),
    ("left upper arm", ["arm", "left arm"]),
    ("front side", ["side", "front side"]),
    ("roof side", ["side"]),
    ("head left side", ["head", "left head"]),   # three-word '... side': the noun is the first word
    ("coach roof side", ["coach"]),
    ("front license plate", ["plate", "front plate"]),
    ("chain wheel", ["wheel"]),
])
def test_group_keys(phrase, keys):
    assert group_keys(phrase) == keys


def test_group_names():
    assert group_name("leg") == "legs"
    assert group_name("side") == "sides"
    assert group_name("head") == "head"     # never pluralised
    assert group_name("coach") == "coach"
    assert group_name("left leg") == "left leg"
    assert group_name("front hoof") == "front hoof"


def box(shape, rows, cols) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return mask


def test_trie_of_a_synthetic_bus():
    shape = (20, 30)
    bus = box(shape, slice(0, 20), slice(0, 30))
    parts = [
        ("hfrontside", box(shape, slice(0, 10), slice(0, 5))),
        ("hleftside", box(shape, slice(0, 10), slice(5, 15))),
        ("frontside", box(shape, slice(10, 20), slice(0, 10))),
        ("leftside", box(shape, slice(10, 20), slice(10, 20))),
        ("wheel_1", box(shape, slice(18, 20), slice(0, 3))),
        ("wheel_2", box(shape, slice(18, 20), slice(27, 30))),
        ("door_1", np.zeros(shape, np.uint8)),  # empty: left out
    ]
    nodes = build_mask_trie(bus, parts, object_name="bus")
    names = [node.name for node in nodes]
    # merged groups (in first-appearance order of their keys), then the whole object, then the parts
    assert names == ["head", "sides", "bus", "head front side", "head left side", "front side", "left side",
                     "wheel", "wheel"]
    head, sides = nodes[0], nodes[1]
    assert head.members == ("head front side", "head left side")
    assert sides.members == ("front side", "left side")
    np.testing.assert_array_equal(head.mask, (parts[0][1] | parts[1][1]) != 0)
    assert not nodes[2].is_group and nodes[2].mask.sum() == 600
    assert "wheels" not in names  # one-word part names never merge
    assert trie_granularities(nodes, bus) == [0.2, 0.3, 1.0, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1]
    # without object_name only groups and parts
    assert [n.name for n in build_mask_trie(bus, parts)] == names[:2] + names[3:]


def test_trie_rejects_bad_masks():
    object_mask = box((8, 8), slice(0, 4), slice(0, 4))
    with pytest.raises(ValueError, match="empty"):
        build_mask_trie(np.zeros((8, 8)), [("head", object_mask)])
    with pytest.raises(ValueError, match="lear"):
        build_mask_trie(object_mask, [("lear", np.ones((4, 4)))])


def test_node_granularity_rounding_and_limits():
    object_mask = np.ones((10, 10), bool)
    part = np.zeros((10, 10), bool)
    part.flat[:37] = True
    assert node_granularity(part, object_mask) == 0.4
    part[:] = False
    part.flat[:3] = True
    assert node_granularity(part, object_mask) == 0.1            # at least 0.1
    small_object = np.zeros((10, 10), bool)
    small_object.flat[:50] = True
    assert node_granularity(object_mask, small_object) == 1.0    # clamped (a part larger than its object)


def test_mmt_weights_favour_rare_granularities():
    gras = [0.1, 0.1, 0.1, 0.8, 1.0]
    weights = table_weights(gras, MMT_GRANULARITY_WEIGHTS)
    assert weights.sum() == pytest.approx(1.0)
    total = MMT_GRANULARITY_WEIGHTS[0.1] + MMT_GRANULARITY_WEIGHTS[0.8] + MMT_GRANULARITY_WEIGHTS[1.0]
    assert weights[:3] == pytest.approx([MMT_GRANULARITY_WEIGHTS[0.1] / 3 / total] * 3)   # shared within 0.1
    assert weights[3] == pytest.approx(MMT_GRANULARITY_WEIGHTS[0.8] / total)
    assert set(MMT_GRANULARITY_WEIGHTS) == GRANULARITIES
    assert sum(MMT_GRANULARITY_WEIGHTS.values()) == pytest.approx(1.0)


# --- the real PASCAL-Part annotations ---

# merged groups of each object, in trie order, as the published rules give them
EXPECTED_GROUPS = {
    ("2008_000008", 0): ["arms", "left arm", "legs", "left leg"],                              # person
    ("2008_000008", 1): ["ears", "legs", "left leg", "front leg", "hoofs", "left hoof", "back leg"],  # horse
    ("2008_000009", 0): ["legs", "left leg", "front leg", "right leg", "back leg"],            # cow
    ("2008_000009", 1): ["legs", "left leg", "front leg", "back leg", "right leg"],            # cow
    ("2008_000019", 0): ["legs", "left leg", "front leg", "paws", "left paw", "front paw"],   # dog
    ("2008_000019", 1): ["ears", "eyes", "legs", "left leg", "front leg", "paws", "left paw", "front paw"],
    ("2008_000019", 2): ["ears", "legs", "front leg", "paws", "right leg"],
    ("2008_000026", 0): ["ears", "eyes", "eyebrows", "arms", "left arm", "hands", "right arm", "legs"],  # person
    ("2008_000026", 1): ["ears", "legs", "left leg", "paws", "left paw", "back leg", "back paw"],        # dog
}


def test_tries_of_real_pascalpart_objects(test_data):
    anno_dir = Path(test_data) / "PascalPart" / "Annotations_Part"
    seen = set()
    for image_id in sorted({key[0] for key in EXPECTED_GROUPS}):
        for k, obj in enumerate(read_pascalpart_objects(anno_dir / f"{image_id}.mat")):
            seen.add((image_id, k))
            nodes = build_mask_trie(obj.mask, obj.parts, object_name=obj.class_name)
            groups = [node for node in nodes if node.is_group]
            assert [g.name for g in groups] == EXPECTED_GROUPS[(image_id, k)], (image_id, k)
            # then the whole object, then every (non-empty) part in annotation order
            rest = nodes[len(groups):]
            assert rest[0].name == obj.class_name and np.array_equal(rest[0].mask, obj.mask)
            assert [n.name for n in rest[1:]] == [part_phrase(name) for name, _ in obj.parts]
            parts_by_name = {}
            for node in rest[1:]:
                parts_by_name.setdefault(node.name, []).append(node.mask)
            for group in groups:
                assert len(group.members) > 1
                union = np.logical_or.reduce([m for name in group.members for m in parts_by_name[name]])
                np.testing.assert_array_equal(group.mask, union)
                assert not (group.mask & ~obj.mask).any()
            gras = trie_granularities(nodes, obj.mask)
            assert set(gras) <= GRANULARITIES
            assert gras[len(groups)] == 1.0
            assert table_weights(gras, MMT_GRANULARITY_WEIGHTS).sum() == pytest.approx(1.0)
    assert seen == set(EXPECTED_GROUPS)
