"""Training as the published runs do it: proposal files of the published generator, portable proposal pickles,
SBD image weights, merged targets, tiny targets, MMT ties, layer-wise weight decay, validation, the published
options, the ablation training sets, the random split, and every rank stopping when one fails."""
import os
import pickle
import pickletools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, skip_unless_required, tiny_config
from training_helpers import ShapesTargets
from isegm.data.click_training_set import ClickTrainingSet
from isegm.data.mmt import node_granularity
from isegm.data.points_sampler import MultiPointSampler
from isegm.data.targets import TargetDataset, TrainTarget
from isegm.data.training import ProposalError, choose_proposal, read_proposals, scale_weight_table, write_proposals
from isegm.data.training.proposals import UnsafePickleError
from isegm.data.training.sample_weights import read_sample_weights
from isegm.engine import GCLSampler, GCLSchedule, GCLTrainer
from isegm.engine.distributed import DistInfo
from isegm.engine.trainer import TrainOptions
from isegm.model import GraCoModel
from isegm.signals import NO_SIGNAL, SLIDER, round_granularity


def box(rows, cols, shape=(64, 64)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return mask


class ProposalTargets(TargetDataset):
    """Slider targets drawn from a proposals file, as the training datasets do (image id = str(index))."""

    signals = (SLIDER,)

    def __init__(self, proposals):
        self.proposals, self.table = proposals, scale_weight_table(proposals)

    def __len__(self):
        return len(self.proposals)

    def target(self, index, rng, signal):
        index_, mask, gra = choose_proposal(self.proposals[str(index)], self.table, rng)
        image = np.random.default_rng(index).integers(0, 255, (64, 64, 3)).astype(np.uint8)
        return TrainTarget(image, mask, gra=gra, sample_id=f"{index}:{index_}")


def tiny_slider_trainer(tmp_path, train_set, **options):
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64), phrase=False))
    schedule = GCLSchedule(epochs=1, lr=1e-3, milestones=(100,), switch_epoch=0, signals=train_set.targets.signals)
    values = dict(batch_size=2, workers=0, seed=1, max_num_next_clicks=1, image_dump_interval=0)
    values.update(options)
    return GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(), TrainOptions(**values), True)


# --- gap 1: published proposal files ---------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["nan_semantic", "scale_only"])
def test_published_proposal_files_are_read_and_train(tmp_path, layout, caplog):
    masks = np.stack([box(slice(4, 40), slice(4, 30)), box(slice(10, 60), slice(20, 60))])
    scales = np.array([0.3, 0.7])
    gra = np.stack([[np.nan, 0.5], scales], axis=1) if layout == "nan_semantic" else scales
    path = tmp_path / "published.pkl"
    with open(path, "wb") as stream:  # the published generator's plain pickle.dump
        pickle.dump({str(i): {"mask": masks, "gra": gra} for i in range(4)}, stream)
    with caplog.at_level("INFO"):
        proposals = read_proposals(path)
    assert np.array_equal(proposals["0"]["gra"][:, 1], scales)
    assert np.isnan(proposals["0"]["gra"][0, 0])
    assert sum("no semantic granularity" in r.message for r in caplog.records) == 1  # one line per file
    trainer = tiny_slider_trainer(tmp_path / "run", ClickTrainingSet(ProposalTargets(proposals), None,
                                                                     MultiPointSampler(4), min_object_area=10))
    trainer.fit()
    assert len(trainer.history) == 2 and all(np.isfinite(h["loss"]) for h in trainer.history)


@pytest.mark.parametrize("gra, problem", [
    (np.array([[0.1, np.nan], [0.2, 0.3]]), "scale granularity"),
    (np.array([0.1, 0.2, 0.3]), "N x 2 (semantic, scale) or N-long"),
    (np.array([[np.inf, 0.2], [0.2, 0.3]]), "semantic granularity"),
])
def test_other_proposal_problems_are_refused_in_one_line(tmp_path, gra, problem):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as stream:
        pickle.dump({"2008_000123": {"mask": np.ones((2, 8, 8), np.uint8), "gra": gra}}, stream)
    with pytest.raises(ProposalError) as error:
        read_proposals(path)
    message = str(error.value)
    assert str(path) in message and "2008_000123" in message and problem in message and "\n" not in message


