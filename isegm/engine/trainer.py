"""The GCL trainer: iterative click training of the control-signal branches (or of a whole base model)."""
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.click_training_set import ClickTrainingSet
from ..model import GraCoModel
from ..model.checkpoint import save_checkpoint
from ..model.graco import signal_of_parameter
from ..model.losses import NormalizedFocalLoss
from ..signals import PHRASE, SLIDER
from ..utils.files import atomic_write
from ..utils.vis import NEGATIVE_COLOUR, POSITIVE_COLOUR, draw_probmap
from .click_simulation import add_correction_clicks
from .metrics import AdaptiveIoU
from .distributed import DistInfo, all_reduce_mean
from .sample_dropout import use_sample_dropout
from .sampler import GCLSampler, derive_seed
from .schedule import GCLSchedule

logger = logging.getLogger(__name__)
STATE_FORMAT = "graco-train-state/1"
STATE_FILE = "training_state.pt"
LAYERWISE_WEIGHT_DECAY = 0.02  # published optimizer with --layerwise-decay (1-D parameters get none)
VALIDATION_TAG = 7             # seeds the validation draws: derive_seed(seed, VALIDATION_TAG, ...)
DROPOUT_TAG = 11               # a sample's dropout mask: derive_seed(sample seed, DROPOUT_TAG)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class RankFailed(ValueError):
    """A rank met an error (bad sample, unreadable data); every rank stops with the same one-line message."""


@dataclass
class TrainOptions:
    """What the trainer needs besides the model and data (from the training YAML and the command line)."""

    batch_size: int = 32                 # global batch, split evenly over the ranks
    workers: int = 4
    seed: int = 0
    max_num_next_clicks: int = 3         # correction clicks simulated without gradient, 0..this many per batch
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    loss_alpha: float = 0.5
    loss_gamma: float = 2.0
    checkpoint_interval: Sequence[Tuple[int, int]] = ((0, 20), (50, 1), (55, 20), (105, 1))  # (from epoch, every)
    state_interval: int = 200            # iterations between resumable training states (also at every epoch end)
    image_dump_interval: int = 300       # iterations between image dumps (0: never)
    log_interval: int = 10               # iterations between tensorboard scalars
    bf16: bool = False                   # bf16 autocast on GPUs
    layerwise_decay: float = 0.0         # > 0: backbone block i learns at lr * decay ** (depth - i), weight decay 0.02
    max_iterations: int = -1             # stop after this many iterations in all (tests, benchmarks)
    prev_mask_drop_prob: float = 0.0     # after simulated clicks, zero the previous mask of a sample this often
    freeze_list: Tuple[str, ...] = ()    # without LoRA: parameters whose name contains one of these stay frozen
    validation: bool = False             # a validation pass (loss, AdaptiveIoU) after every epoch
    val_epoch_len: int = 500             # validation samples per pass (drawn from the validation set)


def branch_of(name: str) -> str:
    """Which optimizer group a parameter belongs to: 'slider', 'phrase' or 'base'."""
    return signal_of_parameter(name) or "base"


