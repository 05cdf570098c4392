"""SAM and SAM 2 baselines: seeded models built by Meta's packages and saved in the official checkpoint layouts.

The NoC loop with SamClickPredictor must give the per-click IoUs of a reference loop written here with the
packages' own predictor calls; the oracle must take the best of three masks; the image embedding must be computed
once per image. One SAM ViT-B embedding at 1024 x 1024 takes seconds to tens of seconds on 2 cores, so the model
is built once per session and the number of embeddings is kept small.
"""
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import import_or_skip
from isegm.inference import evaluate_cli as evaluate
from isegm.data.datasets import GrabCutDataset
from isegm.inference.clicker import Click, Clicker
from isegm.inference.evaluation import evaluate_sample
from isegm.inference.metrics import get_iou
from isegm.inference.predictors.sam import SamClickPredictor, point_prompts
from isegm.inference.sam_models import get_variant, load_sam_model

segment_anything = import_or_skip("segment_anything", "segment-anything")
N_CLICKS = 4


def grabcut_scene(root: Path) -> Path:
    """One 120 x 160 image with a red rectangle (the object, boundary band ignored) in the GrabCut layout."""
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
    image[30:90, 40:120] = (200, 60, 40)
    mask = np.zeros((120, 160), np.uint8)
    mask[30:90, 40:120] = 255
    mask[28:30, 40:120] = 128
    cv2.imwrite(str(root / "data_GT" / "scene.png"), image[:, :, ::-1])
    cv2.imwrite(str(root / "boundary_GT" / "scene.png"), mask)
    return root


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """(GrabCut folder, image, two ground truths: the dataset's object and a second object on the same image)."""
    root = grabcut_scene(tmp_path_factory.mktemp("sam_scene") / "GrabCut")
    sample = GrabCutDataset(root).get_sample(0)
    second = np.zeros(sample.image.shape[:2], np.int32)
    second[5:50, 90:150] = 1
    return root, sample.image, [sample.gt_mask(sample.objects_ids[0]), second]


class EncoderCounter:
    def __init__(self, encoder: torch.nn.Module):
        self.calls = 0
        encoder.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))


@pytest.fixture(scope="session")
def sam_vit_b(tmp_path_factory):
    """Seeded SAM ViT-B built by segment_anything, saved as the official files are (a plain state dict)."""
    from segment_anything import sam_model_registry
    torch.manual_seed(0)
    model = sam_model_registry["vit_b"]().eval()
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_seeded.pth"
    torch.save(model.state_dict(), path)
    return path, model, EncoderCounter(model.image_encoder)


@pytest.fixture(scope="session")
def sam2_hiera_t(tmp_path_factory):
    """Seeded SAM 2.1 hiera_t built by sam2 from its own config, saved as {"model": state_dict}."""
    build_sam2 = import_or_skip("sam2.build_sam", "sam2").build_sam2
    torch.manual_seed(0)
    model = build_sam2(get_variant("SAM2", "hiera_t").config, ckpt_path=None, device="cpu").eval()
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_t_seeded.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model, EncoderCounter(model.image_encoder)


def package_predictor(model):
    if hasattr(model, "sam_prompt_encoder"):
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        return SAM2ImagePredictor(model)
    return segment_anything.SamPredictor(model)


def reference_loop(predictor, gt, oracle: bool, max_clicks: int = N_CLICKS, target: float = 1.01):
    """The protocol written out with the package's own predict(): clicks as (x, y) prompts, positives first,
    no mask input, mask = logits > mask_threshold, best of three with the oracle. Returns the IoU per click and
    the IoUs of all candidate masks per click."""
    threshold = predictor.mask_threshold if hasattr(predictor, "mask_threshold") else predictor.model.mask_threshold
    clicker = Clicker(gt_mask=gt)
    pred = np.zeros(gt.shape, bool)
    ious, candidates = [], []
    for click_indx in range(max_clicks):
        clicker.make_next_click(pred)
        clicks = clicker.get_clicks()
        xy = [[c.coords[1], c.coords[0]] for c in clicks if c.is_positive]
        xy += [[c.coords[1], c.coords[0]] for c in clicks if not c.is_positive]
        labels = [1] * sum(c.is_positive for c in clicks) + [0] * sum(not c.is_positive for c in clicks)
        logits, _, _ = predictor.predict(point_coords=np.array(xy), point_labels=np.array(labels),
                                         multimask_output=oracle, return_logits=True)
        masks = logits > threshold
        scores = [get_iou(gt, m) for m in masks]
        best = int(np.argmax(scores))
        pred = masks[best]
        ious.append(scores[best])
        candidates.append(scores)
        if ious[-1] >= target:
            break
    return np.array(ious, dtype=np.float32), candidates