# --- gap 2: pickles numpy 1.x can read ----------------------------------------------------------------------------
def test_written_proposals_name_only_modules_numpy_1_and_2_share(tmp_path):
    path = tmp_path / "ours.pkl"
    proposals = {"a": {"mask": np.stack([box(slice(0, 9), slice(0, 9))]), "gra": np.array([[np.nan, 0.1]])}}
    write_proposals(path, proposals)
    globals_named = set()
    strings = []
    for opcode, arg, _ in pickletools.genops(path.read_bytes()):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strings.append(arg)
        if opcode.name == "STACK_GLOBAL":
            globals_named.add(tuple(strings[-2:]))
        assert opcode.name != "GLOBAL" or not str(arg).startswith("numpy._core")
    assert globals_named <= {("numpy", "ndarray"), ("builtins", "bytearray")}, globals_named
    back = pickle.loads(path.read_bytes())  # plain pickle, as the published training reads it
    assert np.array_equal(back["a"]["mask"], proposals["a"]["mask"]) and back["a"]["mask"].flags.writeable
    assert np.isnan(back["a"]["gra"][0, 0]) and back["a"]["gra"][0, 1] == 0.1


NUMPY1_PYTHON = Path(os.environ.get("GRACO_NUMPY1_PYTHON", ROOT / ".venv-numpy1" / "bin" / "python"))


