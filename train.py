"""Train GraCo's control-signal branches (or a SimpleClick-style base) from a YAML config.

    python train.py configs/train/graco_vit_base448_mmt_fmg.yaml --enable_lora \\
        --weights weights/simpleclick/sbd_vit_base.pth --part_path proposals/pascalpart_fmg.pkl
    torchrun --nproc_per_node 4 train.py ...          # several GPUs; --nnodes/--node_rank for several nodes
    python -m torch.distributed.launch --nproc_per_node 4 train.py ...   # the published launcher (--local_rank)

Each run writes ``<EXPS_PATH>/<config name>/<NNN>_<exp-name>/`` with ``checkpoints/`` (``last_checkpoint``,
``<epoch>`` and the resumable ``training_state.pt``), ``logs/`` (tensorboard), ``vis/`` and ``train.log``.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import NoReturn, Optional

import torch

logger = logging.getLogger("train")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_path", help="training config (YAML), e.g. configs/train/graco_vit_base448_mmt_fmg.yaml")
    parser.add_argument("--exp-name", default="", help="suffix of the experiment folder")
    parser.add_argument("--workers", type=int, default=4, help="data-loader processes per rank")
    parser.add_argument("--batch-size", type=int, default=-1, help="global batch size (default: the config's)")
    parser.add_argument("--ngpus", type=int, default=1, help="number of GPUs (use torchrun for more than one)")
    parser.add_argument("--gpus", default="", help="GPU ids, e.g. 0,1; rank r uses the r-th (local) id")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (gloo between processes)")
    parser.add_argument("--resume-exp", default=None, help="prefix of the experiment folder to continue")
    parser.add_argument("--resume-prefix", default="latest",
                        help="'latest': continue exactly from training_state.pt; otherwise the prefix of a weights "
                             "checkpoint to restart from (with --start-epoch)")
    parser.add_argument("--start-epoch", type=int, default=0, help="epoch to start from (without a training state)")
    parser.add_argument("--weights", default=None, help="initial weights: a SimpleClick/GraCo .pth or a project "
                                                        ".safetensors checkpoint (the frozen base with --enable_lora)")
    parser.add_argument("--enable_lora", action="store_true", help="train only the LoRA branches, the granularity "
                                                                    "embedding and the phrase projection")
    parser.add_argument("--part_path", default=None, help="proposals pickle from any_granularity_generator.py")
    parser.add_argument("--lora_switch_epoch", type=int, default=None,
                        help="first epoch of the slider branch (default: the config's, 55)")
    parser.add_argument("--upsample", default=None, choices=("x1", "x2", "x4"), help="head upsampling")
    parser.add_argument("--random-split", action="store_true",
                        help="attention over randomly shuffled token chunks in every block instead of windows")
    parser.add_argument("--layerwise-decay", action="store_true",
                        help="layer-wise learning-rate decay 0.75 and weight decay 0.02")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=None,
                        help="set by python -m torch.distributed.launch (torchrun sets LOCAL_RANK instead)")
    parser.add_argument("--validation", action=argparse.BooleanOptionalAction, default=None,
                        help="a validation pass (loss, AdaptiveIoU) after every epoch on DATA.val_split "
                             "(default: the config's TRAIN.validation, false as in the published runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random in the run")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the config's)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on GPUs")
    parser.add_argument("--clip-weights", default=None, help="CLIP ViT-B/32 weights for the phrase branch")
    parser.add_argument("--paths-config", "--config-path", "--cfg", dest="paths_config", default="config.yml",
                        help="paths file (YAML) with the dataset folders and EXPS_PATH")
    parser.add_argument("--max-iterations", type=int, default=-1, help="stop after this many iterations")
    return parser.parse_args(argv)


def fail(message: str) -> NoReturn:
    print(f"train.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> int:
    args = parse_args(argv)
    from isegm.signals import PHRASE
    from isegm.engine import GCLSchedule, GCLTrainer, TrainingDiverged
    from isegm.engine import distributed
    from isegm.engine.experiment import (ExperimentError, find_experiment_dir, new_experiment_dir, record_run,
                                         setup_logging)
    from isegm.engine.training_config import read_training_config
    from isegm.engine.training_setup import SetupError, build_model, build_train_set, trainer_options
    from isegm.model.checkpoint import CheckpointError
    from isegm.utils.config_file import read_paths_config

    try:
        config = read_training_config(args.model_path)
        paths = read_paths_config(args.paths_config, required=False)
        gpu_ids = [int(g) for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    except (ExperimentError, ValueError) as error:
        fail(str(error))
    requested = len(gpu_ids) if gpu_ids else args.ngpus
    if requested > 1 and not distributed.launched_by_torchrun():
        fail(f"{requested} GPUs: start one process per GPU with "
             f"`torchrun --nproc_per_node {requested} train.py {args.model_path} ...`")

    dist = distributed.init_distributed(args.cpu, gpu_ids, local_rank=args.local_rank)
    config_name = Path(args.model_path).stem
    exps_root = Path(paths.get("EXPS_PATH", "./experiments"))
    exp_dir: Optional[Path] = None
    try:
        if args.resume_exp:
            exp_dir = find_experiment_dir(exps_root, config_name, args.resume_exp)
        elif dist.is_main:
            exp_dir = new_experiment_dir(exps_root, config_name, args.exp_name)
        exp_dir = _share_path(exp_dir, dist)
        setup_logging(exp_dir, dist.is_main)
        if dist.is_main:
            record_run(exp_dir, config, vars(args))
            logger.info("experiment folder %s", exp_dir)
        model = build_model(config, weights=args.weights, enable_lora=args.enable_lora, clip_weights=args.clip_weights,
                            upsample=args.upsample, random_split=args.random_split, seed=args.seed)
        train_set, signals = build_train_set(config, paths, part_path=args.part_path)
        options = trainer_options(config, workers=args.workers, seed=args.seed, bf16=args.bf16,
                                  max_iterations=args.max_iterations, layerwise_decay=args.layerwise_decay,
                                  batch_size=args.batch_size, validation=args.validation)
        val_set = (build_train_set(config, paths, part_path=args.part_path, validation=True)[0]
                   if options.validation else None)
        schedule = GCLSchedule.from_config(config.get("TRAIN", {}), args.enable_lora, signals, epochs=args.epochs,
                                           switch_epoch=args.lora_switch_epoch)
        if args.enable_lora and any(schedule.signal(e) == PHRASE for e in range(schedule.epochs)):
            if model.phrase_encoder is None:
                raise SetupError("the schedule trains the phrase branch but the model has no phrase input")
            model.phrase_encoder.ensure_loaded()
        trainer = GCLTrainer(model, train_set, schedule, exp_dir, dist, options, args.enable_lora, val_set)
        _resume(trainer, exp_dir, args)
        trainer.fit()
        _check_ranks_agree(trainer, dist)
    except TrainingDiverged as error:
        logger.error("%s", error)
        return 3
    except (ExperimentError, SetupError, CheckpointError, ValueError, FileNotFoundError) as error:
        fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    except RuntimeError as error:
        if type(error).__name__ != "PhraseEncoderUnavailable":
            raise
        fail(str(error))
    finally:
        distributed.shutdown()
    if dist.is_main:
        logger.info("done: weights in %s", exp_dir / "checkpoints")
    return 0


def _share_path(path: Optional[Path], dist) -> Path:
    """Rank 0's experiment folder, on every rank."""
    if dist.distributed:
        holder = [str(path) if path else None]
        torch.distributed.broadcast_object_list(holder, src=0)
        path = Path(holder[0])
    return path


