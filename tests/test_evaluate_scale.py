"""evaluate.py at scale: several gloo processes give the files of one process; a killed run continues from its
journal; a changed command is refused. Tiny model, tiny synthetic GrabCut-layout dataset made here."""
import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from isegm.inference import evaluate_cli as evaluate
from helpers import ROOT, randomize_lora, tiny_config
from isegm.inference.evaluation import SampleResult, merge_results
from isegm.inference.journal import Journal, JournalMismatch
from isegm.inference.sharding import shard_indices
from isegm.model.checkpoint import save_checkpoint

SAMPLES = 7  # an odd count: the two ranks get 4 and 3 samples


@pytest.fixture(autouse=True)
def one_thread_per_process():
    """Every evaluation here runs one thread per process, as the torchrun and subprocess ones do: each sample then
    runs the very same kernels in every run, so their files are equal byte for byte by construction (a float sum
    split over another number of threads may round differently, on some CPUs and not others)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny base and LoRA checkpoints, and a config whose GrabCut has SAMPLES scenes (one of them unreadable)."""
    import torch
    from isegm.model import GraCoModel
    folder = tmp_path_factory.mktemp("scale")
    torch.manual_seed(0)
    model = GraCoModel(tiny_config())
    randomize_lora(model)
    trainable = set(model.trainable_parameters())
    state = model.state_dict()
    base = save_checkpoint({k: v for k, v in state.items() if k not in trainable}, model.cfg, folder / "base", "base")
    lora = save_checkpoint({k: v for k, v in state.items() if k in trainable}, model.cfg, folder / "lora", "lora")
    root = folder / "GrabCut"
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    rng = np.random.default_rng(0)
    for index in range(SAMPLES):
        image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        mask = np.zeros((64, 96), np.uint8)
        top, left = 8 + 3 * index, 10 + 5 * index
        mask[top:top + 30, left:left + 40 - 3 * index] = 255
        image[mask > 0] = (40 * index % 256, 200, 90)
        cv2.imwrite(str(root / "data_GT" / f"s{index}.png"), image)
        if index != 3:  # s3 has no mask: skipped, and listed in order
            cv2.imwrite(str(root / "boundary_GT" / f"s{index}.bmp"), mask)
    config = folder / "config.yml"
    config.write_text(yaml.safe_dump({"EXPS_PATH": str(folder / "exps"), "GRABCUT_PATH": str(root)}))
    return base, lora, config


def argv(setup, logs, *extra):
    base, lora, config = setup
    return ["NoBRS", "--cpu", "--checkpoint", str(base), "--lora_checkpoint", str(lora), "--datasets", "GrabCut",
            "--n-clicks", "3", "--eval-mode", "fixed96", "--save-ious", "--config-path", str(config),
            "--logs-path", str(logs), *extra]


def subprocess_env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def torchrun(args, nproc=2, timeout=600):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               str(ROOT / "evaluate.py"), *args]
    return subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


TIMING = re.compile(r"\|\s*[0-9.]+\s*\|\s*\d+:\d\d:\d\d\s*\|$")


def outputs(logs: Path) -> dict:
    """Every file a run wrote (the journal aside), with the two timing columns of the table and the seconds per
    click of the JSON blanked: they are measurements, everything else must match byte for byte."""
    files = {}
    for path in sorted(p for p in logs.rglob("*") if p.is_file() and ".journal" not in str(p)):
        data = path.read_bytes()
        if path.suffix == ".txt" and "fixed96_NoBRS" in path.name:
            data = "\n".join(TIMING.sub("|TIME|", line) for line in data.decode().splitlines()).encode()
        elif path.suffix == ".json":
            record = json.loads(data)
            record["seconds_per_click"] = None
            data = json.dumps(record).encode()
        files[str(path.relative_to(logs))] = data
    return files


def check_outputs(logs: Path, graco: bool):
    files = outputs(logs)
    folder = "others/base"
    assert {f"{folder}/fixed96_NoBRS_3.txt", f"{folder}/GrabCut_fixed96_NoBRS_3.json",
            f"{folder}/ious/GrabCut_fixed96_NoBRS_3.pkl"} <= set(files)
    assert files[f"{folder}/fixed96_NoBRS_3.txt"].count(b"|TIME|") == 1
    summary = json.loads(files[f"{folder}/GrabCut_fixed96_NoBRS_3.json"])
    assert summary["samples"] == SAMPLES - 1 and len(summary["skipped"]) == 1 and "s3" in summary["skipped"][0]
    assert len(summary["oracle_granularity"]) == (SAMPLES - 1 if graco else 0)
    ious = pickle.loads(files[f"{folder}/ious/GrabCut_fixed96_NoBRS_3.pkl"])
    assert len(ious) == SAMPLES - 1 and all(x.dtype == np.float32 for x in ious)
    assert len({x.tobytes() for x in ious}) > 1  # the samples' results differ: a mix-up would show
    return files