def test_numpy_1_unpickles_written_proposals(tmp_path):
    if not NUMPY1_PYTHON.exists():
        skip_unless_required(f"no {NUMPY1_PYTHON} (bash scripts/setup_numpy1.sh creates it from locks/numpy1.txt; "
                             f".ci/run runs it)")
    path = tmp_path / "ours.pkl"
    write_proposals(path, {"a": {"mask": np.stack([box(slice(0, 9), slice(0, 9))]), "gra": np.array([0.3])}})
    script = ("import pickle, sys, numpy as np; d = pickle.load(open(sys.argv[1], 'rb'))['a']; "
              "assert np.__version__ < '1.26', np.__version__; assert d['mask'].sum() == 81 and d['gra'][0, 1] == 0.3; "
              "assert isinstance(d['gra'][0], np.ndarray) and np.isnan(d['gra'][0, 0]); print(np.__version__)")
    result = subprocess.run([str(NUMPY1_PYTHON), "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


# --- gap 3: SBD image weights ---------------------------------------------------------------------------------------
def test_sample_scores_weight_the_images_as_published(tmp_path):
    path = tmp_path / "scores.pkl"
    scores = [(0, "a", np.float32(0.0)), (1, "b", np.float32(0.5)), (2, "gone", np.float32(0.1))]
    path.write_bytes(pickle.dumps(scores))
    weights = read_sample_weights(path, 1.25, ["a", "b", "c"])
    expected = np.array([1.0, 0.5 ** 1.25, 0.0])
    np.testing.assert_allclose(weights, expected / expected.sum())
    sampler = GCLSampler(3, 1, seed=0, signal_for_epoch=lambda e: SLIDER, weights=weights)
    drawn = np.array([key[0] for epoch in range(600) for key in (sampler.set_epoch(epoch) or sampler)])
    assert (drawn != 2).all() and abs((drawn == 0).mean() - weights[0]) < 0.04
    assert [k[0] for k in (sampler.set_epoch(5) or sampler)] == [k[0] for k in (sampler.set_epoch(5) or sampler)]
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([(0, "a", os.system)]))
    with pytest.raises(UnsafePickleError):
        read_sample_weights(evil, 1.25, ["a"])
    with pytest.raises(ProposalError, match="sbd_samples_weights.pkl of the published GraCo release"):
        read_sample_weights(tmp_path / "missing.pkl", 1.25, ["a"])


# --- gap 4: merged objects and negatives on other objects ----------------------------------------------------------
class TwoObjects(TargetDataset):
    signals = (NO_SIGNAL,)

    def __len__(self):
        return 1

    def target(self, index, rng, signal):
        labels = np.zeros((32, 32), np.uint8)
        labels[2:14, 2:14] = 1
        labels[18:30, 18:30] = 2
        return TrainTarget(np.zeros((32, 32, 3), np.uint8), (labels > 0).astype(np.uint8), instances=labels)


def test_two_objects_merge_at_the_published_rate():
    sampler = MultiPointSampler(4)
    assert (sampler.merge_objects_prob, sampler.max_num_merged_objects) == (0.15, 2)
    rng = np.random.default_rng(0)
    merged = np.mean([len(sampler.choose_objects(3, rng)) == 2 for _ in range(4000)])
    assert abs(merged - 0.15) < 0.02
    data = ClickTrainingSet(TwoObjects(), None, sampler, min_object_area=10)
    both = [data[(0, seed, NO_SIGNAL)] for seed in range(600)]
    is_merged = np.array([item["instances"][0, 5, 5] == 1 and item["instances"][0, 25, 25] == 1 for item in both])
    assert abs(is_merged.mean() - 0.15) < 0.04
    for item in [b for b, m in zip(both, is_merged) if m][:20]:  # a merged target gets a click in each object
        ys = item["points"][:4, 0]
        assert (ys[(ys >= 0)] < 16).any() and (ys[(ys >= 0)] > 16).any()


def test_negative_clicks_on_the_other_objects():
    sampler = MultiPointSampler(6, negative_bg_prob=0.0, negative_other_prob=1.0, negative_border_prob=0.0,
                                merge_objects_prob=0.0)
    data = ClickTrainingSet(TwoObjects(), None, sampler, min_object_area=10)
    for seed in range(30):
        item = data[(0, seed, NO_SIGNAL)]
        target = item["instances"][0].numpy() == 1
        other = box(slice(18, 30), slice(18, 30), (32, 32)).astype(bool)
        if target[25, 25]:
            other = box(slice(2, 14), slice(2, 14), (32, 32)).astype(bool)
        for y, x, order in item["points"][6:].numpy():
            if order >= 0:
                assert other[int(y), int(x)]


# --- gap 5: tiny targets ------------------------------------------------------------------------------------------------
class Tiny(TargetDataset):
    signals = (SLIDER,)

    def __len__(self):
        return 1

    def target(self, index, rng, signal):
        mask = np.zeros((32, 32), np.uint8)
        mask[10:15, 10:20] = 1  # 50 pixels
        return TrainTarget(np.zeros((32, 32, 3), np.uint8), mask, gra=0.1)


def test_a_50_pixel_target_trains_as_empty():
    data = ClickTrainingSet(Tiny(), None, MultiPointSampler(4), min_object_area=80)
    items = [data[(0, seed, SLIDER)] for seed in range(10)]
    for item in items:
        assert item["instances"].sum() == 0 and (item["points"][:4] == -1).all() and item["gra"] == np.float32(0.1)
    assert any((item["points"][4:, 2] >= 0).any() for item in items)  # negatives in the background
    kept = ClickTrainingSet(Tiny(), None, MultiPointSampler(4), min_object_area=80, reaugment_small=True)
    assert kept[(0, 0, SLIDER)]["instances"].sum() == 50


# --- gap 6: MMT ties ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("area, published", [(15, 0.2), (35, 0.4), (45, 0.4), (65, 0.6), (95, 1.0), (25, 0.2)])
def test_tie_ratios_give_the_published_granularities(area, published):
    obj = np.ones((10, 10), bool)
    part = np.zeros(100, bool)
    part[:area] = True
    assert node_granularity(part.reshape(10, 10), obj) == published
    assert round_granularity(np.int64(area) / np.int64(100)) == published == float(round(np.int64(area) / np.int64(100), 1))


# --- gap 7: layer-wise decay --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enable_lora", [True, False])
def test_layerwise_decay_groups_carry_weight_decay_002(tmp_path, enable_lora):
    train_set = ClickTrainingSet(ShapesTargets(4), None, MultiPointSampler(4), min_object_area=10)
    train_set.targets.signals = (SLIDER,)
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64), phrase=False))
    schedule = GCLSchedule(epochs=1, lr=1e-3, switch_epoch=0, enable_lora=enable_lora, signals=(SLIDER,))
    trainer = GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(),
                         TrainOptions(batch_size=2, workers=0, layerwise_decay=0.75), enable_lora)
    names = {id(p): n for n, p in trainer.params.items()}
    depth = model.cfg.depth
    for group in trainer.optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            assert group["weight_decay"] == (0.0 if param.ndim == 1 or name == "backbone.pos_embed" else 0.02), name
            if name.startswith("backbone.blocks."):
                assert group["lr_mult"] == pytest.approx(0.75 ** (depth - int(name.split(".")[2])))
    assert any(g["weight_decay"] == 0.02 for g in trainer.optimizer.param_groups)
    plain = GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(), TrainOptions(batch_size=2, workers=0),
                       enable_lora)
    assert all(g["weight_decay"] == 0.0 for g in plain.optimizer.param_groups)


