"""Training-data generation: MMT (multi-grained mask trie over PASCAL-Part parts); FMG/MGE live beside it."""
from .mmt import (ABBREVIATIONS, DIRECTIONAL_WORDS, MMT_GRANULARITY_WEIGHTS, PartNode, build_mask_trie, group_keys,
                  group_name, node_granularity, part_phrase, trie_granularities)

__all__ = ["ABBREVIATIONS", "DIRECTIONAL_WORDS", "MMT_GRANULARITY_WEIGHTS", "PartNode", "build_mask_trie",
           "group_keys", "group_name", "node_granularity", "part_phrase", "trie_granularities"]

# FMG (fine-grained mask generator) and MGE (mask granularity estimator)
from .fmg import (CarveJob, FMGSettings, Proposal, carve_many, carve_proposals, keep_one_component, make_predictor,
                  pack_proposals)
from .mge import area_ratio, round_granularity, scale_granularity, semantic_click_region, semantic_granularity

__all__ += ["CarveJob", "FMGSettings", "Proposal", "carve_many", "carve_proposals", "keep_one_component",
            "make_predictor", "pack_proposals", "area_ratio", "round_granularity", "scale_granularity",
            "semantic_click_region", "semantic_granularity"]
