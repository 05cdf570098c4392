"""Training datasets (PascalPart, SBD, COCO) and the proposal pickle reader/writer."""
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.io import savemat

from isegm.data.datasets import DatasetError, SampleError
from isegm.data.targets import TrainTarget
from isegm.signals import NO_SIGNAL, PHRASE, SLIDER
from isegm.data.training import (CocoInstanceDataset, PascalPartTrainingDataset, ProposalError, SBDTrainingDataset,
                                 UnsafePickleError, build_training_dataset, choose_proposal, is_buggy_mask,
                                 read_proposals, scale_weight_table, write_proposals)
from isegm.data.mmt import build_mask_trie

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
GRANULARITIES = {round(0.1 * i, 1) for i in range(1, 11)}
H, W = 24, 32
PASCALPART_IDS = ("2008_000008", "2008_000009", "2008_000019", "2008_000026")


def write_image(path: Path, height: int = H, width: int = W, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def box(rows: slice, cols: slice, shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return mask


def diagonal(shape=(H, W)) -> np.ndarray:
    """A one-pixel diagonal line: fills far less than 8% of its bounding box (a 'buggy' mask)."""
    mask = np.zeros(shape, np.uint8)
    for i in range(min(shape)):
        mask[i, i] = 1
    return mask


def same(a: TrainTarget, b: TrainTarget) -> bool:
    return (a.sample_id == b.sample_id and a.gra == b.gra and a.phrase == b.phrase
            and np.array_equal(a.mask, b.mask) and np.array_equal(a.image, b.image))


def targets(dataset, index, signal, seeds=range(40)):
    return [dataset.target(index, np.random.default_rng(seed), signal) for seed in seeds]


# --- proposals pickle ---

def example_proposals():
    masks = np.stack([box(slice(0, 12), slice(0, 16)), box(slice(12, 24), slice(0, 32)), diagonal()])
    return {"2008_000001": {"mask": masks, "gra": np.array([[0.3, 0.2], [0.5, 0.5], [0.1, 0.1]])},
            "2008_000002": {"mask": masks[:1].astype(bool), "gra": np.array([[0.0, 0.0]])}}


def test_proposals_round_trip(tmp_path):
    path = tmp_path / "out" / "proposals.pkl"
    write_proposals(path, example_proposals())
    assert sorted(p.name for p in path.parent.iterdir()) == ["proposals.pkl"]  # no temporary file left
    loaded = read_proposals(path)
    assert set(loaded) == {"2008_000001", "2008_000002"}
    for image_id, entry in example_proposals().items():
        np.testing.assert_array_equal(loaded[image_id]["mask"], entry["mask"].astype(np.uint8))
        np.testing.assert_array_equal(loaded[image_id]["gra"], entry["gra"])
        assert loaded[image_id]["mask"].dtype == np.uint8
    # the published writer's plain pickle.dump (any protocol) reads too, numpy<2 'numpy.core' names included
    for protocol in (2, 4, 5):
        data = pickle.dumps(example_proposals(), protocol=protocol)
        if protocol == 2:
            data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            assert b"numpy.core.multiarray" in data
        (tmp_path / "published.pkl").write_bytes(data)
        assert set(read_proposals(tmp_path / "published.pkl")) == {"2008_000001", "2008_000002"}


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"img": {"mask": _Exploit(marker), "gra": np.zeros((1, 2))}}))
    with pytest.raises(UnsafePickleError, match="system"):
        read_proposals(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"img": {"mask": np.zeros((1, 2, 2)), "gra": np.zeros((1, 2)),
                                           "extra": eval}}))   # a builtin function, not a plain value
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        read_proposals(path)