# --- gap 8: validation ----------------------------------------------------------------------------------------------------
def test_validation_writes_its_metric(tmp_path, caplog):
    train_set = ClickTrainingSet(ShapesTargets(4), None, MultiPointSampler(4), min_object_area=10)
    train_set.targets.signals = (SLIDER,)
    val_set = ClickTrainingSet(ShapesTargets(3), None, MultiPointSampler(4), min_object_area=10)
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64), phrase=False))
    schedule = GCLSchedule(epochs=1, lr=1e-3, switch_epoch=0, signals=(SLIDER,))
    options = TrainOptions(batch_size=2, workers=0, validation=True, val_epoch_len=4, image_dump_interval=0)
    trainer = GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(), options, True, val_set)
    with caplog.at_level("INFO"):
        trainer.fit()
    line = next(r.getMessage() for r in caplog.records if "validation:" in r.getMessage())
    assert line.startswith("epoch 0 validation: loss") and "AdaptiveIoU" in line and "4 samples" in line
    events = b"".join(p.read_bytes() for p in (tmp_path / "logs").glob("events.out.tfevents.*"))
    assert b"Val/AdaptiveIoU" in events and b"Val/loss" in events
    result = trainer.validate(0)
    assert 0.0 <= result["AdaptiveIoU"] <= 1.0 and result == trainer.validate(0)  # seeded: same draws each pass


# --- gap 9: published options and the ablation sets ----------------------------------------------------------------------
def test_published_launcher_options_parse():
    import train
    assert train.parse_args(["c.yaml", "--local_rank", "1"]).local_rank == 1
    assert train.parse_args(["c.yaml", "--local-rank=2"]).local_rank == 2
    assert train.parse_args(["c.yaml"]).validation is None and train.parse_args(["c.yaml", "--validation"]).validation


def test_freeze_list_and_prev_mask_drop(tmp_path):
    train_set = ClickTrainingSet(ShapesTargets(4), None, MultiPointSampler(4), min_object_area=10)
    train_set.targets.signals = (NO_SIGNAL,)
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64), phrase=False, granularity=False))
    schedule = GCLSchedule(epochs=1, lr=1e-3, enable_lora=False, signals=(NO_SIGNAL,))
    trainer = GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(),
                         TrainOptions(batch_size=2, workers=0, freeze_list=("backbone.blocks.0.", "neck")), False)
    assert trainer.params and not any(n.startswith(("backbone.blocks.0.", "neck")) for n in trainer.params)
    trainer.options.prev_mask_drop_prob = 1.0
    trainer.options.max_num_next_clicks = 1
    image = torch.rand(2, 3, 64, 64)
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 10:30, 10:30] = 1
    points = torch.full((2, 8, 3), -1.0)
    points[:, 0] = torch.tensor([20.0, 20.0, 100.0])
    for seed in range(4):
        prev, _ = trainer._simulate_clicks(image, target, points, None, None, 1,
                                            [np.random.default_rng(seed + 10 * b) for b in range(2)])
        assert prev.abs().sum() == 0


