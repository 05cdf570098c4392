"""Configuration files and command-line seams: one YAML reader with one-line errors at every entry point, one
paths-file flag, one checkpoint-lookup rule, the GCL schedule's defaults in one place."""
import importlib.util
import sys

import pytest

import demo
import evaluate
import train
from helpers import ROOT
from isegm.engine.schedule import GCLSchedule
from isegm.cli import resolve_checkpoint
from isegm.engine.training_config import read_training_config
from isegm.inference.checkpoint_lookup import find_checkpoint
from isegm.utils.config_file import ConfigError, read_paths_config, read_yaml

MALFORMED = "EXPS_PATH: ./experiments\nGRABCUT_PATH: [./datasets/GrabCut\nBERKELEY_PATH: ./b\n"


def one_line_error(text: str, prefix: str) -> bool:
    return text.startswith(prefix) and text.count("\n") == 1 and "Traceback" not in text


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(MALFORMED)
    with pytest.raises(ConfigError, match=rf"^{path}, line [34]: not valid YAML \(") as error:
        read_yaml(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("TRAIN: {epochs: ten}\n", "TRAIN.epochs: expected an integer, got 'ten'"),
    ("TRAIN: {lr: fast}\n", "TRAIN.lr: expected a number, got 'fast'"),
    ("TRAIN: {betas: [0.9]}\n", "TRAIN.betas: expected a list of 2 numbers, got list [0.9]"),
    ("TRAIN: {lr_milestones: 50}\n", "TRAIN.lr_milestones: expected a list of integers, got 50"),
    ("DATA: {crop_size: [448, big]}\n", "DATA.crop_size: expected a list of 2 integers, got list [448, 'big']"),
    ("POINTS: {max_num_points: 2.5}\n", "POINTS.max_num_points: expected an integer, got 2.5"),
    ("MODEL: {depth: deep}\n", "MODEL.depth: expected an integer, got 'deep'"),
    ("TRAIN: 3\n", "TRAIN: expected a mapping, got 3"),
    ("- a list\n", "expected a mapping (key: value lines) at the top level, got list ['a list']"),
])
def test_wrong_value_names_the_key_the_type_and_the_value(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        read_training_config(path)
    assert str(error.value) == f"{path}: {message}"


def test_float_written_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 reads 5e-4 as a string; the training config takes it as the number it means
    path = tmp_path / "run.yaml"
    path.write_text("TRAIN: {lr: 5e-4, epochs: 3}\n")
    assert read_training_config(path).TRAIN.lr == 5e-4


def test_paths_file_values_are_paths(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("EXPS_PATH: 5\n")
    with pytest.raises(ConfigError, match=r"EXPS_PATH: expected a path \(a string\), got 5$"):
        read_paths_config(path)
    assert read_paths_config(tmp_path / "absent.yml", required=False) == {}


def test_train_cli_answers_a_wrong_value_in_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("TRAIN: {epochs: ten}\n")
    with pytest.raises(SystemExit) as exit_code:
        train.main([str(config), "--cpu"])
    assert exit_code.value.code == 2
    err = capsys.readouterr().err
    assert one_line_error(err, "train.py: error:") and "TRAIN.epochs: expected an integer, got 'ten'" in err


def test_train_cli_answers_a_malformed_file_in_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("TRAIN:\n  epochs: [3\n")
    with pytest.raises(SystemExit) as exit_code:
        train.main([str(config), "--cpu"])
    assert exit_code.value.code == 2
    err = capsys.readouterr().err
    assert one_line_error(err, f"train.py: error: {config}, line ") and "not valid YAML" in err


@pytest.mark.parametrize("flag", ["--paths-config", "--config-path", "--cfg"])
def test_evaluate_cli_answers_a_malformed_paths_file_in_one_line(tmp_path, capsys, flag):
    config = tmp_path / "config.yml"
    config.write_text(MALFORMED)
    code = evaluate.main(["NoBRS", "--cpu", "--checkpoint", "x.pth", flag, str(config)])
    err = capsys.readouterr().err
    assert code == 2 and one_line_error(err, f"evaluate.py: error: {config}, line ")


def test_evaluate_cli_answers_a_wrong_path_value_in_one_line(tmp_path, capsys):
    config = tmp_path / "config.yml"
    config.write_text("GRABCUT_PATH: [1, 2]\n")
    code = evaluate.main(["NoBRS", "--cpu", "--checkpoint", "x.pth", "--paths-config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and one_line_error(err, "evaluate.py: error:")
    assert "GRABCUT_PATH: expected a path (a string), got list [1, 2]" in err


def test_demo_cli_answers_a_malformed_paths_file_in_one_line(tmp_path, capsys):
    config = tmp_path / "config.yml"
    config.write_text(MALFORMED)
    code = demo.main(["--checkpoint", "x.pth", "--cpu", "--cfg", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and one_line_error(err, f"demo.py: error: {config}, line ")


def test_check_paths_answers_a_malformed_paths_file_in_one_line(tmp_path, capsys, monkeypatch):
    # scripts/ is not a package: load check_paths.py by its path
    spec = importlib.util.spec_from_file_location("check_paths", ROOT / "scripts" / "check_paths.py")
    check_paths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_paths)
    config = tmp_path / "config.yml"
    config.write_text(MALFORMED)
    monkeypatch.setattr(sys, "argv", ["check_paths.py", "--config", str(config)])
    assert check_paths.main() == 2
    assert one_line_error(capsys.readouterr().err, f"check_paths.py: error: {config}, line ")


@pytest.mark.parametrize("flag", ["--paths-config", "--config-path", "--cfg"])
def test_one_paths_flag_with_the_published_spellings(tmp_path, flag):
    config = tmp_path / "paths.yml"
    config.write_text("EXPS_PATH: ./exps\n")
    assert train.parse_args(["run.yaml", flag, str(config)]).paths_config == str(config)
    assert demo.parse_args(["--checkpoint", "x", flag, str(config)]).paths_config == str(config)
    args, _ = evaluate.parse_args(["NoBRS", "--cpu", "--checkpoint", "x", flag, str(config)])
    assert args.paths_config == str(config)


def test_checkpoint_lookup_rule(tmp_path):
    models = tmp_path / "weights"
    (models / "graco").mkdir(parents=True)
    direct = tmp_path / "direct.pth"
    direct.write_bytes(b"")
    (models / "sbd_vit_base.pth").write_bytes(b"")
    (models / "graco" / "GraCo_base_lora.pth").write_bytes(b"")
    (models / "graco" / "run.safetensors").write_bytes(b"")
    assert find_checkpoint(direct, models) == direct
    assert find_checkpoint("sbd_vit_base", models) == models / "sbd_vit_base.pth"
    assert find_checkpoint("sbd_vit_base.pth", models) == models / "sbd_vit_base.pth"
    assert find_checkpoint("GraCo_base", models) == models / "graco" / "GraCo_base_lora.pth"
    assert find_checkpoint("graco/run", models) == models / "graco" / "run.safetensors"
    assert find_checkpoint("nothing", models) is None
    assert find_checkpoint(tmp_path / "absent.pth", models) is None
    assert resolve_checkpoint("GraCo_base", str(models)) == models / "graco" / "GraCo_base_lora.pth"


def test_schedule_defaults_are_the_published_ones():
    schedule = GCLSchedule.from_config({}, enable_lora=True, signals=("phrase", "slider"))
    assert (schedule.epochs, schedule.lr, schedule.milestones, schedule.gamma, schedule.switch_epoch) == \
        (110, 5e-4, (50, 55), 0.1, 55)
    overridden = GCLSchedule.from_config({"epochs": 20, "lora_switch_epoch": 8, "lr_milestones": [4]}, True,
                                         ("slider",), epochs=3, switch_epoch=1)
    assert (overridden.epochs, overridden.switch_epoch, overridden.milestones) == (3, 1, (4,))
