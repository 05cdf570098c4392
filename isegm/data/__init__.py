"""Evaluation data: :class:`DSample` and the benchmark dataset loaders in :mod:`isegm.data.datasets`."""
from .sample import DSample

__all__ = ["DSample"]
