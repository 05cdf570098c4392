"""Any-granularity mask generator (AGG = FMG + MGE): part proposals with granularities for GraCo training.

Writes ``<save-path>/<save-name>`` (``.pkl`` added when missing) in the published layout
``{image_id: {'mask': N x H x W uint8, 'gra': N x 2 float64}}``, columns (semantic, scale), read by
``train.py --part_path``. Images without any proposal are left out (training then uses their instance masks).

Datasets (``--dataset-format``):
  sbd   <dataset-path>/<split>.txt, img/<id>.jpg, inst/<id>.mat (GTinst.Segmentation); ids are the image names
  coco  <dataset-path>/annotations/instances_<split>.json and images in <dataset-path>/<split>/ (pycocotools);
        ids are the file name stems; crowd annotations are skipped
Objects filling less than 8% of their bounding box are skipped, as published.

Long runs: every ``--shard-size`` images go to a shard in ``<save-path>/<stem>.shards/`` (atomic writes); a
restart with the same arguments skips the images already done, one with other arguments is refused. Every
image draws from a generator seeded by (``--seed``, image id), so the output does not depend on the order,
restarts, ``--batch-size`` or the number of ranks. With ``torchrun --nproc_per_node N`` rank r takes images
r, r+N, ...; rank 0 waits for all and merges. An unreadable image is logged, counted and skipped.

Example::

    python any_granularity_generator.py --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --save-path part_output --save-name proposal.pkl --dataset-path /path/to/SBD/dataset
"""
import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from tqdm import tqdm

from isegm.data.io import SampleError, read_rgb_image, read_sbd_instances
from isegm.data.training.proposals import is_buggy_mask, write_proposals
from isegm.engine.distributed import broadcast_from_main
from isegm.generation.fmg import CarveJob, FMGSettings, carve_many, make_predictor, pack_proposals
from isegm.inference.precision import TOOL_PRECISIONS, resolve_precision
from isegm.inference.utils import load_is_model
from isegm.model.checkpoint import CheckpointError
from isegm.utils.files import atomic_write

logger = logging.getLogger("any_granularity_generator")
SHARD_FORMAT = 1
KILL_HOOK_ENV = "GRACO_GENERATOR_KILL_AFTER_SHARDS"  # fault injection for tests: SIGKILL after N shards


class UsageError(ValueError):
    """Bad arguments or dataset layout: reported in one line, exit code 2."""


