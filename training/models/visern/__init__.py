"""ViSERN: Visual Semantic Enhanced Reasoning Network (Feng et al., IJCAI 2020)."""
