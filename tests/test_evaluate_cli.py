"""evaluate.py end to end with a tiny model on the real GrabCut, Berkeley and PascalPart data."""
import json
import pickle

import cv2
import numpy as np
import pytest
import yaml

from isegm.inference import evaluate_cli as evaluate
from isegm.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    import torch
    from helpers import randomize_lora, tiny_config
    from isegm.model import GraCoModel
    torch.manual_seed(0)
    model = GraCoModel(tiny_config())
    randomize_lora(model)
    trainable = set(model.trainable_parameters())
    state = model.state_dict()
    folder = tmp_path_factory.mktemp("weights")
    base = save_checkpoint({k: v for k, v in state.items() if k not in trainable}, model.cfg, folder / "base", "base")
    lora = save_checkpoint({k: v for k, v in state.items() if k in trainable}, model.cfg, folder / "lora", "lora")
    return base, lora


def write_config(tmp_path, **paths):
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"EXPS_PATH": str(tmp_path / "exps"), **{k: str(v) for k, v in paths.items()}}))
    return config


def pascalpart_layout(data, tmp_path):
    root = tmp_path / "PascalPart"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for sub in ("JPEGImages", "Annotations_Part"):
        (root / sub).symlink_to(data / "PascalPart" / sub)
    ids = sorted(p.stem for p in (data / "PascalPart" / "JPEGImages").glob("*.jpg"))
    (root / "ImageSets" / "Main" / "part_val.txt").write_text("\n".join(ids) + "\n")
    return root


def run(capsys, *argv):
    code = evaluate.main(["NoBRS", "--cpu", *map(str, argv)])
    return code, capsys.readouterr()


@pytest.mark.slow  # whole real datasets end to end
def test_grabcut_and_berkeley_with_a_fixed_granularity(test_data, tiny_checkpoints, tmp_path, capsys):
    base, lora = tiny_checkpoints
    config = write_config(tmp_path, GRABCUT_PATH=test_data / "GrabCut", BERKELEY_PATH=test_data / "Berkeley")
    code, out = run(capsys, "--checkpoint", base, "--lora_checkpoint", lora, "--datasets", "GrabCut,Berkeley",
                    "--gra", 0.5, "--n-clicks", 2, "--save-ious", "--config-path", config, "--logs-path", tmp_path / "logs")
    assert code == 0, out.err
    assert "NoC@80%" in out.out and "GrabCut" in out.out and "Berkeley" in out.out
    logs = tmp_path / "logs" / "others" / "base"
    table = (logs / "cvpr_NoBRS_2.txt").read_text()
    assert table.count("|    NoBRS    |") == 2 and "50 samples evaluated, 0 skipped" in table
    with open(logs / "ious" / "GrabCut_cvpr_NoBRS_2.pkl", "rb") as handle:
        ious = pickle.load(handle)
    assert len(ious) == 50 and all(1 <= len(x) <= 2 and x.dtype == np.float32 for x in ious)
    summary = json.loads((logs / "Berkeley_cvpr_NoBRS_2.json").read_text())
    assert summary["samples"] == 100 and summary["signal"] == "gra=0.5" and summary["noc_thresholds"][-1] == 0.9


@pytest.mark.slow  # whole real datasets end to end
def test_pascalpart_clean_oracle_with_reproducible_subset(test_data, tiny_checkpoints, tmp_path, capsys):
    base, lora = tiny_checkpoints
    config = write_config(tmp_path, PASCALPART_PATH=pascalpart_layout(test_data, tmp_path))
    args = ["--checkpoint", base, "--lora_checkpoint", lora, "--datasets", "PascalPart", "--graco", "--clean-oracle",
            "--n-clicks", 1, "--seed", 3, "--config-path", config]
    code, out = run(capsys, *args, "--logs-path", tmp_path / "a")
    assert code == 0, out.err
    subset = tmp_path / "a" / "others" / "base" / "PascalPart_subset_seed3.txt"
    ids = subset.read_text().split()
    assert len(ids) == 11 and all(i.count(":") == 2 for i in ids)
    summary = json.loads((tmp_path / "a" / "others" / "base" / "PascalPart_cvpr_NoBRS_1.json").read_text())
    assert summary["target_iou"] == 0.85 and summary["samples"] == 11 and len(summary["oracle_granularity"]) == 11
    assert summary["noc_thresholds"] == pytest.approx([0.8, 0.85])
    code, out = run(capsys, *args[:-4], "--n-clicks", 1, "--subset-file", subset, "--config-path", config,
                    "--logs-path", tmp_path / "b")
    assert code == 0, out.err
    assert (tmp_path / "b" / "others" / "base" / "PascalPart_subset_seed0.txt").read_text().split() == ids


