"""FMG / MGE and any_granularity_generator.py on a tiny seeded model."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

import any_granularity_generator as agg
from helpers import ROOT, tiny_config
from isegm.data.training.proposals import read_proposals
from isegm.generation import (FMGSettings, area_ratio, carve_proposals, keep_one_component, round_granularity,
                              scale_granularity, semantic_click_region, semantic_granularity)
from isegm.model.checkpoint import save_checkpoint
from isegm.toy.seeded import build_seeded_model

SIZE = 224  # tiny model input size
BIAS = {"head.conv_seg.bias": -2.5}  # moves the seeded model off saturation: parts, residuals and objects appear


def _masks(shape, *boxes):
    out = []
    for r0, r1, c0, c1 in boxes:
        m = np.zeros(shape, bool)
        m[r0:r1, c0:c1] = True
        out.append(m)
    return out


# --- MGE -----------------------------------------------------------------------------------------------------

def test_scale_granularity_rounds_area_ratio_with_floor():
    obj, = _masks((10, 10), (0, 10, 0, 10))
    for area, expected in [(3, 0.1), (14, 0.1), (16, 0.2), (34, 0.3), (36, 0.4), (100, 1.0), (50, 0.5)]:
        part = np.zeros(100, bool)
        part[:area] = True
        part = part.reshape(10, 10)
        assert area_ratio(part, obj) == area / 100
        assert scale_granularity(part, obj) == expected
    tiny = np.zeros((10, 10), bool)
    tiny[0, :4] = True
    assert scale_granularity(tiny, obj, floor=0.0) == 0.0  # the residual's rule: no floor
    big_obj, = _masks((20, 20), (0, 10, 0, 10))
    leak, = _masks((20, 20), (0, 11, 0, 11))
    assert scale_granularity(leak, big_obj) == 1.2  # leaks out of the object; FMG then uses the object
    assert round_granularity(0.35) == 0.4 and round_granularity(0.25) == 0.2  # numpy rounding, as published
    with pytest.raises(ValueError):
        area_ratio(obj, np.zeros((10, 10), bool))


def test_semantic_granularity_is_ratio_of_probability_ranges():
    obj, part = _masks((8, 8), (0, 8, 0, 8), (0, 4, 0, 4))
    probs = np.zeros((8, 8), np.float32)
    probs[:4, :4] = np.linspace(0.5, 0.8, 16).reshape(4, 4)  # part range 0.3; object range 0.8
    assert semantic_granularity(probs, part, obj) == round(0.3 / 0.8, 1)
    probs[7, 7] = 0.9 + 0.0  # object range 0.9
    assert semantic_granularity(probs, part, obj) == round(0.3 / 0.9, 1)
    assert semantic_granularity(np.full((8, 8), 0.7, np.float32), part, obj) == 1.0  # flat object
    assert semantic_granularity(probs, np.zeros((8, 8), bool), obj) == 0.0
    wide = probs.copy()
    wide[0, 0] = -1.0  # part spread above the object's (part reaches outside) -> capped
    assert semantic_granularity(wide, np.ones((8, 8), bool), part) == 1.0


def test_semantic_click_region_erodes_by_a_tenth_of_the_side():
    part, = _masks((60, 60), (10, 50, 10, 50))  # 1600 px -> ceil(0.1 * 40) = 4 erosions
    region = semantic_click_region(part)
    assert region.sum() == 32 * 32 and region[14:46, 14:46].all()
    thin, = _masks((20, 20), (5, 6, 2, 18))  # erosion empties it -> the part itself
    assert (semantic_click_region(thin) == thin).all()


def test_keep_one_component():
    a, b, c = _masks((100, 100), (0, 50, 0, 40), (60, 100, 60, 100), (0, 5, 90, 95))
    rng = np.random.default_rng(0)
    both = a | b | c
    chosen = {int(keep_one_component(both, rng, 1500).sum()) for _ in range(20)}
    assert chosen == {2000, 1600}  # only the two components above 1500 px are drawn
    assert keep_one_component(both, rng, 5000).sum() == 2000  # none above: the largest
    assert (keep_one_component(a, rng, 1500) == a).all()


# --- FMG -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def carving_model():
    torch.manual_seed(0)
    return build_seeded_model(tiny_config(), overrides=BIAS)


def test_fmg_batched_equals_one_object_at_a_time(carving_model, rgb_image):
    objects = _masks(rgb_image.shape[:2], (30, 90, 40, 120), (0, 40, 0, 60), (70, 120, 100, 160))
    settings = FMGSettings(input_size=(SIZE, SIZE))
    batched = carve_proposals(carving_model, rgb_image, objects, np.random.default_rng(7), settings)
    single = carve_proposals(carving_model, rgb_image, objects, np.random.default_rng(7), settings, batched=False)
    assert len(batched) == len(single) == 3
    kinds = set()
    for obj, per_b, per_s in zip(objects, batched, single):
        assert [p.kind for p in per_b] == [p.kind for p in per_s]
        for pb, ps in zip(per_b, per_s):
            kinds.add(pb.kind)
            assert pb.gra == ps.gra and np.array_equal(pb.mask, ps.mask)
            assert pb.mask.dtype == np.uint8 and pb.mask.any()
            floor = 0.1 if pb.kind == "part" else 0.0
            assert pb.scale == max(floor, round_granularity(area_ratio(pb.mask, obj)))
            assert 0.0 <= pb.semantic <= 1.0
    assert len(kinds) >= 2
    chunked = carve_proposals(carving_model, rgb_image, objects, np.random.default_rng(7),
                              FMGSettings(input_size=(SIZE, SIZE), max_batch=2))
    assert [[p.gra for p in per] for per in chunked] == [[p.gra for p in per] for per in batched]


# --- CLI -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, carving_model) -> Path:
    return save_checkpoint(carving_model.state_dict(), carving_model.cfg,
                           tmp_path_factory.mktemp("ckpt") / "tiny", contents="full")


@pytest.fixture(scope="module")
def sbd_set(tmp_path_factory, test_data) -> Path:
    """SBD layout from 3 GrabCut images (160 x 120): object 1 = GrabCut foreground, object 2 = a background
    block; a 4th listed image is corrupt."""
    root = tmp_path_factory.mktemp("sbd")
    (root / "img").mkdir()
    (root / "inst").mkdir()
    names = sorted(p.stem for p in (test_data / "GrabCut" / "data_GT").glob("*.jpg"))[:3]
    for name in names:
        image = cv2.resize(cv2.imread(str(test_data / "GrabCut" / "data_GT" / f"{name}.jpg")), (160, 120))
        gt = cv2.imread(str(test_data / "GrabCut" / "boundary_GT" / f"{name}.bmp"), cv2.IMREAD_GRAYSCALE)
        gt = cv2.resize(gt, (160, 120), interpolation=cv2.INTER_NEAREST)
        labels = np.zeros(gt.shape, np.uint8)
        labels[:50, :70] = 2
        labels[gt == 255] = 1
        cv2.imwrite(str(root / "img" / f"{name}.jpg"), image)
        savemat(str(root / "inst" / f"{name}.mat"), {"GTinst": {"Segmentation": labels}})
    (root / "img" / "broken.jpg").write_bytes(b"not a jpeg")
    savemat(str(root / "inst" / "broken.mat"), {"GTinst": {"Segmentation": np.ones((120, 160), np.uint8)}})
    (root / "train.txt").write_text("\n".join(names[:2] + ["broken"] + names[2:]) + "\n")
    return root


def _args(checkpoint, dataset, out, *extra):
    return ["--checkpoint", str(checkpoint), "--cpu", "--dataset-path", str(dataset), "--save-path", str(out),
            "--save-name", "proposal", "--input-size", str(SIZE), "--workers", "0", "--seed", "3", *extra]


@pytest.mark.slow
def test_generator_cli_scale_granularity_and_restart(tiny_checkpoint, sbd_set, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    full = tmp_path / "full"
    assert agg.main(_args(tiny_checkpoint, sbd_set, full, "--batch-size", "2")) == 0
    assert "skipping broken" in caplog.text
    proposals = read_proposals(full / "proposal.pkl")
    names = [n for n in (sbd_set / "train.txt").read_text().split() if n != "broken"]
    assert list(proposals) == [n for n in names if n in proposals] and len(proposals) >= 2
    for name, entry in proposals.items():
        labels = loadmat(str(sbd_set / "inst" / f"{name}.mat"))["GTinst"]["Segmentation"][0, 0]
        objects = [labels == v for v in (1, 2)]
        assert entry["mask"].shape[1:] == labels.shape and entry["gra"].shape == (entry["mask"].shape[0], 2)
        for mask, (semantic, scale) in zip(entry["mask"], entry["gra"]):
            # the scale granularity is the area ratio to its object rounded to 0.1 (at least 0.1)
            assert any(scale == max(0.1, round_granularity(area_ratio(mask, obj))) for obj in objects)
            assert 0.0 <= semantic <= 1.0

    # killed after the first shard (SIGKILL, no clean-up), then restarted: same file as the uninterrupted run
    resumed = tmp_path / "resumed"
    # the killed process runs as many threads as this one: the same kernels, so the same bytes by construction
    env = dict(os.environ, **{agg.KILL_HOOK_ENV: "1"}, OMP_NUM_THREADS=str(torch.get_num_threads()))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    killed = subprocess.run([sys.executable, str(ROOT / "any_granularity_generator.py"),
                             *_args(tiny_checkpoint, sbd_set, resumed, "--shard-size", "1", "--batch-size", "1")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    shards = list((resumed / "proposal.shards").glob("shard-*.npz"))
    assert len(shards) == 1 and not (resumed / "proposal.pkl").exists()
    caplog.clear()
    assert agg.main(_args(tiny_checkpoint, sbd_set, resumed, "--shard-size", "1")) == 0
    assert "1 already done" in caplog.text
    assert (resumed / "proposal.pkl").read_bytes() == (full / "proposal.pkl").read_bytes()

    # a restart with other arguments refuses to mix shards
    assert agg.main(_args(tiny_checkpoint, sbd_set, resumed)[:-1] + ["4"]) == 2
    assert agg.main(_args(tiny_checkpoint, sbd_set, resumed, "--shard-size", "1", "--precision", "bf16")) == 2


@pytest.mark.slow
def test_train_py_trains_on_the_generated_proposals(tiny_checkpoint, carving_model, sbd_set, tmp_path):
    import yaml

    assert agg.main(_args(tiny_checkpoint, sbd_set, tmp_path / "proposals")) == 0
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in carving_model.cfg.to_dict().items()}
    config = {"MODEL": cfg,
              "DATA": {"dataset": "sbd", "path": str(sbd_set), "split": "train", "crop_size": [SIZE, SIZE],
                       "min_object_area": 10},
              "POINTS": {"max_num_points": 4},
              "TRAIN": {"epochs": 1, "batch_size": 2, "max_num_next_clicks": 1, "image_dump_interval": 0}}
    (tmp_path / "sbd_tiny.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "paths.yml").write_text(yaml.safe_dump({"EXPS_PATH": str(tmp_path / "exps")}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), str(tmp_path / "sbd_tiny.yaml"), "--cpu", "--workers", "0",
         "--enable_lora", "--weights", str(tiny_checkpoint), "--part_path", str(tmp_path / "proposals" / "proposal.pkl"),
         "--paths-config", str(tmp_path / "paths.yml"), "--max-iterations", "1"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 0: slider signal" in result.stderr
    assert "epoch 0 (stopped early): 1 iterations" in result.stderr
