import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from easydict import EasyDict
from PIL import Image
from scipy.io import loadmat, savemat

from isegm.data.datasets import (DATASET_NAMES, BerkeleyDataset, BraTSDataset, DatasetError, DavisDataset,
                                 GrabCutDataset, OAIZIBDataset, PartINEvaluationDataset,
                                 PascalPartEvaluationDataset, PascalVocDataset, SA1BDataset, SampleError,
                                 SBDEvaluationDataset, get_dataset, ssTEMDataset)

# pycocotools' decoder trips a numpy 2 DeprecationWarning inside its compiled code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
PASCALPART_IDS = ("2008_000008", "2008_000009", "2008_000019", "2008_000026")


def write_image(path: Path, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return image


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def square_mask(value: int = 255, height: int = 24, width: int = 32) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[4:12, 6:20] = value
    return mask


def all_samples(dataset):
    return [dataset.get_sample(i) for i in range(len(dataset))]


# ---------------------------------------------------------------- real data


def test_grabcut_real(test_data):
    dataset = GrabCutDataset(test_data / "GrabCut")
    assert len(dataset) == 50 and len(set(dataset.sample_ids)) == 50
    with_ignore = 0
    for sample in all_samples(dataset):
        raw = cv2.imread(str(next((test_data / "GrabCut" / "boundary_GT").glob(sample.sample_id + ".*"))),
                         cv2.IMREAD_GRAYSCALE)
        gt = sample.gt_mask(sample.objects_ids[0])
        assert sample.objects_ids == [0] and gt.dtype == np.int32 and gt.shape == sample.image.shape[:2]
        assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
        assert np.array_equal(gt == 1, raw == 255) and np.array_equal(gt == -1, raw == 128)
        assert np.array_equal(gt == 0, raw == 0)
        with_ignore += bool((gt == -1).any())
    assert with_ignore == 42  # SOURCE.txt: 42 masks have the 128 band, 8 have only 0/255


def test_berkeley_real(test_data):
    dataset = BerkeleyDataset(test_data / "Berkeley")
    assert len(dataset) == 100
    assert set(dataset.sample_ids) == {p.stem for p in (test_data / "Berkeley" / "masks").glob("*.png")}
    for sample in all_samples(dataset):
        gt = sample.gt_mask(0)
        assert set(np.unique(gt)) <= {0, 1} and (gt == 1).any()
        assert sample.image.shape[:2] == gt.shape


@pytest.fixture
def pascalpart_root(test_data, tmp_path) -> Path:
    """The 4 real images and annotations behind symlinks, with our own split list."""
    root = tmp_path / "VOC2010"
    for folder, suffix in (("JPEGImages", ".jpg"), ("Annotations_Part", ".mat")):
        (root / folder).mkdir(parents=True)
        for name in (f"{image_id}{suffix}" for image_id in PASCALPART_IDS):
            (root / folder / name).symlink_to(test_data / "PascalPart" / folder / name)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "part_val.txt").write_text("\n".join(PASCALPART_IDS) + "\n")
    return root


def pascalpart_objects(root: Path, image_id: str):
    return loadmat(str(root / "Annotations_Part" / f"{image_id}.mat"))["anno"]["objects"][0, 0]


def test_pascalpart_one_sample_per_part(pascalpart_root):
    expected = {}
    for image_id in PASCALPART_IDS:
        objects = pascalpart_objects(pascalpart_root, image_id)
        for k in range(objects.shape[1]):
            for j in range(objects["parts"][0, k].shape[1]):
                expected[f"{image_id}:{k}:{j}"] = str(objects["class"][0, k][0])
    assert len(expected) == 119  # SOURCE.txt
    seen = []
    for class_name in sorted(set(expected.values())):
        dataset = PascalPartEvaluationDataset(pascalpart_root, class_name=class_name)
        assert all(expected[i] == class_name for i in dataset.sample_ids)
        seen += dataset.sample_ids
    assert sorted(seen) == sorted(expected)

    dataset = PascalPartEvaluationDataset(pascalpart_root, class_name="dog")
    index = dataset.sample_ids.index("2008_000019:1:5")
    sample = dataset.get_sample(index)
    part = pascalpart_objects(pascalpart_root, "2008_000019")["parts"][0, 1]
    assert str(part["part_name"][0, 5][0]) == "muzzle"
    assert np.array_equal(sample.gt_mask(0), part["mask"][0, 5].astype(np.int32))
    assert sample.sample_id == "2008_000019:1:5" and sample.image.shape[:2] == (272, 480)