class GCLTrainer:
    """Trains ``model`` on ``train_set`` following ``schedule``; writes into ``exp_dir``.

    With ``enable_lora`` only the LoRA branches, the granularity embedding and the phrase projection learn (the
    base stays frozen); otherwise every parameter of the model learns (training a SimpleClick-style base).
    Under torchrun the model trains through :class:`~torch.nn.parallel.DistributedDataParallel` (rank 0's weights
    at the start, gradients averaged in buckets while the backward pass runs), so every rank holds the same
    weights; an error met by
    one rank (a bad batch, an unreadable training set) stops every rank with that rank's message
    (:class:`RankFailed`). With ``options.validation``, ``val_set`` is evaluated after every epoch
    (:meth:`validate`).
    """

    def __init__(self, model: GraCoModel, train_set: ClickTrainingSet, schedule: GCLSchedule, exp_dir: Path,
                 dist: DistInfo, options: TrainOptions, enable_lora: bool,
                 val_set: Optional[ClickTrainingSet] = None):
        if options.batch_size % dist.world_size:
            raise ValueError(f"batch size {options.batch_size} is not divisible by {dist.world_size} processes")
        self.model = model.to(dist.device)
        self.dropouts = use_sample_dropout(self.model)  # a sample's mask comes from its seed, whatever the ranks
        self.train_set = train_set
        self.schedule = schedule
        self.exp_dir = Path(exp_dir)
        self.dist = dist
        self.options = options
        self.enable_lora = enable_lora
        self.batch_per_rank = options.batch_size // dist.world_size
        self.loss_fn = NormalizedFocalLoss(options.loss_alpha, options.loss_gamma)
        self.params = self._mark_trainable()
        self.train_module = self._wrap_for_ranks()
        self.optimizer = self._build_optimizer()
        self.sampler = GCLSampler(len(train_set), self.batch_per_rank, options.seed, schedule.signal,
                                  dist.rank, dist.world_size, weights=train_set.sample_weights)
        self.loader = torch.utils.data.DataLoader(
            train_set, batch_size=self.batch_per_rank, sampler=self.sampler, num_workers=options.workers,
            pin_memory=dist.device.type == "cuda", drop_last=False)
        self.val_loader = None
        if options.validation:
            if val_set is None:
                raise ValueError("validation is on but there is no validation set")
            self.val_sampler = GCLSampler(len(val_set), self.batch_per_rank,
                                          derive_seed(options.seed, VALIDATION_TAG), schedule.signal, dist.rank,
                                          dist.world_size, epoch_len=options.val_epoch_len)
            self.val_loader = torch.utils.data.DataLoader(
                val_set, batch_size=self.batch_per_rank, sampler=self.val_sampler, num_workers=options.workers,
                pin_memory=dist.device.type == "cuda", drop_last=False)
        self.epoch, self.next_batch, self.global_step = 0, 0, 0
        self.history: List[Dict[str, float]] = []  # loss and training IoU of every iteration this process ran
        self.writer = None
        if dist.is_main:
            (self.exp_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            logger.info("effective batch size %d = %d process(es) x %d", options.batch_size, dist.world_size,
                        self.batch_per_rank)
            logger.info("%d trainable tensors, %d parameters (%s)", len(self.params),
                        sum(p.numel() for p in self.params.values()),
                        "LoRA branches, granularity embedding, phrase projection" if enable_lora else "whole model")

    # ----------------------------------------------------------------------------------------------- set-up
    def _mark_trainable(self) -> Dict[str, torch.nn.Parameter]:
        model = self.model
        if self.enable_lora:
            if not model.cfg.has_lora:
                raise ValueError("--enable_lora needs a model with LoRA branches (granularity or phrase)")
            model.requires_grad_(False)
            params = model.trainable_parameters()
            for p in params.values():
                p.requires_grad_(True)
            model.set_lora_trainable(True)
            return params
        model.requires_grad_(True)
        if model.phrase_encoder is not None and model.phrase_encoder.text is not None:
            model.phrase_encoder.text.requires_grad_(False)
        for name, param in model.named_parameters():  # published freeze_list: substrings of parameter names
            if any(key in name for key in self.options.freeze_list):
                param.requires_grad_(False)
        return {n: p for n, p in model.named_parameters() if p.requires_grad}

    def _wrap_for_ranks(self) -> torch.nn.Module:
        """The module the training forward goes through: the model itself on one process, else the model in
        DistributedDataParallel (which starts every rank from rank 0's weights). Each epoch trains one branch, so
        the other branch's parameters get no gradient (``find_unused_parameters``)."""
        if not self.dist.distributed:
            return self.model
        device_ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        # peft lets only the active LoRA branch require gradients, and each forward picks its branch: DDP must
        # know every trainable parameter when it is built, or the other branch's gradients are never averaged
        flags = {name: p.requires_grad for name, p in self.params.items()}
        for p in self.params.values():
            p.requires_grad_(True)
        try:
            return torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids,
                                                             find_unused_parameters=True, forward_sync_buffers=False)
        finally:
            for name, p in self.params.items():
                p.requires_grad_(flags[name])

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the trainable parameters, grouped by branch. With layer-wise decay (the published
        ``param_groups_lrd``): backbone block i learns at lr * decay ** (depth - i), the patch and position
        embeddings at lr * decay ** (depth + 1), and every parameter but 1-D ones and the position embedding
        gets weight decay 0.02."""
        groups: Dict[Tuple[str, float, float], List[torch.nn.Parameter]] = {}
        for name, param in self.params.items():
            mult, weight_decay = 1.0, 0.0
            if self.options.layerwise_decay > 0:
                mult = self.options.layerwise_decay ** self._layer_depth(name)
                no_decay = param.ndim == 1 or name == "backbone.pos_embed"
                weight_decay = 0.0 if no_decay else LAYERWISE_WEIGHT_DECAY
            groups.setdefault((branch_of(name), mult, weight_decay), []).append(param)
        param_groups = [{"params": ps, "branch": branch, "lr_mult": mult, "lr": self.schedule.lr * mult,
                         "weight_decay": weight_decay}
                        for (branch, mult, weight_decay), ps in groups.items()]
        return torch.optim.Adam(param_groups, lr=self.schedule.lr, betas=tuple(self.options.betas),
                                eps=self.options.eps)

    def _layer_depth(self, name: str) -> int:
        """Layer-wise decay exponent of a parameter: depth - i for backbone block i, depth + 1 for the backbone's
        patch and position embeddings, 0 elsewhere."""
        depth = self.model.cfg.depth
        if name.startswith("backbone.blocks."):
            return depth - int(name.split(".")[2])
        if name.startswith(("backbone.patch_embed.", "backbone.pos_embed")):
            return depth + 1
        return 0

    def _set_learning_rate(self, epoch: int) -> Dict[str, float]:
        lr = self.schedule.learning_rate(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        return {group["branch"]: lr for group in self.optimizer.param_groups}

    # ------------------------------------------------------------------------------------------ state files
    @property
    def state_path(self) -> Path:
        return self.exp_dir / "checkpoints" / STATE_FILE

    def save_state(self) -> None:
        """Write everything a resumed run needs, atomically (rank 0)."""
        if not self.dist.is_main:
            return
        state = {
            "format": STATE_FORMAT, "epoch": self.epoch, "next_batch": self.next_batch,
            "global_step": self.global_step, "global_batch": self.options.batch_size, "seed": self.options.seed,
            "params": {n: p.detach().cpu() for n, p in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
        }
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))

    def load_state(self, path: Path) -> None:
        """Continue exactly where the run that wrote ``path`` stopped (weights, optimizer, position, seed)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: not a training state of this project")
        if state["global_batch"] != self.options.batch_size or state["seed"] != self.options.seed:
            raise ValueError(f"{path}: written with batch size {state['global_batch']} and seed {state['seed']}; "
                             f"resume with the same --batch-size and --seed")
        missing = set(self.params) ^ set(state["params"])
        if missing:
            raise ValueError(f"{path}: its parameters do not match this model (e.g. {sorted(missing)[0]!r})")
        with torch.no_grad():
            for name, value in state["params"].items():
                self.params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # Adam keeps its per-group extras from the saved state
            group.setdefault("lr_mult", 1.0)
        self.epoch, self.next_batch, self.global_step = state["epoch"], state["next_batch"], state["global_step"]

    def _last_good(self) -> str:
        if self.state_path.is_file():
            return f"the last good state is {self.state_path} (continue with --resume-exp)"
        return "no training state was written yet"

    def save_weights(self, name: str) -> Path:
        """``checkpoints/<name>.safetensors`` (+ ``.json``): the LoRA-side weights, or the whole model."""
        cfg = self.model.cfg
        if self.enable_lora:
            state = {n: p for n, p in self.model.state_dict().items() if n in self.params}
            contents = "lora"
        else:
            state = self.model.state_dict()
            contents = "full"
        return save_checkpoint(state, cfg, self.exp_dir / "checkpoints" / name, contents,
                               extra={"epoch": self.epoch})

    def _epoch_checkpoint_due(self, epoch: int) -> bool:
        intervals = [every for start, every in self.options.checkpoint_interval if start <= epoch]
        every = intervals[-1] if intervals else 1
        return epoch % every == 0 or epoch == self.schedule.epochs - 1

    def weights_digest(self) -> str:
        """SHA-256 of the trainable weights: equal on every rank when the ranks train in step."""
        digest = hashlib.sha256()
        for name in sorted(self.params):
            digest.update(self.params[name].detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    # --------------------------------------------------------------------------------------------- training
    def fit(self) -> None:
        """Train from the current position to the last epoch (or ``max_iterations``)."""
        iterations_left = self.options.max_iterations
        while self.epoch < self.schedule.epochs and iterations_left != 0:
            iterations_left = self._train_epoch(iterations_left)
        if self.writer is not None:
            self.writer.close()

    def _train_epoch(self, iterations_left: int) -> int:
        epoch = self.epoch
        signal = self.schedule.signal(epoch)
        lrs = self._set_learning_rate(epoch)
        if self.dist.is_main and self.next_batch == 0:
            logger.info("epoch %d: %s signal, learning rate %s", epoch, signal, lrs)
        self.sampler.set_epoch(epoch, self.next_batch)
        self.model.train()
        bar = tqdm(self.loader, desc=f"Epoch {epoch} [{signal}]", disable=not self.dist.is_main,
                   dynamic_ncols=True, leave=False)
        started, images, skipped, loss_sum, iou_sum, steps = time.perf_counter(), 0, 0, 0.0, 0.0, 0
        for batch in self._agreed_batches(bar, signal):
            losses = self._step(batch, signal)
            self.next_batch += 1
            self.global_step += 1
            steps += 1
            images += batch["images"].shape[0] * self.dist.world_size
            skipped += int(batch["skipped"].sum())
            loss_sum += losses["loss"]
            iou_sum += losses["iou"]
            self.history.append(losses)
            rate = images / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss_sum / steps:.4f}", img_s=f"{rate:.1f}")
            if self.dist.is_main and self.global_step % self.options.log_interval == 0:
                self._log_scalars(losses, lrs)
            if self.global_step % self.options.state_interval == 0:
                self.save_state()
            iterations_left -= 1
            if iterations_left == 0:
                break
        bar.close()
        seconds = time.perf_counter() - started
        finished = self.next_batch >= self.sampler.batches_per_epoch
        skipped = int(all_reduce_mean(torch.tensor(float(skipped), device=self.dist.device),
                                      self.dist.world_size).item() * self.dist.world_size)
        if self.dist.is_main and steps:
            logger.info("epoch %d%s: %d iterations, loss %.4f, training IoU %.3f, %.2f images/s, %d unreadable "
                        "samples skipped", epoch, "" if finished else " (stopped early)", steps, loss_sum / steps,
                        iou_sum / steps, images / seconds, skipped)
            writer = self._writer()
            writer.add_scalar("Train/images_per_second", images / seconds, epoch)
            writer.add_scalar("Train/skipped_samples", skipped, epoch)
        if finished:
            if self.dist.is_main:
                self.save_weights("last_checkpoint")
                if self._epoch_checkpoint_due(epoch):
                    self.save_weights(f"{epoch:03d}")
            self.epoch, self.next_batch = epoch + 1, 0
        self.save_state()
        if finished and self.val_loader is not None:
            self.validate(epoch)
        return iterations_left

    def _agreed_batches(self, loader, signal: str) -> Iterator[Dict[str, torch.Tensor]]:
        """The batches of ``loader``, each only once every rank has read a good one (see
        :meth:`_stop_if_any_rank_failed`); every rank has the same number of batches."""
        batches = iter(loader)
        while True:
            batch, error = None, None
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # an unreadable training set, a worker that died: stop every rank
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                error = self._check_batch(batch, signal)
            self._stop_if_any_rank_failed(error)
            yield batch

    def _check_batch(self, batch: Dict[str, torch.Tensor], signal: str) -> Optional[str]:
        """What is wrong with this rank's batch for the epoch's signal (None when nothing)."""
        if signal == SLIDER and torch.isnan(batch["gra"]).any():
            return (f"a slider sample has no granularity at epoch {self.epoch}, iteration {self.next_batch}; the "
                    f"dataset must give one for the slider signal")
        return None

    def _stop_if_any_rank_failed(self, error: Optional[str]) -> None:
        """Raise :class:`RankFailed` on every rank, with the first failing rank's message, when any rank met an
        error; otherwise return. One small all-reduce per iteration, so no rank waits in a later collective."""
        if not self.dist.distributed:
            if error is not None:
                raise RankFailed(f"{error}; training stopped, {self._last_good()}")
            return
        flag = torch.tensor([0.0 if error is None else 1.0], device=self.dist.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() == 0:
            return
        messages: List[Optional[str]] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(messages, error)
        rank = next(r for r, message in enumerate(messages) if message is not None)
        raise RankFailed(f"rank {rank}: {messages[rank]}; training stopped on all {self.dist.world_size} ranks, "
                         f"{self._last_good()}")

    @torch.no_grad()
    def validate(self, epoch: int) -> Dict[str, float]:
        """The published validation pass: ``val_epoch_len`` samples of the validation set with the epoch's
        signal, 0 to ``max_num_next_clicks`` simulated clicks, the loss and :class:`AdaptiveIoU`; logged to
        ``train.log`` and tensorboard (``Val/loss``, ``Val/AdaptiveIoU``). Draws come from their own seeds, so
        the training stream (and an exact resume) is unchanged."""
        signal = self.schedule.signal(epoch)
        self.val_sampler.set_epoch(epoch)
        self.model.eval()
        metric = AdaptiveIoU()
        loss_sum, steps = 0.0, 0
        bar = tqdm(self.val_loader, desc=f"Validation {epoch}", disable=not self.dist.is_main, leave=False,
                   dynamic_ncols=True)
        for step, batch in enumerate(self._agreed_batches(bar, signal)):
            image, target, points, gra, text = self._inputs(batch, signal)
            step_rng, sample_seeds = self._draw_seeds(image.shape[0], VALIDATION_TAG, epoch, step)
            num_clicks = int(step_rng.integers(self.options.max_num_next_clicks + 1))
            rngs = [np.random.default_rng(s) for s in sample_seeds]
            prev, points = self._simulate_clicks(image, target, points, gra, text, num_clicks, rngs)
            with self._autocast():
                logits = self.model(self._net_input(image, prev), points, gra, text)["instances"]
            loss_sum += self.loss_fn(logits.float(), target).mean().item()
            steps += 1
            metric.update(logits, target)
        bar.close()
        self.model.train()
        totals = torch.tensor([loss_sum, float(steps), metric.iou_sum, float(metric.batches)], dtype=torch.float64,
                              device=self.dist.device)
        totals = all_reduce_mean(totals, self.dist.world_size)
        loss, iou = (totals[0] / totals[1].clamp(min=1)).item(), (totals[2] / totals[3].clamp(min=1)).item()
        if self.dist.is_main:
            logger.info("epoch %d validation: loss %.4f, AdaptiveIoU %.4f (%d samples, %s signal)", epoch, loss, iou,
                        int(totals[1].item() * self.dist.world_size * self.batch_per_rank), signal)
            writer = self._writer()
            writer.add_scalar("Val/loss", loss, epoch)
            writer.add_scalar("Val/AdaptiveIoU", iou, epoch)
        return {"loss": loss, "AdaptiveIoU": iou}

    def _inputs(self, batch: Dict[str, torch.Tensor], signal: str):
        device = self.dist.device
        image = batch["images"].to(device, non_blocking=True)
        target = batch["instances"].to(device, non_blocking=True)
        points = batch["points"].to(device, non_blocking=True)
        gra = batch["gra"].to(device) if signal == SLIDER else None
        text = batch["text"].to(device) if signal == PHRASE else None
        return image, target, points, gra, text

    def _autocast(self):
        device = self.dist.device
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.options.bf16 and device.type == "cuda")

    def _draw_seeds(self, batch_size: int, *step: int) -> Tuple[np.random.Generator, List[int]]:
        """The random stream of one iteration ``step`` (the same on every rank: e.g. how many clicks the global
        batch gets) and one seed per sample of this rank's batch, from the sample's place in the global batch
        (rank r holds places r, r + world, ...), so no draw depends on the number of ranks."""
        step_rng = np.random.default_rng(derive_seed(self.options.seed, *step))
        world, rank = self.dist.world_size, self.dist.rank
        return step_rng, [derive_seed(self.options.seed, *step, b * world + rank) for b in range(batch_size)]

    def _simulate_clicks(self, image, target, points, gra, text, num_clicks: int,
                         rngs: Sequence[np.random.Generator]):
        """``num_clicks`` correction clicks without gradient (model in eval mode), then, as published, each
        previous mask zeroed with probability ``prev_mask_drop_prob``: (prev mask, clicks). Sample b draws
        from ``rngs[b]``."""
        prev = torch.zeros_like(image[:, :1])
        with torch.no_grad():
            if num_clicks:
                training = self.model.training
                self.model.eval()
                for click_index in range(1, num_clicks + 1):
                    with self._autocast():
                        logits = self.model(self._net_input(image, prev), points, gra, text)["instances"]
                    prev = torch.sigmoid(logits.float())
                    points = add_correction_clicks(prev, target, points, click_index, rngs)
                self.model.train(training)
                if self.options.prev_mask_drop_prob > 0:
                    drop = torch.tensor([rng.random() < self.options.prev_mask_drop_prob for rng in rngs])
                    prev[drop.to(prev.device)] = 0.0
        return prev, points

    def _step(self, batch: Dict[str, torch.Tensor], signal: str) -> Dict[str, float]:
        image, target, points, gra, text = self._inputs(batch, signal)
        step_rng, sample_seeds = self._draw_seeds(image.shape[0], self.global_step)
        num_clicks = int(step_rng.integers(self.options.max_num_next_clicks + 1))
        rngs = [np.random.default_rng(s) for s in sample_seeds]
        devices = [self.dist.device] if self.dist.device.type == "cuda" else []
        with torch.random.fork_rng(devices, device_type="cuda"):  # torch's own generators
            torch.manual_seed(derive_seed(self.options.seed, self.global_step))  # are as before after the step
            prev, points = self._simulate_clicks(image, target, points, gra, text, num_clicks, rngs)
            for dropout in self.dropouts:
                dropout.set_seeds([derive_seed(s, DROPOUT_TAG) for s in sample_seeds])
            with self._autocast():
                logits = self.train_module(self._net_input(image, prev), points, gra, text)["instances"]
            loss = self.loss_fn(logits.float(), target).mean()
            loss_value = all_reduce_mean(loss.detach().reshape(1), self.dist.world_size).item()
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"the loss is {loss_value} at epoch {self.epoch}, iteration {self.next_batch}; training stopped, "
                    f"{self._last_good()}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DistributedDataParallel averages the gradients over the ranks
        finite = torch.stack([p.grad.isfinite().all() for p in self.params.values() if p.grad is not None]).all()
        if not finite.item():  # the gradients are averaged, so every rank sees the same answer
            raise TrainingDiverged(
                f"non-finite gradients at epoch {self.epoch}, iteration {self.next_batch}; training stopped before "
                f"the update, {self._last_good()}")
        self.optimizer.step()

        with torch.no_grad():
            pred = logits.float() > 0
            valid = target >= 0
            gt = target > 0.5
            inter = (pred & gt & valid).sum(dim=(1, 2, 3)).float()
            union = ((pred | gt) & valid).sum(dim=(1, 2, 3)).float().clamp(min=1)
            iou = (inter / union).mean().item()
        if (self.dist.is_main and self.options.image_dump_interval > 0
                and self.global_step % self.options.image_dump_interval == 0):
            self._dump_images(image, points, target, torch.sigmoid(logits.detach().float()), signal)
        return {"loss": loss_value, "iou": iou}

    def _net_input(self, image: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return torch.cat((image, prev), 1) if self.model.with_prev_mask else image

    # ---------------------------------------------------------------------------------------------- logging
    def _writer(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(self.exp_dir / "logs"))
        return self.writer

    def _log_scalars(self, losses: Dict[str, float], lrs: Dict[str, float]) -> None:
        writer = self._writer()
        writer.add_scalar("Train/loss", losses["loss"], self.global_step)
        writer.add_scalar("Train/iou", losses["iou"], self.global_step)
        for branch, lr in lrs.items():
            writer.add_scalar(f"Train/learning_rate_{branch}", lr, self.global_step)

    def _dump_images(self, image: torch.Tensor, points: torch.Tensor, target: torch.Tensor, prob: torch.Tensor,
                     signal: str) -> None:
        """``vis/<step>_<signal>.jpg``: the first sample's image with its clicks, ground truth, prediction."""
        rgb = (image[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8).copy()
        clicks = points[0].cpu().numpy()
        half = len(clicks) // 2
        for i, (y, x, order) in enumerate(clicks):
            if order >= 0:
                cv2.circle(rgb, (int(x), int(y)), 3, POSITIVE_COLOUR if i < half else NEGATIVE_COLOUR, -1)
        gt = target[0, 0].cpu().numpy().copy()
        gt[gt < 0] = 0.25
        picture = np.hstack([rgb, draw_probmap(gt), draw_probmap(prob[0, 0].cpu().numpy())])
        folder = self.exp_dir / "vis"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{self.global_step:06d}_{signal}.jpg"), picture[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 85])


__all__ = ["GCLTrainer", "RankFailed", "TrainOptions", "TrainingDiverged", "branch_of"]