class UnreadableImage(ValueError):
    """One image (or its annotation) cannot be read: logged, counted, skipped."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="pretrained IS model (SimpleClick .pth or project "
                        ".safetensors); the published generator uses sbd_vit_base.pth without LoRA")
    parser.add_argument("--lora_checkpoint", default=None, help="optional GraCo LoRA checkpoint (not published)")
    device = parser.add_mutually_exclusive_group()
    device.add_argument("--gpus", default="0", help="GPU id(s), comma-separated; rank r uses gpus[local_rank]")
    device.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--save-path", default="part_output", help="output folder")
    parser.add_argument("--save-name", default="proposal.pkl", help="output file name (.pkl added if missing)")
    parser.add_argument("--dataset-path", required=True, help="dataset root (see --dataset-format)")
    parser.add_argument("--dataset-format", choices=("sbd", "coco"), default="sbd")
    parser.add_argument("--split", default="train", help="sbd: train or val; coco: e.g. train2017")
    parser.add_argument("--batch-size", type=int, default=4, help="images whose objects share each forward "
                        "(published: 1 object per forward); does not change the proposals")
    parser.add_argument("--workers", type=int, default=4, help="image-reading worker processes")
    parser.add_argument("--seed", type=int, default=0, help="seed; each image draws from (seed, image id)")
    parser.add_argument("--input-size", type=int, default=448, help="model input (zoom-in crop) size")
    parser.add_argument("--max-objects-per-forward", type=int, default=0, help="split larger forwards (0: off)")
    parser.add_argument("--shard-size", type=int, default=100, help="images per shard file")
    parser.add_argument("--precision", default="fp32", choices=TOOL_PRECISIONS,
                        help="fp32 (default, as published), bf16 (bfloat16 products) or auto "
                             "(bf16 where the device multiplies bfloat16 natively and faster); part of the run's "
                             "identity: a restart must use the same mode")
    parser.add_argument("--min-component-area", type=int, default=1500,
                        help="pixels a carved component needs to be drawn (published: 1500, for SBD-sized images)")
    parser.add_argument("--min-negative-area", type=int, default=400,
                        help="pixels a prediction needs before negative clicks are placed in it (published: 400)")
    args = parser.parse_args(argv)
    for name in ("batch_size", "shard_size", "input_size", "min_component_area", "min_negative_area"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers < 0 or args.max_objects_per_forward < 0:
        raise UsageError("--workers and --max-objects-per-forward must be >= 0")
    if args.input_size % 16:
        raise UsageError(f"--input-size {args.input_size}: must be a multiple of 16 (the patch size)")
    return args


# --- datasets -------------------------------------------------------------------------------------------------

def usable_objects(masks: Sequence[np.ndarray], shape: Tuple[int, ...]) -> np.ndarray:
    """K x H x W bool of the masks that pass the published 8%-of-bbox filter."""
    kept = [m for m in masks if not is_buggy_mask(m)]
    return np.stack(kept).astype(bool) if kept else np.zeros((0, *shape[:2]), bool)


class SBDImages:
    """``<root>/<split>.txt``, ``img/<id>.jpg``, ``inst/<id>.mat`` (``GTinst.Segmentation``, k = instance k)."""

    def __init__(self, root: Path, split: str):
        split_file = root / f"{split}.txt"
        for path in (root / "img", root / "inst", split_file):
            if not path.exists():
                raise UsageError(f"SBD: {path} not found; expected <root>/<split>.txt, img/<id>.jpg, inst/<id>.mat")
        self.root = root
        self.image_ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        image_id = self.image_ids[index]
        image = read_rgb_image(self.root / "img" / f"{image_id}.jpg", "SBD")
        path = self.root / "inst" / f"{image_id}.mat"
        labels = read_sbd_instances(path, "SBD")
        if labels.shape != image.shape[:2]:
            raise UnreadableImage(f"{path} is {labels.shape} but the image is {image.shape[:2]}")
        ids = [v for v in np.unique(labels) if v != 0]
        return image, usable_objects([labels == v for v in ids], image.shape)


class COCOImages:
    """``<root>/annotations/instances_<split>.json`` and ``<root>/<split>/<file_name>``; non-crowd objects in
    annotation-id order."""

    def __init__(self, root: Path, split: str):
        annotations = root / "annotations" / f"instances_{split}.json"
        if not annotations.is_file():
            raise UsageError(f"COCO: {annotations} not found; expected <root>/annotations/instances_<split>.json "
                             f"and images in <root>/<split>/")
        from pycocotools.coco import COCO
        self.root, self.split = root, split
        self.coco = COCO(str(annotations))
        self._images = sorted(self.coco.dataset.get("images", []), key=lambda im: im["id"])
        self.image_ids = [Path(im["file_name"]).stem for im in self._images]

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        info = self._images[index]
        image = read_rgb_image(self.root / self.split / info["file_name"], "COCO")
        anns = sorted((a for a in self.coco.imgToAnns.get(info["id"], []) if not a.get("iscrowd", 0)),
                      key=lambda a: a["id"])
        masks = []
        for ann in anns:
            try:
                mask = self.coco.annToMask(ann)
            except Exception as error:
                raise UnreadableImage(f"annotation {ann.get('id')}: {type(error).__name__}: {error}") from None
            if mask.shape != image.shape[:2]:
                raise UnreadableImage(f"annotation {ann.get('id')} is {mask.shape}, image {image.shape[:2]}")
            masks.append(mask)
        return image, usable_objects(masks, image.shape)


class LoadedImages(torch.utils.data.Dataset):
    """``(index, image or None, K x H x W objects or None, error or None)`` for DataLoader workers."""

    def __init__(self, source, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        try:
            image, objects = self.source.load(index)
            return index, image, objects, None
        except (UnreadableImage, SampleError) as error:
            return index, None, None, str(error)
        except Exception as error:  # a decoder crash on a corrupt file must not stop a long run
            return index, None, None, f"{type(error).__name__}: {error}"


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """The image's generator: seeded by ``seed`` and a hash of the id (independent of order, rank, restart)."""
    digest = int.from_bytes(hashlib.sha256(image_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


# --- shards -----------------------------------------------------------------------------------------------------

class ShardStore:
    """``<folder>/manifest.json`` (the arguments that shape the output) and ``shard-*.npz`` files, each holding
    the ids of the images it completed and their masks and granularities (no pickle: ``allow_pickle=False``)."""

    def __init__(self, folder: Path, rank: int):
        self.folder, self.rank = folder, rank
        self.written = 0

    def check_manifest(self, manifest: dict, create: bool) -> None:
        path = self.folder / "manifest.json"
        if path.is_file():
            old = json.loads(path.read_text())
            diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            if diff:
                raise UsageError(f"{self.folder} holds shards made with other arguments ({', '.join(diff)} "
                                 f"differ); use another --save-name or remove that folder")
        elif create:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode()))
        else:
            raise UsageError(f"{path} is missing (rank 0 did not create it)")

    def shard_paths(self) -> List[Path]:
        return sorted(self.folder.glob("shard-*.npz"))

    def read(self) -> Iterator[Tuple[str, Optional[Dict[str, np.ndarray]]]]:
        """(image id, entry) for every completed image; entry None when it has no proposal. Unreadable shards
        are logged and skipped (their images are redone)."""
        for path in self.shard_paths():
            try:
                with np.load(path, allow_pickle=False) as data:
                    ids = [str(i) for i in data["ids"]]
                    entries = [(i, {"mask": data[f"mask_{n}"], "gra": data[f"gra_{n}"]} if f"gra_{n}" in data
                                else None) for n, i in enumerate(ids)]
            except Exception as error:
                logger.warning("ignoring unreadable shard %s (%s)", path, error)
                continue
            yield from entries

    def done_ids(self) -> Set[str]:
        return {image_id for image_id, _ in self.read()}

    def write(self, results: Dict[str, Optional[Dict[str, np.ndarray]]]) -> None:
        arrays = {"ids": np.array(list(results), dtype=str)}
        for n, entry in enumerate(results.values()):
            if entry is not None:
                arrays[f"mask_{n}"], arrays[f"gra_{n}"] = entry["mask"], entry["gra"]
        name = f"shard-r{self.rank:03d}-{time.time_ns():020d}-{os.getpid()}.npz"
        def write(tmp: str) -> None:
            with open(tmp, "wb") as stream:  # a file object: savez would add ".npz" to a name
                np.savez_compressed(stream, **arrays)

        atomic_write(self.folder / name, write)
        self.written += 1
        limit = os.environ.get(KILL_HOOK_ENV)
        if limit and self.written >= int(limit):
            logger.warning("%s=%s: killing this process", KILL_HOOK_ENV, limit)
            os.kill(os.getpid(), signal.SIGKILL)