def test_pascalpart_filters(pascalpart_root):
    heads = PascalPartEvaluationDataset(pascalpart_root, part_name="head")
    assert len(heads) == 8  # 8 of the 9 objects have a head (the second cow of 2008_000009 shows none)
    dog_heads = PascalPartEvaluationDataset(pascalpart_root, class_name="dog", part_name="head")
    assert len(dog_heads) == 4 and set(dog_heads.sample_ids) < set(heads.sample_ids)
    with pytest.raises(ValueError, match="tvmonitor"):
        PascalPartEvaluationDataset(pascalpart_root, class_name="dragon")
    with pytest.raises(DatasetError, match="no samples"):
        PascalPartEvaluationDataset(pascalpart_root, part_name="wheel")


def test_pascalpart_seeded_subset(pascalpart_root, tmp_path):
    first = PascalPartEvaluationDataset(pascalpart_root, seed=3)
    assert len(first) == 11  # int(119 / 10), as published
    assert PascalPartEvaluationDataset(pascalpart_root, seed=3).sample_ids == first.sample_ids
    assert PascalPartEvaluationDataset(pascalpart_root, seed=4).sample_ids != first.sample_ids

    subset = tmp_path / "subset.txt"
    first.write_subset(subset)
    assert subset.read_text().split() == first.sample_ids
    listed = list(reversed(first.sample_ids))
    subset.write_text("\n".join(listed) + "\n")
    again = PascalPartEvaluationDataset(pascalpart_root, subset_file=subset)
    assert again.sample_ids == listed
    assert np.array_equal(again.get_sample(0).gt_mask(0), first.get_sample(len(first) - 1).gt_mask(0))

    with pytest.raises(ValueError, match="subset_file"):
        PascalPartEvaluationDataset(pascalpart_root, class_name="dog", subset_file=subset)
    subset.write_text("2008_000008:0\n")
    with pytest.raises(DatasetError, match="subset.txt"):
        PascalPartEvaluationDataset(pascalpart_root, subset_file=subset)
    subset.write_text("2008_000008:0:99\n")
    with pytest.raises(SampleError, match="no part 99 of object 0"):
        PascalPartEvaluationDataset(pascalpart_root, subset_file=subset).get_sample(0)


# ---------------------------------------------------------------- synthetic layouts


def test_davis_synthetic(tmp_path):
    write_image(tmp_path / "img" / "a.jpg")
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[2:5, 3:9, 2] = 7  # any non-zero channel counts
    write_mask(tmp_path / "gt" / "a.png", mask)
    sample = DavisDataset(tmp_path).get_sample(0)
    assert sample.sample_id == "a" and np.array_equal(sample.gt_mask(0), (mask.max(axis=2) > 0).astype(np.int32))


def test_brats_and_oaizib_synthetic(tmp_path):
    write_image(tmp_path / "brats" / "image" / "s1.png")
    write_mask(tmp_path / "brats" / "annotation" / "s1.png", square_mask(3))
    assert np.array_equal(BraTSDataset(tmp_path / "brats").get_sample(0).gt_mask(0), square_mask(1))

    write_image(tmp_path / "oai" / "test" / "image" / "k.png")
    mask = square_mask(1)
    mask[16:20, 20:30] = 2
    write_mask(tmp_path / "oai" / "test" / "annotations" / "k.png", mask)
    sample = OAIZIBDataset(tmp_path / "oai").get_sample(0)
    assert sample.objects_ids == [0, 1]
    assert np.array_equal(sample.gt_mask(1), (mask == 2).astype(np.int32))


def test_sstem_connected_components(tmp_path):
    write_image(tmp_path / "raw" / "00.tif")
    mask = square_mask(255)
    mask[16:20, 20:30] = 255
    mask[12, 20] = 255  # touches the first square only diagonally: a separate 4-connected object
    write_mask(tmp_path / "mitochondria" / "00.png", mask)
    sample = ssTEMDataset(tmp_path).get_sample(0)
    assert len(sample.objects_ids) == 3
    assert sum(int(sample.gt_mask(i).sum()) for i in sample.objects_ids) == int((mask > 0).sum())


def write_sbd(root: Path) -> np.ndarray:
    instances = np.zeros((24, 32), np.uint8)
    instances[2:8, 2:10] = 1
    instances[10:20, 12:30] = 2
    for name in ("2008_000001", "2008_000002"):
        write_image(root / "img" / f"{name}.jpg")
        (root / "inst").mkdir(exist_ok=True)
        savemat(str(root / "inst" / f"{name}.mat"),
                {"GTinst": {"Segmentation": instances, "Boundaries": np.zeros(1), "Categories": np.array([[15], [3]])}})
    (root / "val.txt").write_text("2008_000001\n2008_000002\n")
    return instances


