import math
from pathlib import Path

import numpy as np
import pytest
import torch

from isegm.data.click_training_set import ClickTrainingSet
from isegm.data.points_sampler import MultiPointSampler
from isegm.signals import NO_SIGNAL, PHRASE, SLIDER
from isegm.engine import GCLSampler, GCLSchedule, GCLTrainer
from isegm.engine.click_simulation import add_correction_clicks
from isegm.engine.distributed import DistInfo
from isegm.engine.trainer import TrainOptions, branch_of
from isegm.model import GraCoModel
from isegm.model.losses import NormalizedFocalLoss
from isegm.toy.seeded import seeded_clip_text_state

from helpers import tiny_config
from training_helpers import ShapesTargets


# ------------------------------------------------------------------------------------------------------ loss
def test_focal_loss_ignores_ignored_pixels_and_rewards_correct_predictions():
    loss = NormalizedFocalLoss()
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    target[..., 0, :] = -1
    good = torch.where(target > 0.5, 6.0, -6.0)
    bad = -good
    assert loss(good, target).item() < 1e-2 and loss(bad, target).item() > 1.0
    changed = good.clone()
    changed[..., 0, :] = 100.0  # ignored row
    assert torch.allclose(loss(good, target), loss(changed, target))
    assert loss(torch.zeros(3, 1, 8, 8), target.expand(3, -1, -1, -1)).shape == (3,)