def _check_ranks_agree(trainer, dist) -> None:
    """Every rank must end with the same weights; say so in the log (or fail)."""
    digest = trainer.weights_digest()
    if not dist.distributed:
        logger.info("trainable weights sha256 %s", digest)
        return
    digests = [None] * dist.world_size
    torch.distributed.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"the ranks ended with different weights: {digests}")
    if dist.is_main:
        logger.info("all %d ranks hold identical weights (sha256 %s)", dist.world_size, digest)


def _resume(trainer, exp_dir: Path, args: argparse.Namespace) -> None:
    from isegm.engine.experiment import ExperimentError
    from isegm.engine.training_setup import load_weights_checkpoint

    if not args.resume_exp:
        trainer.epoch = args.start_epoch
        return
    if args.resume_prefix == "latest":
        if not trainer.state_path.is_file():
            raise ExperimentError(f"{exp_dir}: no {trainer.state_path.name} to continue from; pass "
                                  f"--resume-prefix <checkpoint> with --start-epoch")
        trainer.load_state(trainer.state_path)
        logger.info("continuing %s at epoch %d, iteration %d", exp_dir, trainer.epoch, trainer.next_batch)
        return
    matches = sorted((exp_dir / "checkpoints").glob(f"{args.resume_prefix}*.safetensors"))
    if not matches:
        raise ExperimentError(f"{exp_dir / 'checkpoints'}: no checkpoint starting with {args.resume_prefix!r}")
    load_weights_checkpoint(trainer.model, matches[-1], required=lambda name: name in trainer.params)
    trainer.epoch = args.start_epoch
    logger.info("restarting from %s at epoch %d (the optimizer starts afresh)", matches[-1], args.start_epoch)


if __name__ == "__main__":
    sys.exit(main())