# --- the journal and the sharding, in one process ---------------------------------------------------------------

def test_shards_cover_every_sample_once():
    shards = [shard_indices(SAMPLES, rank, 3) for rank in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(SAMPLES)) and shards[1] == [1, 4]


def test_journal_reads_back_bit_identical_results_and_ignores_a_cut_line(tmp_path):
    values = np.array([0.1, 1 / 3, 0.912345678], np.float32)
    journal = Journal(tmp_path / "j", {"signal": "gra=0.5"}, rank=1)
    journal.open()
    journal.append("GrabCut", SampleResult(4, [values, values[:1]], [2, 7], None, 1.5))
    journal.append("GrabCut", SampleResult(5, [], [], "s5: no mask", 0.1))
    path = journal.folder / "GrabCut.r1.jsonl"
    path.write_bytes(path.read_bytes() + b'{"index": 6, "ious": [[0.5')  # a kill in the middle of a line
    other_rank = Journal(tmp_path / "j", {"signal": "gra=0.5"}, rank=0)
    other_rank.open()
    finished = other_rank.finished("GrabCut")
    assert sorted(finished) == [4, 5]
    assert finished[4].ious[0].tobytes() == values.tobytes() and finished[4].gra_indices == [2, 7]
    assert finished[5].skipped == "s5: no mask"
    resumed = Journal(tmp_path / "j", {"signal": "gra=0.5"}, rank=1)  # the killed rank's next process
    resumed.append("GrabCut", SampleResult(6, [values], [0], None, 0.2))  # the cut line is dropped first
    assert sorted(Journal(tmp_path / "j", {"signal": "gra=0.5"}).finished("GrabCut")) == [4, 5, 6]
    assert not list((tmp_path / "j").rglob("*.json"))  # tools that collect the JSON summaries never see it
    merged = merge_results(finished[i] for i in (5, 4))
    assert merged.gra_indices == [2, 7] and merged.skipped == ["s5: no mask"] and merged.seconds == 1.6


def test_journal_refuses_another_command_while_one_is_unfinished(tmp_path):
    first = Journal(tmp_path / "j", {"signal": "oracle", "thresh": 0.5})
    first.open()
    with pytest.raises(JournalMismatch, match=r"thresh differ.*remove"):
        Journal(tmp_path / "j", {"signal": "oracle", "thresh": 0.4}).open()
    first.mark_complete()
    Journal(tmp_path / "j", {"signal": "oracle", "thresh": 0.4}).open()  # a finished run is no obstacle


# --- evaluate.py --------------------------------------------------------------------------------------------------

@pytest.mark.slow  # two torchrun launches of two gloo processes each
@pytest.mark.parametrize("signal_args", [("--gra", "0.5"), ("--graco",)], ids=["gra", "graco"])
def test_two_gloo_processes_write_the_files_of_one(setup, tmp_path, signal_args):
    assert evaluate.main(argv(setup, tmp_path / "one", *signal_args)) == 0
    result = torchrun(argv(setup, tmp_path / "two", *signal_args))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1" in result.stderr  # the second process evaluated its share
    one = check_outputs(tmp_path / "one", graco="--graco" in signal_args)
    assert outputs(tmp_path / "two") == one
    assert result.stdout.count("|    NoBRS    |") == 1  # rank 0 alone prints the table