def test_ablation_training_sets(tmp_path):
    from isegm.data.datasets import DatasetError
    from isegm.data.training import build_training_dataset
    from isegm.toy.synthetic import build_toy_dataset
    build_toy_dataset(tmp_path / "data", n_train=2, n_val=1, size=(64, 64), seed=0, photo_crops=0)
    root = tmp_path / "data" / "PascalPart"
    mmt = build_training_dataset("pascalpart", dataset_path=root)
    parts = build_training_dataset("pascalpart_parts", dataset_path=root)
    fmg = build_training_dataset("pascalpart_fmg", dataset_path=root)
    for index in range(len(mmt)):
        for obj in mmt.objects(index):
            with_trie = mmt.mask_trie(obj)[0]
            names = [n.name for n in parts.mask_trie(obj)[0]]
            assert names == [obj.class_name] + [n.name for n in with_trie if not n.is_group and n.name != obj.class_name]
            assert [n.name for n in fmg.mask_trie(obj)[0]] == names
    write_proposals(tmp_path / "p.pkl", {})
    with pytest.raises(DatasetError, match="takes no proposals"):
        build_training_dataset("pascalpart_parts", dataset_path=root, part_path=tmp_path / "p.pkl")
    assert build_training_dataset("pascalpart_fmg", dataset_path=root, part_path=tmp_path / "p.pkl")


def test_config_of_every_published_run_reads():
    from isegm.engine.training_config import read_training_config
    for name in ("graco_vit_base448_parts", "graco_vit_base448_fmg", "graco_vit_base448_sbd",
                 "graco_vit_large448_sbd", "graco_vit_base448_mmt_fmg"):
        config = read_training_config(ROOT / "configs" / "train" / f"{name}.yaml")
        assert config.POINTS.merge_objects_prob == 0.15 and config.POINTS.max_num_merged_objects == 2
        if name.endswith("_sbd"):
            assert config.DATA.samples_scores_path.endswith("sbd_samples_weights.pkl")
            assert config.DATA.samples_scores_gamma == 1.25


# --- gap 11: random split -------------------------------------------------------------------------------------------------
def test_random_split_attends_over_shuffled_chunks():
    torch.manual_seed(0)
    cfg = tiny_config(img_size=(64, 64), phrase=False, random_split=True)
    model = GraCoModel(cfg).eval()
    image, points = torch.rand(1, 4, 64, 64), torch.full((1, 8, 3), -1.0)
    points[0, 0] = torch.tensor([20.0, 20.0, 0.0])
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(image, points, torch.tensor([0.5]))["instances"]
        torch.manual_seed(2)
        b = model(image, points, torch.tensor([0.5]))["instances"]
    # one chunk below 224 x 224 tokens: the shuffle is undone exactly, attention is order-free
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# --- gap 12: one rank fails, all stop ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_rank_with_a_bad_sample_stops_both_ranks_within_seconds(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", RANK_FAILURE_OUT=str(tmp_path))
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29533", str(ROOT / "tests" / "rank_failure_worker.py")],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode != 0
    messages = [p.read_text() for p in sorted(tmp_path.glob("rank*.txt"))]
    assert len(messages) == 2, (result.stdout + result.stderr)[-3000:]  # both ranks stopped themselves
    assert messages[0] == messages[1] and messages[0].startswith("rank 1: a slider sample has no granularity")
    assert "training stopped on all 2 ranks" in messages[0] and "\n" not in messages[0]
    assert time.time() - started < 120  # the gloo timeout is 30 minutes: nobody waited for it
