"""HGR: Hierarchical Graph Reasoning for video-text retrieval (Chen et al., CVPR 2020)."""