@pytest.fixture(scope="session")
def sam_reference(sam_vit_b, scene):
    """Reference IoUs of the seeded SAM ViT-B on both objects, single mask and oracle (one embedding)."""
    _, model, _ = sam_vit_b
    _, image, gts = scene
    predictor = package_predictor(model)
    predictor.set_image(image)
    return {(k, oracle): reference_loop(predictor, gt, oracle) for k, gt in enumerate(gts) for oracle in (False, True)}


@pytest.fixture(scope="session")
def sam2_reference(sam2_hiera_t, scene):
    _, model, _ = sam2_hiera_t
    _, image, gts = scene
    predictor = package_predictor(model)
    predictor.set_image(image)
    return {(k, oracle): reference_loop(predictor, gt, oracle) for k, gt in enumerate(gts) for oracle in (False, True)}


def test_point_prompts_are_xy_with_positives_first():
    clicks = [Click(True, (5, 7)), Click(False, (1, 2)), Click(True, (3, 4))]
    coords, labels = point_prompts(clicks)
    assert coords.tolist() == [[7, 5], [4, 3], [2, 1]] and labels.tolist() == [1, 1, 0]


def check_loop_against_reference(model, counter, scene, reference):
    """Both modes, both objects of one image, and an early stop at a target reached mid-sequence: the reference
    IoUs, and one embedding for all of it."""
    _, image, gts = scene
    before = counter.calls
    predictor = SamClickPredictor(model)
    for oracle in (False, True):
        predictor.oracle = oracle
        for k, gt in enumerate(gts):
            expected, candidates = reference[(k, oracle)]
            _, ious, logits = evaluate_sample(image, gt, predictor, max_iou_thr=1.01, pred_thr=predictor.mask_threshold,
                                              max_clicks=N_CLICKS)
            assert np.array_equal(ious, expected), (oracle, k, ious, expected)
            assert logits.shape == gt.shape and logits.dtype == np.float32
            if oracle:
                assert all(len(c) == 3 for c in candidates)
                assert [max(c) for c in candidates] == pytest.approx(expected.tolist())
            target = float(expected[1]) - 1e-6
            stop = int(np.argmax(expected >= target)) + 1
            _, ious, _ = evaluate_sample(image, gt, predictor, max_iou_thr=target, pred_thr=predictor.mask_threshold,
                                         max_clicks=N_CLICKS)
            assert np.array_equal(ious, expected[:stop])
    # the oracle's choice matters here: on some click another mask than the first is the best one
    assert any(np.argmax(c) != 0 for key in reference if key[1] for c in reference[key][1])
    predictor.set_input_image(image.copy())  # same pixels in another array: no new embedding
    assert counter.calls - before == 1
    with pytest.raises(ValueError, match="granularity"):
        predictor.get_prediction(Clicker(gt_mask=gts[0]), gra=0.5)
    with pytest.raises(ValueError, match="outside"):
        predictor.get_prediction(Clicker(init_clicks=[Click(True, (image.shape[0], 3))]))
    with pytest.raises(ValueError, match="set_input_image"):
        SamClickPredictor(model).get_prediction(Clicker(init_clicks=[Click(True, (1, 1))]))


@pytest.mark.slow  # two SAM ViT-B embeddings at 1024 x 1024
def test_sam_loop_equals_package_reference_and_embeds_once(sam_vit_b, scene, sam_reference):
    _, model, counter = sam_vit_b
    check_loop_against_reference(model, counter, scene, sam_reference)


def test_sam2_loop_equals_package_reference_and_embeds_once(sam2_hiera_t, scene, sam2_reference):
    _, model, counter = sam2_hiera_t
    check_loop_against_reference(model, counter, scene, sam2_reference)


def test_loading_the_official_layouts(sam_vit_b, sam2_hiera_t):
    path, model, _ = sam_vit_b
    loaded = load_sam_model(path, "SAM", "vit_b")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    path2, model2, _ = sam2_hiera_t
    loaded2 = load_sam_model(path2, "SAM2", "hiera_t")
    assert all(torch.equal(a, b) for a, b in zip(loaded2.state_dict().values(), model2.state_dict().values()))


# ---------------------------------------------------------------- evaluate.py

def write_config(tmp_path, **paths):
    import yaml
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"EXPS_PATH": str(tmp_path / "exps"), **{k: str(v) for k, v in paths.items()}}))
    return config


def run(capsys, *argv):
    code = evaluate.main(["NoBRS", "--cpu", *map(str, argv)])
    return code, capsys.readouterr()