def grabcut_layout(root, bad_samples=True):
    """One good 60 x 80 sample and, with ``bad_samples``, a small mask, an empty mask and a missing mask."""
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    image = np.full((60, 80, 3), 90, np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 20:50] = 255
    samples = [("good", mask)] + ([("small", mask[:30]), ("empty", np.zeros_like(mask))] if bad_samples else [])
    for name, sample_mask in samples:
        cv2.imwrite(str(root / "data_GT" / f"{name}.jpg"), image)
        cv2.imwrite(str(root / "boundary_GT" / f"{name}.bmp"), sample_mask)
    if bad_samples:
        cv2.imwrite(str(root / "data_GT" / "nomask.jpg"), image)
    return root


def test_bad_samples_are_skipped_and_counted(tiny_checkpoints, tmp_path, capsys):
    base, lora = tiny_checkpoints
    config = write_config(tmp_path, GRABCUT_PATH=grabcut_layout(tmp_path / "GrabCut"))
    code, out = run(capsys, "--checkpoint", base, "--lora_checkpoint", lora, "--datasets", "GrabCut",
                    "--n-clicks", 1, "--iou-analysis", "--vis-preds", "--config-path", config,
                    "--logs-path", tmp_path / "logs")
    assert code == 0, out.err
    assert "GrabCut: 1 samples evaluated, 3 skipped" in out.out
    logs = tmp_path / "logs" / "others" / "base"
    summary = json.loads((logs / "GrabCut_cvpr_NoBRS_1.json").read_text())
    assert len(summary["skipped"]) == 3 and any("small" in s for s in summary["skipped"])
    assert (logs / "plots" / "GrabCut_cvpr_NoBRS_1.png").is_file()
    assert len(list((logs / "predictions_vis" / "GrabCut").glob("*.jpg"))) == 1


def test_precision_is_written_into_the_table_and_the_summary(tiny_checkpoints, tmp_path, capsys):
    base, lora = tiny_checkpoints
    config = write_config(tmp_path, GRABCUT_PATH=grabcut_layout(tmp_path / "GrabCut", bad_samples=False))
    code, out = run(capsys, "--checkpoint", base, "--lora_checkpoint", lora, "--datasets", "GrabCut", "--n-clicks", 1,
                    "--precision", "bf16", "--config-path", config, "--logs-path", tmp_path / "logs")
    assert code == 0, out.err
    logs = tmp_path / "logs" / "others" / "base"
    assert "(precision bf16)" in out.out and "(precision bf16)" in (logs / "cvpr_NoBRS_1.txt").read_text()
    assert json.loads((logs / "GrabCut_cvpr_NoBRS_1.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize("argv, message", [
    (["--datasets", "GrabCut"], "missing"),
    (["--datasets", "Nope"], "unknown dataset"),
    (["--datasets", "GrabCut", "--gra", "1.5"], "--gra"),
    (["--datasets", "GrabCut", "--clean-oracle"], "--clean-oracle"),
    (["--datasets", "GrabCut", "--phrase", "head"], "--clip-weights"),
    (["--datasets", "GrabCut", "--eval-mode", "fixed500"], "fixed500"),
    (["--datasets", "GrabCut", "--eval-mode", "fixed448,600,700"], "fixed448,600,700"),
    (["--datasets", "GrabCut", "--clicks-limit", "0"], "--clicks-limit"),
])
def test_bad_usage_gives_one_line(tiny_checkpoints, tmp_path, capsys, argv, message):
    base, lora = tiny_checkpoints
    missing = argv == ["--datasets", "GrabCut"]
    root = tmp_path / "missing" if missing else grabcut_layout(tmp_path / "GrabCut", bad_samples=False)
    config = write_config(tmp_path, GRABCUT_PATH=root)
    code, out = run(capsys, "--checkpoint", base, "--lora_checkpoint", lora, "--config-path", config, *argv)
    assert code == 2
    assert message in out.err and out.err.startswith("evaluate.py: error:") and out.err.count("\n") == 1


def test_missing_checkpoint_gives_one_line(tmp_path, capsys):
    config = write_config(tmp_path, GRABCUT_PATH=tmp_path)
    code, out = run(capsys, "--checkpoint", tmp_path / "nope.pth", "--config-path", config, "--datasets", "GrabCut")
    assert code == 2 and "nope.pth" in out.err