def test_sbd_synthetic(tmp_path):
    instances = write_sbd(tmp_path)
    dataset = SBDEvaluationDataset(tmp_path)
    assert dataset.sample_ids == ["2008_000001:1", "2008_000001:2", "2008_000002:1", "2008_000002:2"]
    assert np.array_equal(dataset.get_sample(1).gt_mask(0), (instances == 2).astype(np.int32))
    with pytest.raises(DatasetError, match="train.txt"):
        SBDEvaluationDataset(tmp_path, split="train")


def test_pascalvoc_palette_indices(tmp_path):
    write_image(tmp_path / "JPEGImages" / "2007_000032.jpg")
    indices = np.zeros((24, 32), np.uint8)
    indices[2:8, 2:10] = 1
    indices[10:20, 12:30] = 16  # same gray level as index 1 in the published gray-conversion reading
    indices[8, :] = 255
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    (tmp_path / "SegmentationObject").mkdir()
    mask.save(tmp_path / "SegmentationObject" / "2007_000032.png")
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    dataset = PascalVocDataset(tmp_path)
    assert dataset.sample_ids == ["2007_000032:1", "2007_000032:16"]
    gt = dataset.get_sample(1).gt_mask(0)
    assert np.array_equal(gt == 1, indices == 16) and np.array_equal(gt == -1, indices == 255)


def test_partimagenet_synthetic(tmp_path):
    categories = [{"id": 0, "name": "Quadruped Head"}, {"id": 1, "name": "Quadruped Body"},
                  {"id": 26, "name": "Car Side Mirror"}]
    (tmp_path / "class_names.json").write_text(json.dumps({"categories": categories}))
    mask = np.full((24, 32), 40, np.uint8)
    mask[2:8, 2:10] = 0
    mask[10:20, 12:30] = 1
    mask[20:22, 0:4] = 26
    write_image(tmp_path / "images" / "val" / "n01.JPEG")
    write_mask(tmp_path / "annotations" / "val" / "n01.png", mask)
    write_image(tmp_path / "images" / "val" / "n02.JPEG")  # no mask
    dataset = PartINEvaluationDataset(tmp_path)
    # category 0 is never evaluated, as in the published evaluation (its tables do not include it)
    assert dataset.sample_ids == ["n01:1", "n01:26", "n02"]
    assert np.array_equal(dataset.get_sample(0).gt_mask(0), (mask == 1).astype(np.int32))
    with pytest.raises(SampleError, match="n02.JPEG has no mask"):
        dataset.get_sample(2)
    # an image without a mask stays one failing sample whatever the filters: its parts are unknown
    assert PartINEvaluationDataset(tmp_path, part_name="side mirror").sample_ids == ["n01:26", "n02"]
    assert PartINEvaluationDataset(tmp_path, class_name="quadruped", part_name="body").sample_ids == ["n01:1", "n02"]
    assert PartINEvaluationDataset(tmp_path, class_name="quadruped", part_name="head").sample_ids == ["n02"]
    with pytest.raises(ValueError, match="quadruped"):
        PartINEvaluationDataset(tmp_path, class_name="fish")


