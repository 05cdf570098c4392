"""torch.distributed set-up for torchrun (NCCL on GPUs, gloo on the CPU) and the few collectives training needs."""
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_distributed(use_cpu: bool, gpu_ids: Optional[Sequence[int]] = None,
                     timeout: Optional[timedelta] = None, local_rank: Optional[int] = None) -> DistInfo:
    """Join the torchrun (or ``python -m torch.distributed.launch``) process group, if any, and pick this
    process's device: ``gpu_ids[local_rank]`` (or the local rank) on GPUs, the CPU with ``use_cpu``. The local
    rank is ``LOCAL_RANK`` from the environment, else ``local_rank`` (the launcher's ``--local_rank``).
    ``timeout``: how long a collective waits for the slowest rank (torch's default when None)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    if use_cpu or not torch.cuda.is_available():
        device = torch.device("cpu")
    else:
        ids = list(gpu_ids) if gpu_ids else list(range(torch.cuda.device_count()))
        if local_rank >= len(ids):
            raise ValueError(f"process {local_rank} of this node has no GPU: --gpus lists {len(ids)} id(s); start "
                             f"as many processes per node as GPUs")
        device = torch.device("cuda", ids[local_rank])
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        extra = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **extra)
    return DistInfo(rank, world_size, local_rank, device)


def broadcast_from_main(value: Any, world_size: int) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; every rank must call it). Used where each rank could
    decide differently, e.g. precision "auto", which times the device."""
    if world_size <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world_size
    return values


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