# --------------------------------------------------------------------------------------------- click sampler
def test_points_sampler_places_positives_inside_and_negatives_outside():
    target = np.zeros((40, 40), bool)
    target[10:30, 10:30] = True
    ignore = np.zeros_like(target)
    ignore[:, :3] = True
    sampler = MultiPointSampler(6, prob_gamma=0.8)
    for seed in range(30):
        clicks = sampler.sample(target, np.random.default_rng(seed), ignore=ignore)
        assert clicks.shape == (12, 3)
        pos, neg = clicks[:6], clicks[6:]
        assert (pos[0] >= 0).all(), "at least one positive click"
        for y, x, order in pos[pos[:, 2] >= 0]:
            assert target[int(y), int(x)] and order == 100
        for y, x, order in neg[neg[:, 2] >= 0]:
            assert not target[int(y), int(x)] and not ignore[int(y), int(x)]
        assert ((clicks[:, 2] == -1) == (clicks[:, 0] == -1)).all()
    a = sampler.sample(target, np.random.default_rng(5))
    b = sampler.sample(target, np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_correction_click_goes_to_the_deeper_error_in_the_published_slot():
    target = torch.zeros(2, 1, 30, 30)
    target[:, :, 5:25, 5:25] = 1
    prob = torch.zeros(2, 1, 30, 30)
    prob[1] = 1.0  # sample 1: everything predicted, the false positive ring is the error
    prob[1, :, 5:25, 5:25] = 1.0
    points = torch.full((2, 8, 3), -1.0)
    out = add_correction_clicks(prob, target, points, 1, [np.random.default_rng(0), np.random.default_rng(1)])
    y, x, order = out[0, 3].tolist()  # positive slot N - 1
    assert order == 1 and target[0, 0, int(y), int(x)] == 1
    y, x, order = out[1, 7].tolist()  # negative slot 2N - 1
    assert order == 1 and target[1, 0, int(y), int(x)] == 0
    assert (out[0, 4:] == -1).all() and (out[1, :4] == -1).all()


# ------------------------------------------------------------------------------------------------- schedule
def test_two_signal_schedule_matches_the_published_learning_rates():
    schedule = GCLSchedule(epochs=110, lr=5e-4, signals=(PHRASE, SLIDER, NO_SIGNAL))
    assert [schedule.signal(e) for e in (0, 54, 55, 109)] == [PHRASE, PHRASE, SLIDER, SLIDER]
    expected = {0: 5e-4, 49: 5e-4, 50: 5e-5, 54: 5e-5, 55: 5e-4, 104: 5e-4, 105: 5e-5, 109: 5e-5}
    for epoch, lr in expected.items():
        assert math.isclose(schedule.learning_rate(epoch), lr), epoch
    slider_only = GCLSchedule(epochs=55, lr=5e-4, switch_epoch=0, signals=(SLIDER, NO_SIGNAL))
    assert slider_only.signal(0) == SLIDER and math.isclose(slider_only.learning_rate(50), 5e-5)
    base = GCLSchedule(epochs=5, lr=1e-3, enable_lora=False, signals=(SLIDER,))
    assert base.signal(0) == NO_SIGNAL


# -------------------------------------------------------------------------------------------------- sampler
def test_sampler_is_deterministic_sharded_and_resumable():
    def keys(rank, world, epoch=3, start=0):
        sampler = GCLSampler(23, 2, seed=7, signal_for_epoch=lambda e: SLIDER, rank=rank, world_size=world)
        sampler.set_epoch(epoch, start)
        return list(sampler)

    single = keys(0, 1)
    assert single == keys(0, 1) and len(single) == 22
    assert keys(0, 1, epoch=4) != single
    r0, r1 = keys(0, 2), keys(1, 2)
    assert len(r0) == len(r1) == 10 and not {k[1] for k in r0} & {k[1] for k in r1}
    assert keys(0, 1, start=4) == single[8:]
    assert all(k[2] == SLIDER for k in single)


# -------------------------------------------------------------------------------------------------- trainer
def tiny_trainer(tmp_path: Path, signals=(PHRASE, SLIDER, NO_SIGNAL), enable_lora=True, epochs=2, switch=1,
                 **options) -> GCLTrainer:
    torch.manual_seed(0)
    cfg = tiny_config(img_size=(64, 64))
    model = GraCoModel(cfg)
    model.phrase_encoder.load_clip_state(seeded_clip_text_state(0), source="seeded CLIP")
    train_set = ClickTrainingSet(ShapesTargets(8), None, MultiPointSampler(4), min_object_area=10)
    train_set.targets.signals = signals
    schedule = GCLSchedule(epochs=epochs, lr=1e-3, milestones=(100,), switch_epoch=switch,
                           enable_lora=enable_lora, signals=signals)
    values = dict(batch_size=4, workers=0, seed=1, max_num_next_clicks=1, image_dump_interval=0, state_interval=3)
    values.update(options)
    return GCLTrainer(model, train_set, schedule, tmp_path, DistInfo(), TrainOptions(**values), enable_lora)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_lora_training_changes_only_the_branch_of_each_phase(tmp_path):
    trainer = tiny_trainer(tmp_path, epochs=2, switch=1)
    start = snapshot(trainer.model)
    trainer.options.max_iterations = 2  # phrase phase (epoch 0 has 2 iterations)
    trainer.fit()
    after_phrase = snapshot(trainer.model)
    phrase_changed = changed(start, after_phrase)
    assert phrase_changed and all(branch_of(k) == PHRASE for k in phrase_changed), phrase_changed
    assert any("phrase2gra_proj" in k for k in phrase_changed)
    trainer.options.max_iterations = 2  # slider phase
    trainer.fit()
    slider_changed = changed(after_phrase, snapshot(trainer.model))
    assert slider_changed and all(branch_of(k) == SLIDER for k in slider_changed), slider_changed
    assert any("gra_embed" in k for k in slider_changed)
    assert (tmp_path / "checkpoints" / "last_checkpoint.safetensors").is_file()


def test_resumed_trainer_reaches_the_same_weights(tmp_path):
    straight = tiny_trainer(tmp_path / "a", epochs=2, switch=1)
    straight.fit()
    interrupted = tiny_trainer(tmp_path / "b", epochs=2, switch=1, max_iterations=3)
    interrupted.fit()  # stops mid-epoch 1; the state holds epoch 1, iteration 1
    resumed = tiny_trainer(tmp_path / "b", epochs=2, switch=1)
    resumed.load_state(resumed.state_path)
    assert (resumed.epoch, resumed.next_batch) == (1, 1)
    resumed.fit()
    a, b = snapshot(straight.model), snapshot(resumed.model)
    assert not changed(a, b)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_state(tmp_path):
    from isegm.engine import TrainingDiverged
    trainer = tiny_trainer(tmp_path, epochs=1, signals=(SLIDER,), switch=0)
    trainer.options.max_iterations = 1
    trainer.fit()
    saved = trainer.state_path.read_bytes()
    with torch.no_grad():
        next(iter(trainer.params.values())).fill_(float("nan"))
    trainer.options.max_iterations = -1
    with pytest.raises(TrainingDiverged, match="loss is nan"):
        trainer.fit()
    assert trainer.state_path.read_bytes() == saved


def pascalpart_with_split(test_data: Path, tmp_path: Path) -> Path:
    """The shared PascalPart images with a train list (the shared copy has no split files)."""
    import os

    source = test_data / "PascalPart"
    root = tmp_path / "PascalPart"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for name in ("JPEGImages", "Annotations_Part"):
        os.symlink(source / name, root / name)
    ids = sorted(p.stem for p in (source / "Annotations_Part").glob("*.mat"))
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("data", ["shared PascalPart", "toy scenes"])
def test_tiny_model_learns_over_a_few_hundred_iterations(data, tmp_path, request):
    """The tiny configuration trained on whole objects: its loss falls (shared PascalPart) and its training IoU
    rises (both). A LoRA run on a random base is no test of learning: it can only move the frozen base a little."""
    from isegm.toy.synthetic import build_toy_dataset
    from isegm.data.training import PascalPartTrainingDataset
    from isegm.data.transforms import train_augmentation

    if data == "shared PascalPart":
        root = pascalpart_with_split(request.getfixturevalue("test_data"), tmp_path)
    else:
        root = build_toy_dataset(tmp_path / "toy", n_train=24, n_val=0, size=(96, 96), seed=0,
                                 photo_crops=0).pascalpart_root
    torch.manual_seed(0)
    model = GraCoModel(tiny_config(img_size=(64, 64)))
    train_set = ClickTrainingSet(PascalPartTrainingDataset(root), train_augmentation((64, 64)), MultiPointSampler(4),
                                 min_object_area=10)
    schedule = GCLSchedule(epochs=10 ** 4, lr=1e-3, milestones=(10 ** 4,), enable_lora=False, signals=(NO_SIGNAL,))
    options = TrainOptions(batch_size=4, workers=0, seed=0, max_num_next_clicks=1, image_dump_interval=0,
                           state_interval=10 ** 6, max_iterations=240)
    trainer = GCLTrainer(model, train_set, schedule, tmp_path / "exp", DistInfo(), options, False)
    trainer.fit()
    losses = np.array([h["loss"] for h in trainer.history])
    ious = np.array([h["iou"] for h in trainer.history])
    assert len(losses) == 240
    print(f"{data}: loss {losses[:60].mean():.3f} -> {losses[-60:].mean():.3f}, training IoU {ious[:60].mean():.3f} -> {ious[-60:].mean():.3f}")
    assert ious[-60:].mean() > ious[:60].mean() + 0.1, (ious[:60].mean(), ious[-60:].mean())
    if data == "shared PascalPart":
        assert losses[-60:].mean() < 0.97 * losses[:60].mean(), (losses[:60].mean(), losses[-60:].mean())


def test_sample_dropout_mask_depends_only_on_the_samples_seed():
    from isegm.engine.sample_dropout import SampleDropout2d, use_sample_dropout

    head = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Dropout2d(0.5))
    (dropout,) = use_sample_dropout(head)
    assert isinstance(head[1], SampleDropout2d) and dropout.p == 0.5
    x = torch.ones(3, 16, 2, 2)
    dropout.set_seeds([5, 6, 7])
    together = dropout(x)
    dropout.set_seeds([7, 5])
    apart = dropout(x[:2])
    assert torch.equal(together[2], apart[0]) and torch.equal(together[0], apart[1])
    assert not torch.equal(together[0], together[1])  # different seeds, different masks (16 channels, p = 0.5)
    assert set(together.unique().tolist()) <= {0.0, 2.0}
    dropout.eval()
    assert torch.equal(dropout(x[:2]), x[:2])