# --- run --------------------------------------------------------------------------------------------------------

def output_paths(args) -> Tuple[Path, Path]:
    name = args.save_name if args.save_name.endswith(".pkl") else f"{args.save_name}.pkl"
    out = Path(args.save_path) / name
    return out, out.parent / f"{Path(name).stem}.shards"


def _file_identity(path: Optional[str]) -> Optional[List]:
    if path is None:
        return None
    resolved = Path(path).resolve()
    return [str(resolved), resolved.stat().st_size if resolved.exists() else None]


def build_manifest(args, settings: FMGSettings) -> dict:
    return {"format": SHARD_FORMAT, "checkpoint": _file_identity(args.checkpoint),
            "lora_checkpoint": _file_identity(args.lora_checkpoint),
            "dataset": [args.dataset_format, str(Path(args.dataset_path).resolve()), args.split],
            "seed": args.seed, "settings": {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in vars(settings).items() if k != "max_batch"}}


def distributed_setup() -> Tuple[int, int, int]:
    """(rank, world size, local rank); joins a gloo group when started by torchrun with several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", timeout=timedelta(hours=48))
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist
        dist.barrier()


def choose_device(args, local_rank: int) -> torch.device:
    if args.cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("CUDA is not available; pass --cpu")
    gpus = [g for g in args.gpus.split(",") if g.strip()]
    return torch.device(f"cuda:{int(gpus[local_rank % len(gpus)])}")


def generate(args, source, pending: List[int], store: ShardStore, device: torch.device,
             settings: FMGSettings, rank: int) -> Dict[str, int]:
    """Carve the ``pending`` images, writing a shard every ``--shard-size`` completed images."""
    model = load_is_model(args.checkpoint, device, lora_checkpoint=args.lora_checkpoint)
    predictor = make_predictor(model, settings, device)
    loader = torch.utils.data.DataLoader(LoadedImages(source, pending), batch_size=None, shuffle=False,
                                         num_workers=args.workers, collate_fn=lambda item: item)
    stats = {"images": 0, "skipped": 0, "proposals": 0, "objects": 0}
    buffer: Dict[str, Optional[Dict[str, np.ndarray]]] = {}
    batch: List[Tuple[int, np.ndarray, np.ndarray]] = []
    bar = tqdm(total=len(pending), unit="img", desc=f"rank {rank}" if rank else "generating", dynamic_ncols=True)

    def flush_batch():
        jobs = [CarveJob(image, objects, image_rng(args.seed, source.image_ids[index]))
                for index, image, objects in batch]
        for (index, image, objects), per_object in zip(batch, carve_many(predictor, jobs, settings)):
            record = pack_proposals(per_object, image.shape[:2])
            count = record["mask"].shape[0]
            buffer[source.image_ids[index]] = record if count else None
            stats["images"] += 1
            stats["objects"] += len(objects)
            stats["proposals"] += count
        bar.update(len(batch))
        bar.set_postfix({"prop/img": f"{stats['proposals'] / max(1, stats['images']):.2f}",
                         "skipped": stats["skipped"]})
        batch.clear()
        if len(buffer) >= args.shard_size:
            store.write(buffer)
            buffer.clear()

    for index, image, objects, error in loader:
        if error is not None:
            logger.warning("skipping %s: %s", source.image_ids[index], error)
            stats["skipped"] += 1
            bar.update(1)
            continue
        batch.append((index, image, objects))
        if len(batch) >= args.batch_size:
            flush_batch()
    if batch:
        flush_batch()
    if buffer:
        store.write(buffer)
    bar.close()
    return stats


def merge(store: ShardStore, image_ids: Sequence[str], out: Path) -> Tuple[int, int]:
    """Write the final pickle in dataset order; returns (images with proposals, images done)."""
    entries: Dict[str, Optional[Dict[str, np.ndarray]]] = {}
    for image_id, entry in store.read():
        entries.setdefault(image_id, entry)
    proposals = {i: entries[i] for i in image_ids if entries.get(i) is not None}
    write_proposals(out, proposals)
    return len(proposals), sum(1 for i in image_ids if i in entries)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(argv)
        rank, world, local_rank = distributed_setup()
        device = choose_device(args, local_rank)
        root = Path(args.dataset_path)
        if not root.is_dir():
            raise UsageError(f"--dataset-path {root} is not a folder")
        source = SBDImages(root, args.split) if args.dataset_format == "sbd" else COCOImages(root, args.split)
        settings = FMGSettings(input_size=(args.input_size, args.input_size),
                               precision=broadcast_from_main(resolve_precision(args.precision, device), world),
                               max_batch=args.max_objects_per_forward,
                               min_component_area=args.min_component_area,
                               min_negative_area=args.min_negative_area)
        out, shard_dir = output_paths(args)
        store = ShardStore(shard_dir, rank)
        manifest = build_manifest(args, settings)
        if rank == 0:
            store.check_manifest(manifest, create=True)
        barrier(world)
        if rank != 0:
            store.check_manifest(manifest, create=False)
        done = store.done_ids()
        mine = list(range(len(source.image_ids)))[rank::world]
        pending = [i for i in mine if source.image_ids[i] not in done]
        logger.info("rank %d/%d: %d images, %d already done, %d to carve", rank, world, len(mine),
                    len(mine) - len(pending), len(pending))
        start = time.perf_counter()
        stats = generate(args, source, pending, store, device, settings, rank) if pending else \
            {"images": 0, "skipped": 0, "proposals": 0, "objects": 0}
        seconds = time.perf_counter() - start
        logger.info("rank %d: %d images (%.2f img/s), %d objects, %d proposals (%.2f per image), %d skipped",
                    rank, stats["images"], stats["images"] / max(seconds, 1e-9), stats["objects"],
                    stats["proposals"], stats["proposals"] / max(1, stats["images"]), stats["skipped"])
        barrier(world)
        if rank == 0:
            with_proposals, done_count = merge(store, source.image_ids, out)
            missing = len(source.image_ids) - done_count
            logger.info("wrote %s: %d images with proposals; %d of %d images done%s", out, with_proposals,
                        done_count, len(source.image_ids),
                        f"; {missing} unreadable (rerun to retry)" if missing else "")
        if world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()
    except (UsageError, CheckpointError) as error:
        print(f"any_granularity_generator.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