def check_cli_run(capsys, tmp_path, scene, checkpoint, sam_type, sam_model, reference):
    root, _, _ = scene
    config = write_config(tmp_path, GRABCUT_PATH=root)
    logs = tmp_path / "logs"
    code, out = run(capsys, "--checkpoint", checkpoint, "--sam-type", sam_type, "--sam-model", sam_model,
                    "--oracle", "--datasets", "GrabCut", "--n-clicks", N_CLICKS, "--iou-analysis", "--save-ious",
                    "--vis-preds", "--config-path", config, "--logs-path", logs)
    assert code == 0, out.err
    folder = logs / "others" / Path(checkpoint).stem
    with open(folder / "ious" / f"GrabCut_cvpr_NoBRS_{N_CLICKS}.pkl", "rb") as handle:
        ious = pickle.load(handle)
    assert len(ious) == 1 and np.array_equal(ious[0], reference[(0, True)][0])
    summary = json.loads((folder / f"GrabCut_cvpr_NoBRS_{N_CLICKS}.json").read_text())
    assert summary["signal"] == "oracle-of-3-masks" and summary["sam_type"] == sam_type
    assert summary["sam_model"] == sam_model and summary["iou_first"] == pytest.approx(reference[(0, True)][0][0])
    assert "GrabCut" in out.out and "NoC@80%" in out.out
    assert (folder / "plots" / f"GrabCut_cvpr_NoBRS_{N_CLICKS}.png").is_file()
    assert len(list((folder / "predictions_vis" / "GrabCut").glob("*.jpg"))) == N_CLICKS


@pytest.mark.slow
def test_evaluate_cli_sam_oracle_gives_the_reference_ious(sam_vit_b, scene, sam_reference, tmp_path, capsys):
    check_cli_run(capsys, tmp_path, scene, sam_vit_b[0], "SAM", "vit_b", sam_reference)


def test_evaluate_cli_sam2_oracle_gives_the_reference_ious(sam2_hiera_t, scene, sam2_reference, tmp_path, capsys):
    check_cli_run(capsys, tmp_path, scene, sam2_hiera_t[0], "SAM2", "hiera_t", sam2_reference)


class Trap:
    def __reduce__(self):
        return (os.system, ("touch trap_fired",))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sam_vit_b):
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    files["graco_layout"] = folder / "graco_like.pth"
    torch.save({"state_dict": {"backbone.patch_embed.proj.weight": torch.zeros(2, 3, 16, 16)},
                "config": {"class": "isegm.model.is_plainvit_model.PlainVitModel", "params": {}}},
               files["graco_layout"])
    vit_l = {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16),  # ViT-L's encoder signature:
             **{f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(24)}}  # width 1024, 24 blocks
    files["vit_l"] = folder / "sam_vit_l_like.pth"
    torch.save(vit_l, files["vit_l"])
    files["vit_l_legacy"] = folder / "sam_vit_l_like_legacy.pth"  # the pre-1.6 torch.save format
    torch.save(vit_l, files["vit_l_legacy"], _use_new_zipfile_serialization=False)
    files["trap"] = folder / "trap.pth"
    torch.save({"model": Trap()}, files["trap"])
    files["trap_legacy"] = folder / "trap_legacy.pth"
    torch.save({"model": Trap()}, files["trap_legacy"], _use_new_zipfile_serialization=False)
    files["text"] = folder / "notes.pth"
    files["text"].write_text("not a checkpoint")
    files["sam_as_sam2"] = sam_vit_b[0]
    return files


