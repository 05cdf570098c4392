"""A dataset's evaluation divided among the processes of a torchrun group, journaled sample by sample.

Rank r of N takes samples r, r + N, r + 2N, ... (each sample's result depends only on the sample, so the
division does not change any result); every finished sample goes to the journal at once; rank 0 gathers all
results and merges them in dataset order, so it holds exactly what one process would have computed.
"""
import logging
from typing import Callable, List, Optional, Union

import torch.distributed as dist

from ..data.datasets import EvaluationDataset
from ..data.sample import DSample
from .evaluation import (Callback, DatasetResult, Protocol, SampleResult, Signal, evaluate_samples,
                         merge_results)
from .journal import Journal
from .predictors import BasePredictor

logger = logging.getLogger(__name__)


def shard_indices(count: int, rank: int, world_size: int) -> List[int]:
    """The sample indices rank ``rank`` of ``world_size`` evaluates: rank, rank + world_size, ..."""
    return list(range(rank, count, world_size))


def gather_to_main(results: List[SampleResult], rank: int, world_size: int) -> Optional[List[SampleResult]]:
    """All ranks' results on rank 0 (None on the other ranks)."""
    if world_size == 1:
        return results
    gathered = [None] * world_size if rank == 0 else None
    dist.gather_object(results, gathered, dst=0)
    return [r for part in gathered for r in part] if rank == 0 else None


def evaluate_shard(dataset: EvaluationDataset, predictor: BasePredictor, protocol: Protocol,
                   signal: Union[Signal, Callable[[DSample], Signal]], journal: Journal, unit: str,
                   rank: int = 0, world_size: int = 1, name: str = "",
                   callback: Optional[Callback] = None) -> Optional[DatasetResult]:
    """Evaluate this rank's share of ``dataset`` that the journal does not hold yet, appending each result to the
    journal under ``unit``; every rank must call it. Returns the whole dataset's result on rank 0, None elsewhere."""
    finished = journal.finished(unit)
    mine = shard_indices(len(dataset), rank, world_size)
    done = [finished[i] for i in mine if i in finished]
    pending = [i for i in mine if i not in finished]
    if done:
        logger.info("%s: rank %d/%d: %d of its %d samples already in the journal, %d to evaluate", name or unit,
                    rank, world_size, len(done), len(mine), len(pending))
    results: List[SampleResult] = list(done)
    desc = f"{name} (rank {rank})" if world_size > 1 else name
    for result in evaluate_samples(dataset, predictor, protocol, signal, pending, desc, callback, done):
        journal.append(unit, result)
        results.append(result)
    everything = gather_to_main(results, rank, world_size)
    return merge_results(everything) if everything is not None else None


def agree_on_error(error: Optional[str], world_size: int) -> Optional[str]:
    """The first rank's error message if any rank has one, on every rank (every rank must call it)."""
    if world_size == 1:
        return error
    errors: List[Optional[str]] = [None] * world_size
    dist.all_gather_object(errors, error)
    return next((e for e in errors if e is not None), None)