def write_sa1b(root: Path, count: int = 4) -> None:
    from pycocotools import mask as mask_utils

    for n in range(count):
        image_id = f"sa_{n}"
        write_image(root / "images" / f"{image_id}.jpg", seed=n)
        annotations = []
        for a in range(8):  # 8 stripes, each overlapping its neighbours
            mask = np.zeros((24, 32), np.uint8, order="F")
            mask[:, 3 * a:3 * a + 6] = 1
            rle = mask_utils.encode(mask)
            annotations.append({"id": a, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
        empty = mask_utils.encode(np.zeros((24, 32), np.uint8, order="F"))
        annotations.append({"id": 8, "segmentation": {"size": empty["size"], "counts": empty["counts"].decode()}})
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"{image_id}.json").write_text(
            json.dumps({"image": {"height": 24, "width": 32, "file_name": f"{image_id}.jpg"},
                        "annotations": annotations}))


def test_sa1b_seeded_subset(tmp_path):
    write_sa1b(tmp_path / "SAM")
    first = SA1BDataset(tmp_path / "SAM", seed=1, num_images=3)
    assert first.sample_ids == SA1BDataset(tmp_path / "SAM", seed=1, num_images=3).sample_ids
    assert {i.split(":")[0] for i in first.sample_ids} == {"sa_0", "sa_1", "sa_2"}  # first 3 by name
    by_image = {}
    for sample in all_samples(first):
        image_id, index = sample.sample_id.split(":")
        assert index != "8"  # the empty annotation is never chosen
        for other in by_image.get(image_id, []):
            assert not ((sample.gt_mask(0) == 1) & (other == 1)).any()
        by_image.setdefault(image_id, []).append(sample.gt_mask(0))
    assert all(1 <= len(masks) <= 5 for masks in by_image.values())

    subset = tmp_path / "sa1b_subset.txt"
    first.write_subset(subset)
    again = SA1BDataset(tmp_path / "SAM", subset_file=subset)
    assert again.sample_ids == first.sample_ids
    assert np.array_equal(again.get_sample(2).gt_mask(0), first.get_sample(2).gt_mask(0))
    subset.write_text("sa_0:8\n")
    with pytest.raises(SampleError, match="sa_0.json is empty"):
        SA1BDataset(tmp_path / "SAM", subset_file=subset).get_sample(0)


def test_get_dataset(tmp_path):
    write_image(tmp_path / "GrabCut" / "data_GT" / "x.jpg")
    write_mask(tmp_path / "GrabCut" / "boundary_GT" / "x.bmp", square_mask())
    write_sbd(tmp_path / "SBD")
    cfg = EasyDict(GRABCUT_PATH=str(tmp_path / "GrabCut"), SBD_PATH=str(tmp_path / "SBD"))
    grabcut = get_dataset("GrabCut", cfg)
    assert isinstance(grabcut, GrabCutDataset)
    assert not hasattr(grabcut, "write_subset")  # only the subset datasets (PascalPart, SA1B) write one
    assert len(get_dataset("SBD", cfg)) == 4
    with pytest.raises(DatasetError, match="train.txt"):
        get_dataset("SBD_Train", cfg)
    with pytest.raises(DatasetError, match="DAVIS_PATH"):
        get_dataset("DAVIS", cfg)
    with pytest.raises(ValueError, match="PartImageNet"):
        get_dataset("COCO", cfg)
    assert len(DATASET_NAMES) == 12


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("dataset_class", [GrabCutDataset, BerkeleyDataset, DavisDataset, SBDEvaluationDataset,
                                           PascalVocDataset, PascalPartEvaluationDataset, PartINEvaluationDataset,
                                           SA1BDataset, ssTEMDataset, BraTSDataset, OAIZIBDataset])
def test_missing_dataset_folder(tmp_path, dataset_class):
    with pytest.raises(DatasetError, match="nowhere not found; expected layout") as error:
        dataset_class(tmp_path / "nowhere")
    assert "\n" not in str(error.value)


def test_missing_subfolder_is_named(tmp_path):
    (tmp_path / "data_GT").mkdir()
    with pytest.raises(DatasetError, match="boundary_GT not found"):
        GrabCutDataset(tmp_path)


@pytest.fixture
def grabcut_root(tmp_path) -> Path:
    for name in ("good", "nomask", "small", "empty", "broken"):
        write_image(tmp_path / "data_GT" / f"{name}.jpg")
    write_mask(tmp_path / "boundary_GT" / "good.bmp", square_mask())
    write_mask(tmp_path / "boundary_GT" / "small.bmp", square_mask(height=20))
    write_mask(tmp_path / "boundary_GT" / "empty.bmp", square_mask(128))  # ignore band only
    write_mask(tmp_path / "boundary_GT" / "broken.bmp", square_mask())
    (tmp_path / "data_GT" / "broken.jpg").write_bytes(b"not an image")
    return tmp_path


@pytest.mark.parametrize("name, message", [
    ("nomask", r"image .*data_GT/nomask.jpg has no mask"),
    ("small", r"mask .*boundary_GT/small.bmp is 20x32 but image .*small.jpg is 24x32"),
    ("empty", r"mask .*boundary_GT/empty.bmp is empty"),
    ("broken", r"cannot read image .*data_GT/broken.jpg"),
])
def test_bad_sample(grabcut_root, name, message):
    dataset = GrabCutDataset(grabcut_root)
    assert dataset.sample_ids == ["broken", "empty", "good", "nomask", "small"]
    with pytest.raises(SampleError, match=message) as error:
        dataset.get_sample(dataset.sample_ids.index(name))
    assert "\n" not in str(error.value)
    assert dataset.get_sample(dataset.sample_ids.index("good")).gt_mask(0).sum() == 8 * 14


def test_unreadable_annotation_at_listing(tmp_path):
    write_sbd(tmp_path)
    (tmp_path / "inst" / "2008_000002.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="2008_000002.mat"):
        SBDEvaluationDataset(tmp_path)
