"""Segment everything (isegm/generation/everything.py): the filters, the known scene, batching, the CLI."""
import json
import logging
import time

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from everything_helpers import ColourRuleNet, best_iou, known_scene
from helpers import write_tiny_checkpoints
from isegm.generation.everything import (MIN_SCALE, EverythingGenerator, EverythingSettings, Layer, grid_points,
                                         interior_point, mask_nms, model_scale, remove_small_regions, stability_score)
from isegm.inference.predictors import get_predictor
from isegm.inference.predictors import base as predictor_base
from isegm.inference.predictors.base import CPU_IMAGES_PER_FORWARD

PART, WHOLE = Layer(gra=0.3), Layer(gra=1.0)


def rule_predictor(skip_clicks: int = -1, net=None, size: int = 160):
    return get_predictor(net or ColourRuleNet(), "NoBRS", "cpu",
                         zoom_in_params=dict(skip_clicks=skip_clicks, target_size=(size, size), min_crop_size=40))


# ----- the pieces --------------------------------------------------------------------------------------------------

def test_grid_points_are_cell_centres():
    assert grid_points(2, 100, 60) == [(25.0, 15.0), (25.0, 45.0), (75.0, 15.0), (75.0, 45.0)]


def test_stability_score_is_iou_of_the_two_thresholds():
    probs = np.zeros((10, 10), np.float32)
    probs[:4] = 0.9   # in both masks
    probs[4:6] = 0.55  # only in the mask at 0.5 - 0.1
    assert stability_score(probs, 0.5, 0.1) == pytest.approx(40 / 60)
    assert stability_score(np.zeros((4, 4)), 0.5, 0.1) == 0.0


def test_remove_small_regions_drops_fragments_and_fills_holes():
    mask = np.zeros((40, 40), bool)
    mask[5:30, 5:30] = True
    mask[10:13, 10:13] = False   # hole of 9 px
    mask[0:25, 0:2] = False
    mask[35:37, 35:37] = True    # fragment of 4 px
    out = remove_small_regions(mask, 10)
    assert out[10:13, 10:13].all() and not out[35:37, 35:37].any()
    assert np.array_equal(out[5:30, 5:30], np.ones((25, 25), bool))
    big_hole = mask.copy()
    big_hole[15:25, 15:25] = False  # 100 px: kept as a hole
    assert not remove_small_regions(big_hole, 10)[15:25, 15:25].any()
    assert np.array_equal(remove_small_regions(mask, 0), mask)


def test_mask_nms_keeps_the_best_of_each_duplicate_group():
    a = np.zeros((20, 20), bool)
    a[:10] = True
    a2 = a.copy()
    a2[10] = True   # IoU with a: 10/11
    b = np.zeros((20, 20), bool)
    b[15:] = True
    assert mask_nms([a, a2, b], [0.5, 0.9, 0.1], 0.7) == [1, 2]
    assert mask_nms([a, a2, b], [0.5, 0.9, 0.1], 0.95) == [1, 0, 2]
    assert mask_nms([], [], 0.7) == []


def test_mask_nms_drops_masks_mostly_inside_a_better_one():
    whole = np.zeros((20, 20), bool)
    whole[:, :10] = True
    part = np.zeros((20, 20), bool)
    part[:8, :9] = True  # inside whole (IoU 0.36), 100% of the smaller one contained
    other = np.zeros((20, 20), bool)
    other[:8, 5:15] = True  # half of it inside whole
    assert mask_nms([whole, part, other], [0.9, 0.8, 0.7], 0.7) == [0, 1, 2]
    assert mask_nms([whole, part, other], [0.9, 0.8, 0.7], 0.7, containment_thresh=0.8) == [0, 2]
    assert mask_nms([whole, part, other], [0.5, 0.8, 0.7], 0.7, containment_thresh=0.8) == [1, 2]


def test_grids_go_coarse_to_fine():
    assert EverythingSettings(points_per_side=16).grid_sides() == [4, 8, 16]
    assert EverythingSettings(points_per_side=16, levels=1).grid_sides() == [16]
    assert EverythingSettings(points_per_side=2, levels=3).grid_sides() == [1, 2]
    assert EverythingSettings(points_per_side=16, plain=True).grid_sides() == [16]
    assert EverythingSettings(min_area=0.001).min_pixels(375, 500) == 188
    with pytest.raises(ValueError, match="share of the image"):
        EverythingSettings(min_area=100)