def test_sample_dropout_with_p_1_zeroes_everything_without_nan():
    from isegm.engine.sample_dropout import SampleDropout2d

    dropout = SampleDropout2d(1.0).train()
    x = torch.ones(2, 4, 3, 3)
    dropout.set_seeds([1, 2])
    out = dropout(x)
    assert not out.isnan().any() and torch.equal(out, torch.zeros_like(x))


def test_sample_dropout_seeds_serve_one_forward_only():
    """A later training-mode forward with the same batch size must not reuse the masks of the seeded step."""
    from isegm.engine.sample_dropout import SampleDropout2d

    dropout = SampleDropout2d(0.5).train()
    x = torch.ones(3, 64, 1, 1)
    dropout.set_seeds([5, 6, 7])
    seeded = dropout(x)
    torch.manual_seed(0)
    later = dropout(x)  # the global generator now, as nn.Dropout2d
    torch.manual_seed(0)
    assert not torch.equal(seeded, later) and torch.equal(later, torch.nn.functional.dropout2d(x, 0.5, True))


def test_a_training_step_leaves_the_global_torch_generator_as_it_found_it(tmp_path):
    """The step's own draws are seeded, but the seed must not stay set in torch's global generator afterwards."""
    trainer = tiny_trainer(tmp_path, epochs=1, signals=(SLIDER,), switch=0)
    batch = next(iter(trainer.loader))
    trainer.model.train()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    trainer._step(batch, SLIDER)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.slow  # subprocesses
def test_two_gloo_ranks_reduce_gradients_with_distributed_data_parallel(tmp_path):
    """Training under torchrun wraps the model in DistributedDataParallel (bucketed all-reduce overlapped with the
    backward pass) and every rank ends with the same weights."""
    import subprocess
    import sys

    from helpers import ROOT

    env = dict(__import__("os").environ, PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}", OMP_NUM_THREADS="1",
               DDP_WORKER_OUT=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29541", str(ROOT / "tests" / "ddp_worker.py")],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    reports = [p.read_text().split() for p in sorted(tmp_path.glob("rank*.txt"))]
    assert len(reports) == 2
    assert all(r[0] == "DistributedDataParallel" for r in reports), reports
    assert reports[0][1] == reports[1][1]  # the weights' digest