@pytest.mark.slow  # a subprocess killed with SIGKILL, then resumed
def test_killed_run_continues_where_it_stopped(setup, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    args = argv(setup, tmp_path / "killed", "--graco")
    journal_file = tmp_path / "killed" / "others" / "base" / "fixed96_NoBRS_3.journal"
    process = subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), *args], env=subprocess_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            lines = sum(len(p.read_text().splitlines()) for p in journal_file.glob("*/GrabCut.r0.jsonl"))
            if lines >= 2:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = sum(1 for p in journal_file.glob("*/GrabCut.r0.jsonl") for line in p.read_text().splitlines()
               if line.endswith("}"))
    assert 2 <= done < SAMPLES

    # another command into the same table is refused in one line while the killed run is unfinished
    capsys.readouterr()
    code = evaluate.main(argv(setup, tmp_path / "killed", "--graco", "--thresh", "0.4"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "(thresh differ)" in err

    caplog.clear()
    assert evaluate.main(args) == 0
    assert f"{done} of its {SAMPLES} samples already in the journal, {SAMPLES - done} to evaluate" in caplog.text
    lines = [line for p in journal_file.glob("*/GrabCut.r0.jsonl") for line in p.read_text().splitlines()]
    assert len(lines) == SAMPLES  # every sample once: the finished ones were not evaluated again

    assert evaluate.main(argv(setup, tmp_path / "straight", "--graco")) == 0
    assert outputs(tmp_path / "killed") == check_outputs(tmp_path / "straight", graco=True)

    # the finished command run again: nothing evaluated, no second row in the table
    table = (tmp_path / "killed" / "others" / "base" / "fixed96_NoBRS_3.txt").read_bytes()
    caplog.clear()
    assert evaluate.main(args) == 0
    assert f"{SAMPLES} of its {SAMPLES} samples already in the journal, 0 to evaluate" in caplog.text
    assert (tmp_path / "killed" / "others" / "base" / "fixed96_NoBRS_3.txt").read_bytes() == table


def test_changed_command_is_refused_in_one_line(setup, tmp_path, capsys):
    logs = tmp_path / "logs"
    from isegm.utils.code_identity import code_identity
    unfinished = {"signal": "oracle", "code": code_identity()}  # an unfinished run of this code
    Journal(logs / "others" / "base" / "fixed96_NoBRS_3.journal", unfinished).open()
    code = evaluate.main(argv(setup, logs, "--gra", "0.5"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("evaluate.py: error:") and err.count("\n") == 1
    assert "unfinished run of another command" in err and "signal" in err


@pytest.mark.slow  # every row of the GPU check with a tiny model on the CPU, two gloo processes included
def test_gpu_check_runs_on_the_cpu_in_its_tiny_configuration():
    env = dict(subprocess_env(), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--tiny", "--device", "cpu"], env=env,
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = dict((cell.strip() for cell in line.strip().strip("|").split(" | ", 1))
                for line in result.stdout.splitlines()[2:] if line.startswith("| "))
    assert len(rows) == 9 and "DIFFERENT" not in result.stdout
    assert rows["batched oracle: speed-up over sequential; identical IoUs and choices"].split("; ")[1].startswith(
        "identical")
    assert rows["evaluate.py --graco, 2 processes vs 1 (table, JSON, IoU pickle)"] == "identical"
    training = rows["train.py, 2 processes vs 1 (one epoch: 4 iterations of 4, tiny model)"]
    assert training.startswith("ranks identical; LoRA weights ") and " DIFFERENT " not in f" {training} "
    assert training.split("; LoRA weights ")[1].startswith(("identical", "close"))


# --- what keys the journal and names its units -----------------------------------------------------------------

def test_source_digest_changes_with_any_isegm_source(tmp_path):
    import shutil

    from isegm.utils.code_identity import PACKAGE_DIR, code_identity, source_digest
    copy = tmp_path / "isegm"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(copy)
    assert before == source_digest(PACKAGE_DIR)  # where the package lives does not matter
    path = copy / "inference" / "metrics.py"
    path.write_text(path.read_text() + "\n# changed\n")
    assert source_digest(copy) != before
    identity = code_identity()
    assert identity["isegm_sources"] == f"sha256:{before[:16]}" and {"graco", "torch"} <= set(identity)


def test_a_run_made_by_other_code_is_not_continued(setup, tmp_path, capsys, monkeypatch):
    """An unfinished journal written by other code (as after an update): the same command is refused in one line
    that says how to start afresh, instead of mixing the old samples into this code's results."""
    logs = tmp_path / "logs"
    assert evaluate.main(argv(setup, logs, "--gra", "0.5")) == 0
    (folder,) = (logs / "others" / "base" / "fixed96_NoBRS_3.journal").iterdir()
    command = json.loads((folder / "command.txt").read_text())
    assert command["code"]["isegm_sources"].startswith("sha256:")
    (folder / "complete").unlink()  # as if the run had been killed
    monkeypatch.setattr(evaluate, "code_identity", lambda: {"graco": "0.2.0", "torch": "2.14.1",
                                                            "isegm_sources": "sha256:0123456789abcdef"},
                        raising=False)
    capsys.readouterr()
    code = evaluate.main(argv(setup, logs, "--gra", "0.5"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "made by other code" in err and f"remove {folder} to start afresh" in err
    import shutil
    shutil.rmtree(folder)
    assert evaluate.main(argv(setup, logs, "--gra", "0.5")) == 0


def test_checkpoints_of_one_stem_are_evaluated_apart(setup, tmp_path, capsys):
    """x.pth and x.safetensors in one --exp-path folder: two units, two rows, two JSON summaries."""
    import torch
    from isegm.model import GraCoModel
    from isegm.model.checkpoint import save_published_checkpoint
    _, _, config = setup
    checkpoints = tmp_path / "exps" / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    cfg = tiny_config(granularity=False, phrase=False)
    torch.manual_seed(1)
    save_published_checkpoint(GraCoModel(cfg).state_dict(), cfg, checkpoints / "x.pth")
    torch.manual_seed(2)
    save_checkpoint(GraCoModel(cfg).state_dict(), cfg, checkpoints / "x", "full")
    paths = yaml.safe_load(config.read_text())
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({**paths, "EXPS_PATH": str(tmp_path / "exps")}))
    code = evaluate.main(["NoBRS", "--cpu", "--exp-path", "run", "--datasets", "GrabCut", "--n-clicks", "1",
                          "--eval-mode", "fixed96", "--config-path", str(config), "--logs-path", str(tmp_path / "logs")])
    assert code == 0, capsys.readouterr().err
    logs = tmp_path / "logs" / "run"
    (journal,) = (logs / "all_checkpoints_fixed96_NoBRS_1.journal").iterdir()
    units = sorted(p.name for p in journal.glob("*.jsonl"))
    assert units == ["x.pth_GrabCut.r0.jsonl", "x.safetensors_GrabCut.r0.jsonl"], units
    lines = [(journal / unit).read_text() for unit in units]
    assert lines[0] != lines[1]  # each checkpoint's own results
    table = (logs / "all_checkpoints_GrabCut_fixed96_NoBRS_1.txt").read_text()
    assert "|    x.pth    |" in table and "|x.safetensors|" in table
    assert {p.name for p in logs.glob("*.json")} == {"all_checkpoints_GrabCut_x.pth_GrabCut_fixed96_NoBRS_1.json",
                                                    "all_checkpoints_GrabCut_x.safetensors_GrabCut_fixed96_NoBRS_1.json"}


@pytest.mark.slow  # subprocesses
def test_checkpoints_are_hashed_once_on_rank_0(tmp_path):
    """Under torchrun rank 0 reads and hashes the files; the other ranks receive the digests."""
    target = tmp_path / "checkpoint.bin"
    target.write_bytes(b"weights" * 1000)
    env = dict(subprocess_env(), DIGEST_WORKER_OUT=str(tmp_path), DIGEST_WORKER_FILE=str(target))
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'tests'}{os.pathsep}{env['PYTHONPATH']}"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(ROOT / "tests" / "digest_worker.py")], env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    reports = {p.name: p.read_text().split() for p in tmp_path.glob("rank*.txt")}
    assert reports["rank0.txt"][0] == "1" and reports["rank1.txt"][0] == "0", reports
    assert reports["rank0.txt"][1] == reports["rank1.txt"][1]


def test_settings_are_checked_once_and_never_changed():
    settings, _ = evaluate.parse_args(["NoBRS", "--cpu", "--checkpoint", "x", "--iou-analysis",
                                       "--paths-config", str(ROOT / "config.yml")])
    assert settings.target_iou == 1.01 and settings.thresh == 0.5 and settings.datasets == (
        "GrabCut", "Berkeley", "SBD", "DAVIS")
    with pytest.raises(AttributeError):
        settings.thresh = 0.4  # frozen: the run works on what was checked


def test_evaluate_script_only_calls_the_package():
    """The logic lives in isegm.inference.evaluate_cli; the script parses nothing itself and the tests import the
    package, not the script; the published flags are all there."""
    import ast
    tree = ast.parse((ROOT / "evaluate.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    for test in (ROOT / "tests").glob("*.py"):
        assert not re.search(r"^(import evaluate|from evaluate import)\b", test.read_text(), re.M), test.name
    help_text = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--help"], capture_output=True,
                               text=True, env=subprocess_env(), cwd=ROOT, timeout=120).stdout
    for flag in ("--checkpoint", "--exp-path", "--lora_checkpoint", "--datasets", "--gpus", "--cpu", "--target-iou",
                 "--iou-analysis", "--n-clicks", "--min-n-clicks", "--thresh", "--clicks-limit", "--eval-mode",
                 "--save-ious", "--print-ious", "--vis-preds", "--graco", "--gra", "--phrase", "--sam-type",
                 "--sam-model", "--oracle", "--seed", "--subset-file", "--model-name", "--precision",
                 "--paths-config", "--config-path", "--cfg", "--logs-path", "--clean-oracle", "--class-name",
                 "--part-name", "--clip-weights"):
        assert flag in help_text, flag
    assert help_text.startswith("usage: evaluate.py")