def test_interior_point_is_farthest_from_the_edge():
    mask = np.zeros((30, 40), bool)
    mask[5:25, 2:12] = True   # 20 x 10: its centre is 5 px from the edge
    mask[:, 32:] = True       # 30 x 8 at the image border, which counts as an edge: 4 px deep at most
    (y, x), depth = interior_point(mask)
    assert 9 <= y <= 20 and x in (6, 7) and depth == pytest.approx(5, abs=0.5)


def test_model_scale_is_a_high_percentile_of_the_peaks():
    assert model_scale([0.3] * 8 + [6.0, 6.0]) == pytest.approx(6.0)
    assert model_scale([0.04] * 8 + [0.84, 0.84]) == pytest.approx(0.84)
    assert model_scale([-3.0, 0.1]) == model_scale([]) == MIN_SCALE


def test_layers_check_their_signal():
    assert Layer(gra=0.3).name == "gra0.3" and Layer(phrase="left leg").name == "phrase-left_leg"
    for bad in (dict(gra=0.05), dict(gra=1.5), dict(), dict(gra=0.5, phrase="head"), dict(phrase=" ")):
        with pytest.raises(ValueError):
            Layer(**bad)
    with pytest.raises(ValueError, match="twice"):
        EverythingGenerator(rule_predictor()).generate(np.zeros((32, 32, 3), np.uint8), [PART, Layer(gra=0.3)])


# ----- the known scene ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scene():
    return known_scene()


SOFT = 0.14  # the stand-in's logits scaled down: peak probabilities of about 0.7, as the quick start's model


@pytest.mark.parametrize("logit_scale", [1.0, SOFT], ids=["confident", "soft"])
def test_known_scene_gives_parts_and_objects_at_their_granularities(scene, logit_scale):
    """One run, two layers sharing the grids, the same defaults for a confident and a soft network: the parts at
    0.3 and the objects at 1.0, each once; the unstable blob and the background never; the dot between the
    coarser grids' points from the finest grid; far fewer clicks than the grids hold."""
    image, objects, parts = scene
    net = ColourRuleNet(logit_scale=logit_scale)
    generator = EverythingGenerator(rule_predictor(net=net), EverythingSettings(points_per_side=16, min_area=0.0008))
    result = generator.generate(image, [PART, WHOLE])
    for layer, truth in ((PART, parts), (WHOLE, objects)):
        masks = [m.segmentation for m in result[layer]]
        assert len(masks) == len(truth), layer
        assert min(best_iou(t, masks) for t in truth) >= 0.9, layer
        scores = [m.score for m in result[layer]]
        assert scores == sorted(scores, reverse=True)
        assert all(m.segmentation[int(m.click[0]), int(m.click[1])] for m in result[layer])
        dot = max(result[layer], key=lambda m: best_iou(objects[2], [m.segmentation]))
        assert dot.level == 3
    assert max(net.batch_sizes) == CPU_IMAGES_PER_FORWARD == 2  # a CPU runs the model 2 images at a time
    grid_clicks = 2 * (4 * 4 + 8 * 8 + 16 * 16)
    assert generator.timings.clicks < grid_clicks / 4 and generator.timings.skipped > grid_clicks / 2
    assert generator.timings.images == generator.timings.clicks  # no flip, no crop recalculation (skip_clicks=-1)
    assert generator.timings.forwards < generator.timings.clicks / 8  # many clicks per predictor forward


def test_an_answer_far_weaker_than_the_models_scale_is_not_kept(scene):
    """The blob answered sharply but at a quarter of the objects' logits: stable, yet below --min-confidence."""
    image, objects, _ = scene
    for logit_scale in (1.0, SOFT):
        counts = []
        for min_confidence in (EverythingSettings.min_confidence, 0.0):
            net = ColourRuleNet(logit_scale=logit_scale, blob_logit=1.5)
            settings = EverythingSettings(points_per_side=16, min_area=0.0008, min_confidence=min_confidence)
            counts.append(len(EverythingGenerator(rule_predictor(net=net), settings).generate(image, [WHOLE])[WHOLE]))
        assert counts[0] == len(objects) < counts[1], (logit_scale, counts)  # the blob's disks kept without it


