"""Training-data generation: FMG (fine-grained mask generator) and MGE (mask granularity estimator).

MMT (the multi-grained mask trie over PASCAL-Part parts) is part-name logic of that data: :mod:`isegm.data.mmt`.
"""
from .fmg import (CarveJob, FMGSettings, Proposal, carve_many, carve_proposals, keep_one_component, make_predictor,
                  pack_proposals)
from .mge import area_ratio, round_granularity, scale_granularity, semantic_click_region, semantic_granularity

__all__ = ["CarveJob", "FMGSettings", "Proposal", "carve_many", "carve_proposals", "keep_one_component",
           "make_predictor", "pack_proposals", "area_ratio", "round_granularity", "scale_granularity",
           "semantic_click_region", "semantic_granularity"]