@pytest.mark.parametrize("argv, message", [
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{graco_layout}"], "SimpleClick/GraCo checkpoint"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{vit_l}"],
     "holds SAM vit_l weights, not SAM vit_b: pass --sam-model vit_l"),
    (["--sam-type", "SAM", "--sam-model", "vit_l", "--checkpoint", "{sam_as_sam2}"],
     "holds SAM vit_b weights, not SAM vit_l"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{vit_l_legacy}"],
     "holds SAM vit_l weights, not SAM vit_b"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{trap}"], "refused, its pickle would call"),
    (["--sam-type", "SAM2", "--sam-model", "hiera_t", "--checkpoint", "{trap_legacy}"],
     "not a PyTorch checkpoint that can be read safely"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{text}"], "not a PyTorch checkpoint"),
    (["--sam-type", "SAM2", "--sam-model", "hiera_t", "--checkpoint", "{sam_as_sam2}"],
     "a SAM checkpoint, not a SAM 2 one: pass --sam-type SAM"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}", "--graco"], "--graco"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}", "--gra", "0.5"], "--gra"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}", "--phrase", "head"], "--phrase"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}", "--lora_checkpoint", "x.pth"],
     "--lora_checkpoint"),
    (["--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}", "--thresh", "0.4"], "--thresh"),
    (["--checkpoint", "{sam_as_sam2}", "--oracle"], "--oracle"),
    (["--sam-type", "SAM", "--checkpoint", "{sam_as_sam2}"], "needs --sam-model"),
    (["--sam-type", "SAM", "--sam-model", "hiera_t", "--checkpoint", "{sam_as_sam2}"], "--sam-model: SAM has no model 'hiera_t'"),
    (["--sam-type", "SAM3", "--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}"], "--sam-type SAM3"),
    (["--sam-model", "vit_b", "--checkpoint", "{sam_as_sam2}"], "--sam-model needs --sam-type"),
    (["--sam-type", "SAM2", "--sam-model", "hiera_b+", "--checkpoint", "sam2.1_hiera_base_plus.pt"],
     "download https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt into weights/sam2/"),
])
def test_bad_sam_input_gives_one_line_and_exit_2(bad_files, scene, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, GRABCUT_PATH=scene[0])
    argv = [a.format(**bad_files) for a in argv]
    code, out = run(capsys, *argv, "--datasets", "GrabCut", "--config-path", config)
    assert code == 2, out
    assert out.err.startswith("evaluate.py: error:") and out.err.count("\n") == 1, out.err
    assert message in out.err
    if not message.startswith("--") and "sam-" not in message:  # a problem of the file: the file is named
        assert argv[argv.index("--checkpoint") + 1] in out.err
    assert not (tmp_path / "trap_fired").exists()


def test_published_graco_checkpoint_given_as_sam(test_weights, scene, tmp_path, capsys):
    config = write_config(tmp_path, GRABCUT_PATH=scene[0])
    lora = test_weights / "GraCo_base_lora.pth"
    code, out = run(capsys, "--sam-type", "SAM", "--sam-model", "vit_b", "--checkpoint", lora,
                    "--datasets", "GrabCut", "--config-path", config)
    assert code == 2 and out.err.count("\n") == 1
    assert str(lora) in out.err and "SimpleClick/GraCo checkpoint, not a SAM checkpoint" in out.err


# ---------------------------------------------------------------- the comparison table

def summary(dataset, **fields):
    base = {"dataset": dataset, "model": "sbd_vit_base", "noc_thresholds": [0.8, 0.85], "noc": [4.0, 5.5],
            "iou_first": 0.5, "samples": 3, "signal": "none", "sam_type": None, "sam_model": None,
            "lora_checkpoint": None}
    return {**base, **fields}


def test_compare_baselines_puts_graco_sam_and_sam2_in_one_table(tmp_path):
    import subprocess
    import sys
    runs = {
        "graco_oracle": summary("PascalPart", signal="oracle", noc=[2.0, 3.0], lora_checkpoint="w/GraCo_base_lora.pth"),
        "simpleclick": summary("PascalPart"),
        "phrase_head": summary("PascalPart", signal="phrase=head", lora_checkpoint="w/GraCo_base_lora.pth"),
        "sam_oracle": summary("PartImageNet", model="sam_vit_b_01ec64", signal="oracle-of-3-masks", sam_type="SAM",
                              sam_model="vit_b", noc=[3.25, 4.5], iou_first=0.625),
        "sam2": summary("PascalPart", model="sam2.1_hiera_large", signal="single-mask", sam_type="SAM2",
                        sam_model="hiera_l"),
    }
    for run_name, content in runs.items():
        folder = tmp_path / "logs" / run_name / "others" / content["model"]
        folder.mkdir(parents=True)
        (folder / f"{content['dataset']}_cvpr_NoBRS_20.json").write_text(json.dumps(content))
    out = tmp_path / "baselines.md"
    result = subprocess.run([sys.executable, "scripts/compare_baselines.py", str(tmp_path / "logs"),
                             "--datasets", "PascalPart,PartImageNet", "--out", str(out)],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| GraCo (sbd_vit_base + GraCo_base_lora), oracle granularity",
        "| SimpleClick base (sbd_vit_base)",
        "| SAM vit_b, oracle of 3 masks",
        "| SAM 2 hiera_l, single mask"]
    assert rows[0].endswith("| 2.00/3.00/50.0 | - |") and rows[2].endswith("| - | 3.25/4.50/62.5 |")
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([sys.executable, "scripts/compare_baselines.py", str(tmp_path / "empty")], capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parents[1])
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "run eval.sh first" in empty.stderr