def test_re_clicks_at_the_interior_and_scores_their_agreement(scene):
    """Grid clicks near an object's edge are asked again at its interior; the kept mask carries the re-click and
    the agreement of the two answers; a soft network gives the same masks and scores."""
    image = scene[0]
    runs = []
    for logit_scale in (1.0, SOFT):
        settings = EverythingSettings(points_per_side=16, min_area=0.0008, recenter=True)
        runs.append(EverythingGenerator(rule_predictor(net=ColourRuleNet(logit_scale=logit_scale)), settings)
                    .generate(image, [WHOLE])[WHOLE])
    confident, soft = runs
    assert any(m.click not in grid_points(4, 160, 160) + grid_points(8, 160, 160) + grid_points(16, 160, 160)
               for m in confident), "at least one mask comes from a re-click"
    assert all(0.9 <= m.agreement <= 1 for m in confident)
    assert [m.click for m in confident] == [m.click for m in soft]
    assert all(np.array_equal(a.segmentation, b.segmentation) for a, b in zip(confident, soft))
    without = EverythingGenerator(rule_predictor(), EverythingSettings(points_per_side=16, min_area=0.0008)
                                  ).generate(image, [WHOLE])[WHOLE]  # the default: no re-click
    assert all(m.agreement == 1 for m in without)


def test_plain_grid_keeps_duplicates_and_unstable_masks(scene):
    image, objects, parts = scene
    settings = EverythingSettings(points_per_side=8, min_area=0.0008, plain=True)
    result = EverythingGenerator(rule_predictor(), settings).generate(image, [WHOLE])[WHOLE]
    assert len(result) > 2 * len(objects)
    assert any(m.stability < 0.5 for m in result)
    assert best_iou(objects[2], [m.segmentation for m in result]) < 0.5  # no first-grid click on the dot


@pytest.mark.parametrize("flip", [False, True], ids=["no-flip", "flip"])
@pytest.mark.parametrize("images_per_forward", [2, 64], ids=["cpu-chunks", "whole-batches"])
@pytest.mark.parametrize("skip_clicks", [-1, 0])
def test_batched_equals_one_click_at_a_time(scene, skip_clicks, images_per_forward, flip, monkeypatch):
    """The batched path gives the masks of BasePredictor.get_prediction click by click (with skip_clicks=0 the
    small objects go through zoom-in's recalculation on a crop), in the CPU's chunks of 2 images and in whole
    batches (as on a GPU), with and without the test-time flip."""
    monkeypatch.setattr(predictor_base, "CPU_IMAGES_PER_FORWARD", images_per_forward)
    image = scene[0]
    settings = EverythingSettings(points_per_side=4, levels=1, min_area=0.0008)  # 2 layers x 16 clicks: 1 batch
    runs = []
    for batched in (True, False):
        net = ColourRuleNet()
        generator = EverythingGenerator(rule_predictor(skip_clicks, net, size=192), settings, batched=batched,
                                        flip=flip)
        runs.append((generator.generate(image, [PART, WHOLE]), net))
    (batched, net), (single, single_net) = runs
    per_click = 2 if flip else 1
    assert max(net.batch_sizes) == min(images_per_forward, per_click * settings.points_per_batch)
    assert max(single_net.batch_sizes) == per_click
    # skip_clicks=-1: the whole image at the crop size; 0: the image as it is, then crops of the small objects
    assert set(net.input_sizes) == ({(192, 192)} if skip_clicks == -1 else {(160, 160), (192, 192)})
    for layer in (PART, WHOLE):
        assert batched[layer] and [m.click for m in batched[layer]] == [m.click for m in single[layer]]
        assert all(np.array_equal(a.segmentation, b.segmentation) for a, b in zip(batched[layer], single[layer]))


