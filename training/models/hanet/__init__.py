"""HANet: Hierarchical Alignment Networks for video-text retrieval (Wu et al., ACM MM 2021)."""
