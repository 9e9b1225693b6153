"""The ablation switches of each model, named after the papers' ablation tables (torch-free).

Each entry is a set of config overrides of the model's preset; ``strata train ... --set model_overrides=[...]``
and the results table use the same names.
"""
from __future__ import annotations

ABLATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "vsepp": {},
    "hgr": {  # HGR Table 4
        "no_graph_attention": ("graph_attention=false",),
        "no_roles": ("role_awareness=false",),
        "no_hierarchical_video": ("hierarchical_video=false",),
    },
    "hanet": {  # HANet's alignment levels
        "no_individual": ("individual_alignment=false",),
        "no_local": ("local_alignment=false",),
        "no_global": ("global_alignment=false",),
    },
    "visern": {  # ViSERN's reasoning / normalisation ablations
        "no_reasoning": ("reasoning=none",),
        "row_normalisation": ("reasoning=row",),
        "symmetric_normalisation": ("reasoning=symmetric",),
    },
    "vsrnet": {  # VSR-Net Table 1: VG alone, VR_st alone, and VG with the VR_m / VR_s / VR_t relation encoders
        "global_only": ("branches=global",),
        "relation_only": ("branches=relation",),
        "relation_mean": ("relation_encoder=mean",),
        "relation_spatial": ("relation_encoder=spatial",),
        "relation_temporal": ("relation_encoder=temporal",),
    },
    "mcsan": {  # MCSAN's ablations
        "no_relationship": ("relationship=false",),
        "no_distribution_constraints": ("distribution_constraints=false",),
        "no_focal": ("focal=false",),
    },
}