@pytest.mark.slow
def test_batched_equals_single_on_a_graco_model(tiny_model, rgb_image):
    """The tiny GraCo model, plain grid (every mask kept): batched and one-at-a-time masks are equal."""
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params=dict(skip_clicks=-1, target_size=(224, 224)))
    settings = EverythingSettings(points_per_side=2, min_area=0, plain=True, stability_thresh=0.0)
    out = [EverythingGenerator(predictor, settings, batched=b).generate(rgb_image, [Layer(gra=0.4)])
           for b in (True, False)]
    masks = [[m.segmentation for m in run[Layer(gra=0.4)]] for run in out]
    assert len(masks[0]) == len(masks[1]) == 4
    assert all(np.array_equal(a, b) for a, b in zip(*masks))


def test_phrase_layer_goes_through_the_phrase_branch(tiny_model, rgb_image, tmp_path):
    from isegm.toy.seeded import seeded_clip_text_state
    torch.save(seeded_clip_text_state(), tmp_path / "clip.pt")
    tiny_model.phrase_encoder.load_clip_weights(tmp_path / "clip.pt")
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params=dict(skip_clicks=-1, target_size=(224, 224)))
    settings = EverythingSettings(points_per_side=1, min_area=0, plain=True)
    head, gra = Layer(phrase="head"), Layer(gra=1.0)
    result = EverythingGenerator(predictor, settings).generate(rgb_image, [head, gra])
    assert result[head][0].layer == head and result[head][0].confidence != result[gra][0].confidence


# ----- the command ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_tiny_checkpoints(tmp_path_factory.mktemp("everything_ckpt"))


def _run(checkpoints, images, out, *extra):
    from segment_everything import main
    base, lora = checkpoints
    return main(["--checkpoint", str(base), "--lora_checkpoint", str(lora), "--cpu", "--precision", "fp32",
                 "--images", str(images), "--output", str(out), "--points-per-side", "2", "--target-size", "64",
                 "--min-area", "0", "--stability-thresh", "0", *extra])