def test_proposal_layout_errors(tmp_path):
    path = tmp_path / "bad.pkl"
    for bad, match in [([1, 2], "dict"),
                       ({"a": {"mask": np.zeros((2, 4, 4))}}, "'mask' and 'gra'"),
                       ({"a": {"mask": np.zeros((2, 4, 4)), "gra": np.zeros((3, 2))}}, "N x 2"),
                       ({"a": {"mask": np.array([[["x"]]]), "gra": np.zeros((1, 2))}}, "number array"),
                       ({"a": {"mask": np.zeros((4, 4)), "gra": np.zeros((1, 2))}}, "N x H x W"),
                       ({1: {"mask": np.zeros((1, 4, 4)), "gra": np.zeros((1, 2))}}, "not a string")]:
        path.write_bytes(pickle.dumps(bad))
        with pytest.raises(ProposalError, match=match):
            read_proposals(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(ProposalError, match="not a readable pickle"):
        read_proposals(path)
    with pytest.raises(ProposalError, match="cannot read"):
        read_proposals(tmp_path / "missing.pkl")


def test_scale_table_and_choice():
    proposals = example_proposals()
    table = scale_weight_table(proposals)
    # scale column (1): 0.2, 0.5, 0.1 and 0.0; three nonzero proposals, each granularity once
    assert table == {0.2: 3.0, 0.5: 3.0, 0.1: 3.0, 0.0: 0.0}
    assert is_buggy_mask(diagonal()) and is_buggy_mask(np.zeros((4, 4))) and not is_buggy_mask(box(1, 1))
    picks = {choose_proposal(proposals["2008_000001"], table, np.random.default_rng(s))[0] for s in range(30)}
    assert picks == {0, 1}  # the diagonal (buggy) proposal is never drawn
    assert choose_proposal(proposals["2008_000002"], table, np.random.default_rng(0)) is None  # scale 0.0 only


# --- SBD ---

def write_sbd(root: Path) -> np.ndarray:
    instances = np.zeros((H, W), np.uint8)
    instances[2:8, 2:10] = 1
    instances[10:20, 12:30] = 2
    instances[diagonal() != 0] = 3        # buggy instance: never a target
    instances[2:8, 2:10] = 1
    for name in ("2008_000001", "2008_000002"):
        write_image(root / "img" / f"{name}.jpg")
        (root / "inst").mkdir(exist_ok=True)
        savemat(str(root / "inst" / f"{name}.mat"),
                {"GTinst": {"Segmentation": instances, "Boundaries": np.zeros(1), "Categories": np.ones((3, 1))}})
    (root / "train.txt").write_text("2008_000001\n2008_000002\n")
    return instances


def test_sbd_instances(tmp_path):
    instances = write_sbd(tmp_path)
    dataset = SBDTrainingDataset(tmp_path)
    assert len(dataset) == 2 and dataset.signals == (NO_SIGNAL, SLIDER)
    drawn = targets(dataset, 0, NO_SIGNAL)
    assert {t.sample_id for t in drawn} == {"2008_000001:1,2"}  # every usable instance; the sampler picks
    for t in drawn:
        assert t.gra is None and t.phrase is None and t.image.shape == (H, W, 3) and t.mask.dtype == np.uint8
        for label, value in enumerate((1, 2), start=1):
            np.testing.assert_array_equal(t.instances == label, instances == value)
        np.testing.assert_array_equal(t.mask, t.instances > 0)
    assert same(dataset.target(1, np.random.default_rng(7), NO_SIGNAL),
                dataset.target(1, np.random.default_rng(7), NO_SIGNAL))
    assert all(t.gra == 1.0 for t in targets(dataset, 0, SLIDER, range(5)))  # no proposals: whole instance
    with pytest.raises(ValueError, match="phrase"):
        dataset.target(0, np.random.default_rng(0), PHRASE)
    assert isinstance(dataset[0], TrainTarget)


def test_sbd_proposals(tmp_path):
    write_sbd(tmp_path)
    write_proposals(tmp_path / "proposals.pkl", {"2008_000001": example_proposals()["2008_000001"]})
    dataset = build_training_dataset("sbd", dataset_path=tmp_path, part_path=tmp_path / "proposals.pkl")
    drawn = targets(dataset, 0, SLIDER)
    assert {t.sample_id for t in drawn} == {"2008_000001:proposal:0", "2008_000001:proposal:1"}
    assert {t.gra for t in drawn} == {0.2, 0.5}  # the scale column
    first, again = (dataset.target(0, np.random.default_rng(3), SLIDER) for _ in range(2))
    assert same(first, again)
    # image without proposals: a whole instance with gra 1.0; 'none' never uses proposals
    assert all(t.gra == 1.0 and ":proposal:" not in t.sample_id for t in targets(dataset, 1, SLIDER, range(5)))
    assert all(t.gra is None and ":proposal:" not in t.sample_id for t in targets(dataset, 0, NO_SIGNAL, range(5)))


def test_sbd_bad_samples(tmp_path):
    write_sbd(tmp_path)
    (tmp_path / "img" / "2008_000002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    dataset = SBDTrainingDataset(tmp_path)
    with pytest.raises(SampleError, match="cannot read image"):
        dataset.target(1, np.random.default_rng(0), NO_SIGNAL)
    write_proposals(tmp_path / "other_size.pkl", {"2008_000001": {"mask": np.ones((1, 10, 10)),
                                                                  "gra": np.array([[0.4, 0.4]])}})
    with pytest.raises(SampleError, match="mask is 10x10"):
        SBDTrainingDataset(tmp_path, part_path=tmp_path / "other_size.pkl").target(0, np.random.default_rng(0),
                                                                                    SLIDER)
    savemat(str(tmp_path / "inst" / "2008_000001.mat"), {"something": np.zeros(3)})
    with pytest.raises(SampleError, match="GTinst"):
        dataset.target(0, np.random.default_rng(0), NO_SIGNAL)
    with pytest.raises(DatasetError, match="val.txt"):
        SBDTrainingDataset(tmp_path, split="val")


# --- COCO ---

def write_coco(root: Path) -> Path:
    write_image(root / "images" / "000001.jpg")
    write_image(root / "images" / "000002.jpg", seed=1)
    crowd = np.asfortranarray(box(slice(20, 24), slice(0, 32)))
    rle = mask_utils.encode(np.asfortranarray(box(slice(10, 20), slice(12, 30))))
    rle["counts"] = rle["counts"].decode()
    uncompressed = {"size": [H, W], "counts": [H * W]}  # an empty mask as uncompressed RLE
    data = {
        "images": [{"id": 1, "file_name": "000001.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "000002.jpg", "height": H, "width": W},
                   {"id": 3, "file_name": "000003.jpg", "height": H, "width": W}],   # no annotation: not listed
        "annotations": [
            {"id": 10, "image_id": 1, "iscrowd": 0, "category_id": 1,
             "segmentation": [[2.0, 2.0, 9.0, 2.0, 9.0, 7.0, 2.0, 7.0]]},               # polygon
            {"id": 11, "image_id": 1, "iscrowd": 0, "category_id": 1, "segmentation": rle},  # compressed RLE
            {"id": 12, "image_id": 1, "iscrowd": 1, "category_id": 1,
             "segmentation": mask_utils.encode(crowd) | {"counts": mask_utils.encode(crowd)["counts"].decode()}},
            {"id": 13, "image_id": 1, "iscrowd": 0, "category_id": 1, "segmentation": uncompressed},  # empty
            {"id": 20, "image_id": 2, "iscrowd": 0, "category_id": 1,
             "segmentation": [[0.0, 0.0, 32.0, 0.0, 32.0, 24.0, 0.0, 24.0]]},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_instances(tmp_path):
    annotation_file = write_coco(tmp_path)
    dataset = CocoInstanceDataset(annotation_file, tmp_path / "images")
    assert len(dataset) == 2 and dataset.image_ids == ["000001", "000002"]
    drawn = targets(dataset, 0, NO_SIGNAL)
    assert {t.sample_id for t in drawn} == {"000001:10,11"}   # crowd and empty never targets
    for t in drawn:
        assert t.ignore is not None and t.ignore[20:].all() and not t.ignore[:20].any()
        assert t.gra is None
        np.testing.assert_array_equal(t.instances == 2, box(slice(10, 20), slice(12, 30)))
        assert (t.instances[3:7, 3:9] == 1).all() and not (t.instances[10:] == 1).any()
    slider = dataset.target(1, np.random.default_rng(0), SLIDER)
    assert slider.gra == 1.0 and slider.ignore is None and slider.mask.all()
    assert same(dataset.target(0, np.random.default_rng(5), NO_SIGNAL),
                dataset.target(0, np.random.default_rng(5), NO_SIGNAL))


def test_coco_proposals_keyed_by_file_stem(tmp_path):
    annotation_file = write_coco(tmp_path)
    write_proposals(tmp_path / "p.pkl", {"000002": {"mask": box(slice(0, 12), slice(0, 16))[None],
                                                    "gra": np.array([[0.3, 0.3]])}})
    dataset = build_training_dataset("coco", annotation_file=annotation_file, images_dir=tmp_path / "images",
                                     part_path=tmp_path / "p.pkl")
    t = dataset.target(1, np.random.default_rng(0), SLIDER)
    assert t.sample_id == "000002:proposal:0" and t.gra == 0.3 and t.mask.sum() == 12 * 16
    assert dataset.target(0, np.random.default_rng(0), SLIDER).gra == 1.0


def test_coco_bad_data(tmp_path):
    annotation_file = write_coco(tmp_path)
    write_image(tmp_path / "images" / "000002.jpg", height=10, width=10)
    dataset = CocoInstanceDataset(annotation_file, tmp_path / "images")
    with pytest.raises(SampleError, match="10x10 but the json says 24x32"):
        dataset.target(1, np.random.default_rng(0), NO_SIGNAL)
    bad = tmp_path / "bad.json"
    bad.write_text("{\"images\": []}")
    with pytest.raises(DatasetError, match="COCO"):
        CocoInstanceDataset(bad, tmp_path / "images")
    with pytest.raises(ValueError, match="unknown training dataset"):
        build_training_dataset("imagenet")


# --- PascalPart ---

def pascalpart_struct(objects):
    """The PASCAL-Part ``anno`` struct for savemat: objects are (class, mask, [(part name, mask), ...])."""
    struct = np.empty((1, len(objects)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for k, (class_name, mask, parts) in enumerate(objects):
        part_struct = np.empty((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for j, (name, part_mask) in enumerate(parts):
            part_struct[0, j] = (name, part_mask)
        struct[0, k] = (class_name, k + 1, mask, part_struct if parts else np.zeros((0, 0)))
    return {"anno": {"imname": "x", "objects": struct}}


def write_synthetic_pascalpart(root: Path, split_name: str = "train.txt") -> dict:
    horse = box(slice(0, 24), slice(0, 16))
    parts = [("head", box(slice(0, 8), slice(0, 8))), ("lfleg", box(slice(16, 24), slice(0, 4))),
             ("lbleg", box(slice(16, 24), slice(12, 16))), ("rfleg_1", box(slice(16, 24), slice(4, 8))),
             ("torso", box(slice(8, 16), slice(0, 16)))]
    bottle = box(slice(0, 4), slice(28, 32))
    write_image(root / "JPEGImages" / "img1.jpg")
    (root / "Annotations_Part").mkdir(parents=True)
    savemat(str(root / "Annotations_Part" / "img1.mat"),
            pascalpart_struct([("horse", horse, parts), ("bottle", bottle, [])]))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / split_name).write_text("img1\n")
    return {"horse": (horse, parts), "bottle": bottle}


def test_pascalpart_synthetic_signals(tmp_path):
    written = write_synthetic_pascalpart(tmp_path)
    dataset = PascalPartTrainingDataset(tmp_path)
    assert dataset.signals == (PHRASE, SLIDER, NO_SIGNAL) and len(dataset) == 1
    horse_mask, horse_parts = written["horse"]
    nodes = {n.name: n for n in build_mask_trie(horse_mask, horse_parts, object_name="horse")}
    assert set(nodes) == {"legs", "left leg", "front leg", "horse", "head", "left front leg", "left back leg",
                          "right front leg", "torso"}
    phrases = set()
    for t in targets(dataset, 0, PHRASE, range(200)):
        assert t.phrase is not None and t.gra in GRANULARITIES
        phrases.add(t.phrase)
        if t.phrase == "bottle":
            assert t.gra == 1.0 and t.mask.sum() == 16       # an object without parts is its own phrase
        else:
            np.testing.assert_array_equal(t.mask, nodes[t.phrase].mask)
    assert {"legs", "left leg", "front leg", "bottle"} <= phrases
    for t in targets(dataset, 0, SLIDER):
        assert t.phrase is None and t.gra in GRANULARITIES
    for t in targets(dataset, 0, NO_SIGNAL):
        assert t.phrase is None and t.gra is None and t.mask.sum() in (H * 16, 16)
    a, b = (dataset.target(0, np.random.default_rng(11), PHRASE) for _ in range(2))
    assert same(a, b)


def test_pascalpart_split_fallback_and_bad_data(tmp_path):
    write_synthetic_pascalpart(tmp_path, split_name="part_train.txt")
    dataset = PascalPartTrainingDataset(tmp_path)
    assert dataset.image_ids == ["img1"]
    with pytest.raises(DatasetError, match="val.txt"):
        PascalPartTrainingDataset(tmp_path, split="val")
    savemat(str(tmp_path / "Annotations_Part" / "img1.mat"), {"anno": {"imname": "x"}})
    with pytest.raises(SampleError, match="anno.objects"):
        dataset.target(0, np.random.default_rng(0), PHRASE)
    (tmp_path / "JPEGImages" / "img1.jpg").write_bytes(b"garbage")
    with pytest.raises(SampleError, match="cannot read image"):
        dataset.target(0, np.random.default_rng(0), NO_SIGNAL)


def test_pascalpart_proposals(tmp_path):
    write_synthetic_pascalpart(tmp_path)
    write_proposals(tmp_path / "p.pkl", {"img1": {"mask": np.stack([box(slice(0, 12), slice(0, 32)), diagonal()]),
                                                  "gra": np.array([[0.4, 0.5], [0.2, 0.2]])}})
    dataset = PascalPartTrainingDataset(tmp_path, part_path=tmp_path / "p.pkl")
    for t in targets(dataset, 0, SLIDER, range(10)):
        assert t.sample_id == "img1:proposal:0" and t.gra == 0.5 and t.phrase is None
    assert all(":proposal:" not in t.sample_id for t in targets(dataset, 0, PHRASE, range(10)))


@pytest.fixture
def real_pascalpart(test_data, tmp_path) -> Path:
    root = tmp_path / "PascalPart"
    for folder in ("JPEGImages", "Annotations_Part"):
        (root / folder).mkdir(parents=True)
        for path in (Path(test_data) / "PascalPart" / folder).iterdir():
            (root / folder / path.name).symlink_to(path)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(PASCALPART_IDS) + "\n")
    return root


def test_pascalpart_real_annotations(real_pascalpart):
    dataset = PascalPartTrainingDataset(real_pascalpart)
    assert len(dataset) == 4
    phrases = set()
    for index in range(len(dataset)):
        for signal in dataset.signals:
            first = targets(dataset, index, signal, range(6))
            again = targets(dataset, index, signal, range(6))
            assert all(same(a, b) for a, b in zip(first, again))
            for t in first:
                assert t.mask.shape == t.image.shape[:2] and t.mask.any()
                assert (t.phrase is not None) == (signal == PHRASE)
                assert (t.gra is not None) == (signal != NO_SIGNAL)
                phrases.add(t.phrase)
    assert len(phrases) > 5
