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

import evaluate
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
    Journal(logs / "others" / "base" / "fixed96_NoBRS_3.journal", {"signal": "oracle"}).open()  # an unfinished run
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