def test_cli_writes_coco_pngs_preview_and_skips_finished_images(checkpoints, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    image = known_scene(64)[0]
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert _run(checkpoints, folder, out, "--gra", "0.3,1.0") == 0
    for stem in ("a", "b"):
        document = json.loads((out / f"{stem}.json").read_text())
        assert document["images"][0]["height"] == 64
        layers = {a["layer"] for a in document["annotations"]}
        assert layers <= {"gra0.3", "gra1"}
        for annotation in document["annotations"]:
            assert {"segmentation", "score", "granularity", "click", "bbox", "area"} <= set(annotation)
            assert annotation["granularity"] in (0.3, 1.0) and len(annotation["click"]) == 2
            assert isinstance(annotation["segmentation"]["counts"], str)
        for layer in ("gra0.3", "gra1"):
            png = cv2.imread(str(out / f"{stem}_{layer}.png"), cv2.IMREAD_UNCHANGED)
            mine = [a for a in document["annotations"] if a["layer"] == layer]
            assert mine and png.shape == (64, 64) and png.max() == len(mine)
            for annotation in mine:  # the PNG holds each mask, less what a later (smaller) one covers
                rle = annotation["segmentation"]
                mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
                drawn = png == annotation["instance_id"]
                assert drawn.any() and not (drawn & ~mask).any() and (png[mask & ~drawn] > 0).all()
        assert cv2.imread(str(out / f"{stem}_preview.png")).shape == (64, 128, 3)
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    caplog.clear()
    caplog.set_level(logging.INFO)
    assert _run(checkpoints, folder, out, "--gra", "0.3,1.0") == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written
    assert "2 of its 2 images already done" in caplog.text

    (out / "b.json").unlink()  # a run killed before b's JSON: b is redone, a is not
    assert _run(checkpoints, folder, out, "--gra", "0.3,1.0") == 0
    assert (out / "b.json").is_file() and (out / "a.json").stat().st_mtime_ns == written["a.json"]
    assert _run(checkpoints, folder, out, "--gra", "0.5") == 0  # other settings: done again
    assert (out / "a_gra0.5.png").is_file()


def test_cli_writes_label_studio_tasks_with_a_prediction_per_layer(checkpoints, tmp_path):
    """--labelstudio: one task per image, one prediction per layer whose brush regions decode to the COCO masks."""
    from labelstudio_helpers import decode_brush
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b c.png"):
        cv2.imwrite(str(folder / name), cv2.cvtColor(known_scene(64)[0], cv2.COLOR_RGB2BGR))
    out, tasks_path = tmp_path / "out", tmp_path / "ls" / "tasks.json"
    assert _run(checkpoints, folder, out, "--gra", "0.3,1.0", "--labelstudio", str(tasks_path),
                "--labelstudio-image-url", "http://files.example/photos/") == 0
    tasks = json.loads(tasks_path.read_text())
    assert [t["data"]["image"] for t in tasks] == ["http://files.example/photos/a.png",
                                                   "http://files.example/photos/b%20c.png"]
    for task, stem in zip(tasks, ("a", "b c")):
        document = json.loads((out / f"{stem}.json").read_text())
        assert [p["model_version"] for p in task["predictions"]] == [
            "GraCo segment everything, granularity 0.3", "GraCo segment everything, granularity 1"]
        for prediction, layer in zip(task["predictions"], ("gra0.3", "gra1")):
            coco = [a for a in document["annotations"] if a["layer"] == layer]
            assert len(prediction["result"]) == len(coco) > 0
            for result, annotation in zip(prediction["result"], coco):
                rle = annotation["segmentation"]
                mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
                assert np.array_equal(decode_brush(result), mask) and result["value"]["brushlabels"] == ["Object"]
                assert result["meta"]["text"][0].startswith("granularity")


@pytest.mark.parametrize("extra, expected", [
    (["--labelstudio", "t.json"], "go together"),
    (["--labelstudio-image-url", "http://x/"], "go together"),
    (["--labelstudio-config", "c.xml"], "needs --labelstudio"),
    (["--min-area", "100"], "share of the image"),
    (["--labelstudio", "t.json", "--labelstudio-image-url", "http://x/", "--labelstudio-config", "missing.xml"],
     "--labelstudio-config"),
])
def test_cli_label_studio_and_area_flags_one_line(checkpoints, tmp_path, capsys, extra, expected):
    cv2.imwrite(str(tmp_path / "ok.png"), known_scene(32)[0])
    assert _run(checkpoints, tmp_path / "ok.png", tmp_path / "out", *extra[:2], *extra[2:]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


@pytest.mark.parametrize("case, expected", [
    ("empty folder", "holds no images"),
    ("unreadable image", "cannot read image"),
    ("gra 0.05", "outside [0.1, 1]"),
    ("gra 1.5", "outside [0.1, 1]"),
    ("gra text", "is not a number"),
    ("missing", "no such file or folder"),
])
def test_cli_bad_input_one_line(checkpoints, tmp_path, capsys, case, expected):
    images, extra = tmp_path / "in", []
    images.mkdir()
    good = images / "ok.png"
    cv2.imwrite(str(good), np.zeros((16, 16, 3), np.uint8))
    if case == "unreadable image":
        images = images / "broken.jpg"
        images.write_bytes(b"not a jpeg")
    elif case == "empty folder":
        good.unlink()
    elif case == "missing":
        images = tmp_path / "nowhere"
    else:
        extra = ["--gra", {"gra 0.05": "0.3,0.05", "gra 1.5": "1.5", "gra text": "abc"}[case]]
    assert _run(checkpoints, images, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


def test_cli_unreadable_image_in_a_folder_is_skipped(checkpoints, tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "ok.png"), known_scene(32)[0])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    assert _run(checkpoints, folder, tmp_path / "out") == 1
    assert (tmp_path / "out" / "ok.json").is_file() and not (tmp_path / "out" / "broken.json").exists()
    assert "skipping" in caplog.text and "broken.jpg" in caplog.text


# ----- where people use it ----------------------------------------------------------------------------------------

def test_label_studio_pre_annotation_answers_at_once_and_computes_in_the_background(scene, tmp_path, monkeypatch):
    """A request without clicks (Label Studio's "Retrieve predictions" on a batch) is answered at once, each task
    without a prediction; the tasks are computed in the background, each once however often it is asked for, and
    the next request for a task gets one brush result per mask at the backend's pre-annotation granularity (the
    stand-in network gives parts below 0.6), image read over HTTP."""
    from isegm.interactive import PredictorSettings, SharedModel
    from isegm.labelstudio.backend import GraCoBackend, PreAnnotation
    from isegm.labelstudio.images import ImageSource
    from isegm.labelstudio.labeling_config import EXAMPLE_CONFIG
    from isegm.labelstudio.sessions import SessionPool
    from labelstudio_helpers import StaticFiles, decode_brush
    image, _, parts = scene
    cv2.imwrite(str(tmp_path / "scene.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    files = StaticFiles(tmp_path)
    try:
        pool = SessionPool(SharedModel(ColourRuleNet(), "cpu", PredictorSettings(target_size=160)))
        tasks = [{"id": i, "data": {"image": files.url("scene.png")}} for i in (7, 8)]
        request = {"tasks": tasks, "label_config": EXAMPLE_CONFIG}
        images = ImageSource(allowed_hosts=(files.host,))
        assert GraCoBackend(pool, images).predict(request) == {"results": []}
        backend = GraCoBackend(pool, images, pre_annotation=PreAnnotation(0.5, EverythingSettings(points_per_side=16,
                                                                                               min_area=0.0008)))
        computed = []
        generate = EverythingGenerator.generate

        def counting(self, *args, **kwargs):
            computed.append(1)
            return generate(self, *args, **kwargs)

        monkeypatch.setattr(EverythingGenerator, "generate", counting)
        request = {**request, "params": {"context": None}}
        assert backend.predict(request) == {"results": [[], []]}, "nothing is computed before the answer"
        backend.predict(request)  # asked again while the first tasks run (Label Studio repeats itself)
        assert backend.queue.wait_idle(120)
        answer = backend.predict(request)
        assert backend.queue.wait_idle(1) and len(computed) == 2, "each task is computed once"
    finally:
        files.close()
    for (prediction,) in answer["results"]:
        masks = [decode_brush(result) for result in prediction["result"]]
        assert len(masks) == len(parts) and min(best_iou(p, masks) for p in parts) >= 0.8
        assert len({r["id"] for r in prediction["result"]}) == len(masks) and 0 < prediction["score"] <= 1
        assert all(r["type"] == "brushlabels" and r["value"]["brushlabels"] for r in prediction["result"])


def test_the_pre_annotation_queue_is_bounded():
    """At most ``max_pending`` tasks wait: anyone who reaches the port can send tasks."""
    import threading
    from isegm.labelstudio.batch import BatchJob, PreAnnotationQueue
    queue, release = PreAnnotationQueue(max_pending=2), threading.Event()

    def job(key):
        return BatchJob(key, key, lambda: release.wait(10) and {"result": []}, lambda result, claim: None)

    try:
        assert queue.submit(job(1)) and queue.submit(job(2))
        assert not queue.submit(job(3)) and not queue.submit(job(1)) and len(queue) == 2
    finally:
        release.set()
    assert queue.wait_idle(10) and queue.ready(1) == {"result": []} and queue.submit(job(3))
    queue.close()


def test_a_click_goes_ahead_of_the_background_forwards():
    """The model lock: while a forward runs, a waiting interactive holder gets the lock before a background one
    that waited first."""
    import threading
    from isegm.interactive.model_lock import ModelLock
    lock, order = ModelLock(), []

    def batch_forward():
        with lock.background():
            order.append("batch")

    def click():
        with lock:
            order.append("click")

    lock.acquire()  # a forward runs
    background = threading.Thread(target=batch_forward)
    background.start()
    time.sleep(0.2)
    interactive = threading.Thread(target=click)
    interactive.start()
    time.sleep(0.2)
    assert order == [] and lock.locked()
    lock.release()
    background.join(5)
    interactive.join(5)
    assert order == ["click", "batch"]


def test_serve_checks_the_pre_annotation_granularity(capsys):
    import serve
    assert serve.main(["--checkpoint", "x", "--cpu", "--pre-annotate-granularity", "0.05"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--pre-annotate-granularity" in err and "[0.1, 1]" in err


def test_a_background_generation_holds_the_model_lock_for_one_model_call_at_a_time(scene):
    """With the shared model's lock, the generator takes it for one model call at a time (2 images on a CPU), so a
    click waits for that call at most, not for a batch of 32 clicks."""
    import contextlib
    from isegm.interactive.model_lock import ModelLock
    net, lock, holds = ColourRuleNet(), ModelLock(), []
    background = lock.background

    @contextlib.contextmanager
    def counted():
        with background():
            before = len(net.batch_sizes)
            yield
            holds.append(len(net.batch_sizes) - before)

    lock.background = counted
    settings = EverythingSettings(points_per_side=4, levels=1, min_area=0.0008)
    result = EverythingGenerator(rule_predictor(-1, net, size=192), settings, lock=lock).generate(scene[0], [WHOLE])
    assert result[WHOLE] and len(holds) > 1 and max(holds) == 1 and max(net.batch_sizes) == 2


def tool_at_part_granularity(worker, image, strip_enabled: bool):
    """The Tk tool's display-free controller on ``worker`` with the rule network, ``image`` open, granularity 0.3."""
    from isegm.demo.controller import DemoController
    from isegm.interactive import PredictorSettings
    controller = DemoController(worker, "cpu", PredictorSettings(target_size=160), strip_enabled=strip_enabled)
    controller.load_model(ColourRuleNet)
    controller.wait()
    controller.set_image(image)
    controller.set_granularity(0.3)
    return controller


def test_annotation_tool_segment_all_adds_objects_to_correct(scene):
    """The Tk tool's "Segment all" (display-free controller): the parts at granularity 0.3 become finished
    objects, smaller ones drawn on top, and the tool can go on clicking."""
    from isegm.demo.worker import Worker
    image, _, parts = scene
    worker = Worker()
    try:
        controller = tool_at_part_granularity(worker, image, strip_enabled=False)
        assert controller.segment_all(EverythingSettings(points_per_side=16, min_area=0.0008))
        controller.wait()
        objects = controller.objects
        assert len(objects) == len(parts) and controller.dirty
        assert min(best_iou(p, [o.mask for o in objects]) for p in parts) >= 0.8
        assert [o.object_id for o in objects] == list(range(1, len(parts) + 1))
        areas = [int(o.mask.sum()) for o in objects]
        assert areas == sorted(areas, reverse=True)
        assert controller.add_click(135, 135, True)  # correcting goes on as usual
        controller.wait()
        assert controller.current_prob is not None
    finally:
        worker.close()


def test_annotation_tool_segment_all_is_not_dropped_by_a_click_that_arrives_while_it_waits(scene):
    """"Segment all" waits behind a running job; a click arrives, and its prediction asks for the granularity strip:
    the strip must not replace the waiting "Segment all", whose status ends in the number of masks."""
    import threading
    from isegm.demo.worker import Worker
    image, _, parts = scene
    worker = Worker()
    try:
        controller = tool_at_part_granularity(worker, image, strip_enabled=True)
        controller.wait()
        assert controller.add_click(135, 135, True)
        deadline = time.monotonic() + 30
        while not worker._done.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)  # the click's forward has run; its answer waits for the UI thread
        running = threading.Event()
        worker.submit(running.wait, lambda *args: None)  # a job that runs until released
        assert controller.segment_all(EverythingSettings(points_per_side=16, min_area=0.0008))
        worker.poll()  # the UI thread takes the click's answer, which asks for the strip
        running.set()
        controller.wait()
        assert controller.strip is not None, "the click's strip was made"
        assert controller.status.message.endswith(f"{len(parts)} masks"), controller.status.message
        assert len(controller.objects) == len(parts)
    finally:
        worker.close()


def test_cli_phrase_without_clip_weights_is_one_line(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRACO_CLIP_WEIGHTS", str(tmp_path / "no_clip.pt"))
    cv2.imwrite(str(tmp_path / "ok.png"), known_scene(32)[0])
    assert _run(checkpoints, tmp_path / "ok.png", tmp_path / "out", "--phrase", "head") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--phrase needs the CLIP weights" in err
